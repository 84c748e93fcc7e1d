"""bfloat16 params trained as if float32: stochastic rounding and Kahan-compensated updates.

    stochastic_round(x, dtype, key)   x rounded up or down at random, P(up) = the distance to the
                                      lower neighbour / the gap: E[result] = x
    stochastic_rounding(t)            W <- SR(W + t(g))            (W in bfloat16, the sum in float32)
    kahan_summation(t)                y = c + t(g);  W' = RN(W + y);  c <- y - (W' - W)

A bfloat16 weight keeps 8 significant bits: an update smaller than half its spacing (a relative
step below 2^-9) is rounded away by `W + u`, so a long run of small steps never moves it. Both
wrappers fix that without a float32 master copy of the weights. Stochastic rounding keeps the sum
right on average (its error is noise of mean zero); Kahan summation keeps what rounding took off in a
compensation buffer `c` (in the params' dtype, so 2 bytes a bfloat16 param: torch-optimi's
`kahan_sum`) and adds it back at the next step.

Each wraps the whole optimizer (put it outermost: it must see the final updates) and works with
plain `apply_updates`: it computes the new weight W' itself and returns u' = W' - W, which is W' and
W's difference exactly wherever W' is within a factor 2 of W (Sterbenz's lemma), i.e. for every
step these methods are for; a step that moves a weight by more than its own size (a weight crossing
zero) is rounded to the nearest as `apply_updates` rounds. Only params narrower than float32
(bfloat16, float16) are treated; float32 and wider params are updated as without the wrapper.
The inner optimizer is given the gradients in their compute dtype (float32 for bfloat16), so its
updates reach the wrapper unrounded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, next_count, zero_count
from gradtx.checks import require_params
from gradtx.combine import check_members, update_one, wrapper

_MANTISSA_16 = np.uint32(0xFFFF)
_TOP_16 = np.uint32(0xFFFF0000)


def is_narrow(dtype: Any) -> bool:
    """True for floating dtypes narrower than float32 (bfloat16, float16, float8s)."""
    dtype = np.dtype(dtype)
    return bool(jnp.issubdtype(dtype, jnp.floating)) and jnp.finfo(dtype).bits < 32


def check_seed(builder: str, key: Any) -> int:
    """A seed is a non-negative Python int (hashable, shown by repr)."""
    if isinstance(key, np.integer):
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise TypeError(f"{builder}: key must be a non-negative int seed, got {key!r}")
    return key


def step_key(seed: int, count: jax.Array) -> jax.Array:
    """The PRNG key of step `count` of a run seeded with `seed`: reproducible, and resumed exactly
    from a checkpoint (the count is in the state)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), count)


def round_to_nearest(x: jax.Array, dtype: Any) -> jax.Array:
    """x rounded to nearest (ties to even) in `dtype`, returned in x's dtype.

    `lax.reduce_precision` is an operation XLA keeps: a cast down and back up may be dropped when
    XLA is allowed excess precision, which would silently skip the rounding that Kahan's
    compensation measures.
    """
    info = jnp.finfo(dtype)
    if info.bits >= jnp.finfo(x.dtype).bits:
        return x
    return jax.lax.reduce_precision(x, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def stochastic_round(x: jax.Array, dtype: Any, key: jax.Array) -> jax.Array:
    """x rounded to `dtype` at random between its two neighbours there, so that E[result] = x.

        lo <= x <= hi  (adjacent numbers of `dtype`),   result = hi with probability (x - lo) / (hi - lo)

    Unbiased, so a sum of many small steps in bfloat16 is right on average where rounding to the
    nearest would drop every step below half a spacing (Gupta et al., 2015, "Deep learning with
    limited numerical precision"). NaN and infinities are kept. float32 to bfloat16 uses the bit
    trick (add 16 random low bits, truncate); other pairs draw a uniform number per element. The random
    numbers are `random_bits`: a hash of (key, element index), fused into the step.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> x = jnp.full(10000, 1 + 2**-10, jnp.float32)   # a quarter of the way from 1 to bfloat16's next number
    >>> y = gradtx.stochastic_round(x, jnp.bfloat16, jax.random.PRNGKey(0))
    >>> sorted(set(y.tolist())), round(float(jnp.mean(y.astype(jnp.float32) == 1.0)), 1)
    ([1.0, 1.0078125], 0.8)
    """
    dtype = np.dtype(dtype)
    x = jnp.asarray(x)
    if x.dtype == dtype:
        return x
    if x.dtype == np.dtype(jnp.float32) and dtype == np.dtype(jnp.bfloat16):
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
        noise = random_bits(key, x.shape) & _MANTISSA_16
        up_or_down = jax.lax.bitcast_convert_type((bits + noise) & _TOP_16, jnp.float32)  # exact in bfloat16
        return jnp.where(jnp.isnan(x), x, up_or_down).astype(dtype)  # a NaN's carry could reach the sign
    wide = x.astype(tree.compute_dtype(x.dtype))
    exact = jax.lax.stop_gradient(wide)  # rounding has no useful derivative: straight through below
    near = exact.astype(dtype)
    above = near.astype(wide.dtype) > exact
    lo = jnp.where(above, jnp.nextafter(near, jnp.asarray(-jnp.inf, dtype)), near)
    hi = jnp.where(above, near, jnp.nextafter(near, jnp.asarray(jnp.inf, dtype)))
    lo_w, hi_w = lo.astype(wide.dtype), hi.astype(wide.dtype)
    up = random_uniform(key, x.shape, wide.dtype) * (hi_w - lo_w) < exact - lo_w  # P(up) = (x - lo) / (hi - lo)
    kept = (near.astype(wide.dtype) == exact) | jnp.isnan(exact)  # exact, +-inf, NaN
    rounded = jnp.where(kept, near, jnp.where(up, hi, lo)).astype(wide.dtype)
    straight_through = wide + jax.lax.stop_gradient(rounded - wide)  # the value of `rounded`, d/dx = 1
    return jnp.where(jnp.isfinite(wide), straight_through, rounded).astype(dtype)


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's finalizer: a bijection of uint32 whose output bits each depend on every input bit."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """32 pseudo-random bits per element of `shape`, from a PRNG key: a hash of each element's index.

    Elementwise integer arithmetic, so XLA fuses it into the step that uses it and a sharded array
    draws its own shard's numbers without communication. jax.random's threefry costs 15x a float32
    Adam step on a CPU and materializes its output (48 bytes an element): too slow for a number per
    parameter per step. Good enough for rounding (tests/test_precision.py checks unbiasedness); not
    for cryptography or for sampling that needs independent streams.
    """
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    data = data.reshape(-1).astype(jnp.uint32)
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride % 2**32)
        stride *= shape[axis]
    h = _fmix32(index * np.uint32(0x9E3779B9) + data[0])
    return _fmix32(h ^ data[-1])


def random_uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Uniform numbers in [0, 1) with 24 random bits each, from `random_bits`."""
    top = (random_bits(key, shape) >> np.uint32(8)).astype(jnp.int32)
    return top.astype(dtype) * np.asarray(2.0**-24, dtype)


def _leaf_keys(key: jax.Array, like: Any) -> Any:
    leaves, structure = jax.tree.flatten(like)
    return jax.tree.unflatten(structure, [jax.random.fold_in(key, i) for i in range(len(leaves))])


# ---------------------------------------------------------------------------------------------------
# stochastic_rounding


class StochasticRoundingState(NamedTuple):
    """count: updates applied (int32), which with the seed gives each step's random numbers; inner_state."""

    count: Count
    inner_state: Any


def _init_stochastic_rounding(hp: Hyperparams, params) -> StochasticRoundingState:
    return StochasticRoundingState(count=zero_count(), inner_state=hp.args[0].init(params))


def _sr_step(p: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    if not is_narrow(p.dtype):
        return u
    p32 = p.astype(tree.compute_dtype(p.dtype))
    new = stochastic_round(p32 + u.astype(p32.dtype), p.dtype, key)  # W' = SR(W + u)
    return new.astype(p32.dtype) - p32  # u' = W' - W, exact (Sterbenz) for |u| < |W|


def _update_stochastic_rounding(hp: Hyperparams, g, state: StochasticRoundingState, params=None, **extra_args):
    params = require_params("stochastic_rounding", params)
    u, inner_state = update_one(hp.args[0], tree.compute_like(g, g), state.inner_state, params, extra_args)
    keys = _leaf_keys(step_key(hp.key, state.count), u)
    new_u = jax.tree.map(_sr_step, params, u, keys)
    return tree.cast_like(new_u, g), StochasticRoundingState(count=next_count(state.count), inner_state=inner_state)


def stochastic_rounding(inner: GradientTransformation, key: int = 0) -> GradientTransformation:
    """Applies `inner`'s updates to bfloat16 (and float16) params with stochastic rounding.

        u = inner(g)                 (in float32)
        W' = SR(W + u)               (E[W'] = W + u: no step is lost on average)
        returns u' = W' - W          (so that apply_updates(W, u') = W')

    One line: `tx = gradtx.stochastic_rounding(gradtx.adamw(1e-3))`, then train as usual. `key` is
    an int seed: the random numbers of step t come from (key, t), so a run is reproducible and
    resumes from a checkpoint exactly. Put it outermost (it must see the final updates); it needs
    params. Params of float32 or wider are updated as `inner` alone would. See the module
    docstring for when u' is exact. The state is `StochasticRoundingState(count, inner_state)`.

    >>> import jax.numpy as jnp, gradtx
    >>> w = jnp.ones(1000, jnp.bfloat16)
    >>> tx = gradtx.stochastic_rounding(gradtx.sgd(1e-3), key=0)
    >>> state = tx.init(w)
    >>> for _ in range(100):  # 100 steps of -1e-3: each is a quarter of bfloat16's spacing at 1
    ...     u, state = tx.update(jnp.ones_like(w), state, w)
    ...     w = gradtx.apply_updates(w, u)
    >>> plain = gradtx.apply_updates(jnp.ones(1, jnp.bfloat16), -1e-3)  # rounded back to 1
    >>> round(float(jnp.mean(w.astype(jnp.float32))), 2), float(plain[0])
    (0.9, 1.0)
    """
    check_members("stochastic_rounding", (inner,))
    return wrapper(
        "stochastic_rounding", _init_stochastic_rounding, _update_stochastic_rounding, inner,
        key=check_seed("stochastic_rounding", key),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# kahan_summation


class KahanSummationState(NamedTuple):
    """compensation: c, what rounding took off each bfloat16 or float16 param so far, in its dtype
    (None for float32 and wider params); inner_state."""

    compensation: Any
    inner_state: Any


def _init_kahan(hp: Hyperparams, params) -> KahanSummationState:
    compensation = jax.tree.map(lambda p: jnp.zeros_like(p) if is_narrow(p.dtype) else None, params)
    return KahanSummationState(compensation=compensation, inner_state=hp.args[0].init(params))


class _Rounded(NamedTuple):
    """One leaf's (update, new compensation): a type of its own, so that a params tuple of two
    leaves is not taken for one leaf's pair."""

    update: Any
    compensation: Any


def _kahan_step(p: jax.Array, u: jax.Array, c: jax.Array | None) -> _Rounded:
    if c is None:
        return _Rounded(u, None)
    p32 = p.astype(tree.compute_dtype(p.dtype))
    y = c.astype(p32.dtype) + u.astype(p32.dtype)  # y = c + u
    new = round_to_nearest(p32 + y, p.dtype)  # W' = RN(W + y)
    c_new = y - (new - p32)  # c <- y - (W' - W): what this rounding took off
    return _Rounded(new - p32, round_to_nearest(c_new, c.dtype).astype(c.dtype))


def _update_kahan(hp: Hyperparams, g, state: KahanSummationState, params=None, **extra_args):
    params = require_params("kahan_summation", params)
    u, inner_state = update_one(hp.args[0], tree.compute_like(g, g), state.inner_state, params, extra_args)
    pairs = jax.tree.map(_kahan_step, params, u, state.compensation, is_leaf=lambda x: x is None)
    is_rounded = lambda x: isinstance(x, _Rounded)
    new_u = jax.tree.map(lambda r: r.update, pairs, is_leaf=is_rounded)
    compensation = jax.tree.map(lambda r: r.compensation, pairs, is_leaf=is_rounded)
    return tree.cast_like(new_u, g), KahanSummationState(compensation=compensation, inner_state=inner_state)


def kahan_summation(inner: GradientTransformation) -> GradientTransformation:
    """Applies `inner`'s updates to bfloat16 (and float16) params with Kahan-compensated summation.

        u = inner(g)                 (in float32)
        y = c + u                    (c: the compensation, in the params' dtype, from 0)
        W' = RN(W + y)               (rounded to the params' dtype, to nearest)
        c <- y - (W' - W)            (what the rounding took off, added back next step)
        returns u' = W' - W          (so that apply_updates(W, u') = W')

    The weights then follow the float32 sum to within about one bfloat16 spacing of the weight
    plus c's own rounding, for 2 extra bytes a bfloat16 param, as torch-optimi's `kahan_sum=True`
    (Kahan, 1965; Zamirai et al., 2020, "Revisiting BFloat16 Training"). One line:
    `tx = gradtx.kahan_summation(gradtx.adamw(1e-3))`. Put it outermost (it must see the final
    updates); it needs params. Params of float32 or wider get no buffer and are updated as `inner`
    alone would. The state is `KahanSummationState(compensation, inner_state)`.

    >>> import jax.numpy as jnp, gradtx
    >>> w = jnp.ones(3, jnp.bfloat16)
    >>> tx = gradtx.kahan_summation(gradtx.sgd(1e-3))
    >>> state = tx.init(w)
    >>> for _ in range(100):  # 100 steps of -1e-3, each below half of bfloat16's spacing at 1
    ...     u, state = tx.update(jnp.ones_like(w), state, w)
    ...     w = gradtx.apply_updates(w, u)
    >>> float(w[0]), float(w[0].astype(jnp.float32) + state.compensation[0].astype(jnp.float32))
    (0.8984375, 0.900...)
    """
    check_members("kahan_summation", (inner,))
    return wrapper("kahan_summation", _init_kahan, _update_kahan, inner)


__all__ = [
    "KahanSummationState",
    "StochasticRoundingState",
    "kahan_summation",
    "stochastic_round",
    "stochastic_rounding",
]
