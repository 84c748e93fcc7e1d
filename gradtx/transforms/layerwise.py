"""Layerwise transformations: each parameter block gets its own scale, read from norms of that block.

A block is one leaf of the tree (a weight matrix, a bias vector, a convolution kernel). ||x|| is the
L2 (Frobenius) norm over all of a leaf's coordinates and rms(x) = ||x|| / sqrt(size of x).

    scale_by_trust_ratio(c):        u = g * c ||w|| / (||g|| + eps)     (1 where ||w|| = 0 or ||g|| = 0)
    scale_by_param_block_norm(m):   u = g * max(||w||, m)
    scale_by_param_block_rms(m):    u = g * max(rms(w), m)
    clip_by_block_rms(c):           u = g / max(1, rms(g) / c)
    scale_by_factored_rms:          Adafactor's second moment (Shazeer & Stern, 2018, Alg. 4 and 5):
        d_t = 1 - t^(-decay_rate)                                (t counts updates from 1)
        a matrix (its two largest dimensions >= min_dim_size_to_factor), G2 = g^2 + eps:
            r <- d_t r + (1 - d_t) mean of G2 over the largest dimension   (one value a row)
            c <- d_t c + (1 - d_t) mean of G2 over the other dimension     (one value a column)
            v^ = r c^T / mean(r)
        any other leaf:
            v <- d_t v + (1 - d_t) (g^2 + eps);   v^ = v
        u = g / sqrt(v^)

The trust ratio is LARS's (You et al., 2017) and LAMB's (You et al., 2019) layerwise learning rate:
each block moves by a step proportional to its own norm, whatever the size of its gradient. The
factored moment keeps one number a row and one a column of a matrix instead of one a coordinate
(memory n + m instead of n m); the paper's row and column *sums* give the same v^ as these means.

Dtypes: norms, ratios and the factored moments are real and at least float32 (the second-moment
policy of `gradtx.tree`); updates come back in the gradients' dtypes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Updates,
    check,
    init_empty,
    next_count,
    require_params,
    transformation,
    zero_count,
)
from gradtx.packing import require_leaves

NONNEG = "[0, inf)"


def _as(value: Any, like: jax.Array) -> jax.Array:
    """A hyperparameter (a number or a tracer) cast to the dtype of `like`, so that it changes no dtype."""
    return jnp.asarray(value).astype(like.dtype)


def _sum_sq(x: Any) -> jax.Array:
    """sum |x|^2 over a leaf, real and at least float32."""
    return jnp.sum(tree.abs_sq(x))


def _root_at_least(sq: jax.Array, floor: Any) -> jax.Array:
    """sqrt(sq), or `floor` where sqrt(sq) <= floor (optax's safe_norm), with a finite derivative at sq = 0."""
    positive = sq > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)  # d sqrt(x)/dx is inf at 0
    floor = _as(floor, root)
    return jnp.where(root <= floor, floor, root)


def _block_norm(x: Any, floor: Any = 0.0) -> jax.Array:
    """max(||x||, floor): the L2 norm of one leaf."""
    return _root_at_least(_sum_sq(x), floor)


def _block_rms(x: Any, floor: Any = 0.0) -> jax.Array:
    """max(rms(x), floor): the root mean square of one leaf (0 for a leaf of size 0)."""
    sq = _sum_sq(x)
    return _root_at_least(sq / max(int(np.size(x)), 1), floor)


def _map_with_params(f: Callable[[Any, Any], Any], updates: Updates, params: Any) -> Updates:
    """f(update, param) leaf by leaf; a None update (a frozen param) stays None."""
    return jax.tree.map(lambda u, p: None if u is None else f(u, p), updates, params, is_leaf=lambda x: x is None)


# ---------------------------------------------------------------------------------------------------
# Trust ratio (LARS, LAMB)


def _trust_ratio_leaf(hp: Hyperparams, u: jax.Array, w: jax.Array) -> jax.Array:
    w_norm = _block_norm(w, hp.min_norm)  # ||w||, at least min_norm
    u_norm = _block_norm(u, hp.min_norm)  # ||u||, at least min_norm
    dtype = np.promote_types(w_norm.dtype, u_norm.dtype)  # float64 if either is (explicitly: strict promotion)
    w_norm, u_norm = w_norm.astype(dtype), u_norm.astype(dtype)
    zero = (w_norm == 0) | (u_norm == 0)
    ratio = _as(hp.trust_coefficient, w_norm) * w_norm / (jnp.where(zero, 1, u_norm) + _as(hp.eps, u_norm))
    # A zero block (new, or zero-initialized like a bias) or a zero update would get ratio 0 or
    # 0 / 0: as optax, it keeps its update unscaled instead, so a zero-initialized block can move.
    ratio = jnp.where(zero, 1, ratio)  # r = c ||w|| / (||u|| + eps), or 1
    return tree.scale(ratio, u)  # u <- r u


def _update_trust_ratio(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_trust_ratio", updates)
    params = require_params("scale_by_trust_ratio", params)
    return _map_with_params(functools.partial(_trust_ratio_leaf, hp), updates, params), state


def scale_by_trust_ratio(
    min_norm: float = 0.0, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Scales each block's update by its trust ratio: the block's norm over its update's norm.

        r = c max(||w||, min_norm) / (max(||u||, min_norm) + eps)     (c = trust_coefficient)
        r = 1   where either norm is 0 (a zero-initialized block, a zero update)
        u <- r u

    One ratio a leaf: the layerwise learning rate of LARS (You et al., 2017) and LAMB (You et al.,
    2019), whose papers write it eta ||w|| / ||u||. After it, a block moves by c ||w|| (times the
    learning rate) whatever the size of its gradient. Same as optax's, zero-norm convention
    included; also finite under `jax.grad` through `update` at zero updates. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_trust_ratio(trust_coefficient=0.001)
    scale_by_trust_ratio(min_norm=0.0, trust_coefficient=0.001, eps=0.0)
    """
    check(
        "scale_by_trust_ratio",
        min_norm=(min_norm, NONNEG), trust_coefficient=(trust_coefficient, NONNEG), eps=(eps, NONNEG),
    )  # fmt: skip
    return transformation(
        "scale_by_trust_ratio", init_empty, _update_trust_ratio,
        min_norm=min_norm, trust_coefficient=trust_coefficient, eps=eps,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Scaling by the parameters' block norm or RMS (Adafactor's relative step size)


def _update_param_block_norm(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_param_block_norm", updates)
    params = require_params("scale_by_param_block_norm", params)
    scale = lambda u, w: tree.scale(_block_norm(w, hp.min_scale), u)  # u <- max(||w||, m) u
    return _map_with_params(scale, updates, params), state


def scale_by_param_block_norm(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each block's update by the norm of that block's parameters.

        u <- max(||w||, min_scale) u

    As optax's. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_param_block_norm()
    scale_by_param_block_norm(min_scale=0.001)
    """
    check("scale_by_param_block_norm", min_scale=(min_scale, NONNEG))
    return transformation("scale_by_param_block_norm", init_empty, _update_param_block_norm, min_scale=min_scale)


def _update_param_block_rms(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_param_block_rms", updates)
    params = require_params("scale_by_param_block_rms", params)
    scale = lambda u, w: tree.scale(_block_rms(w, hp.min_scale), u)  # u <- max(rms(w), m) u
    return _map_with_params(scale, updates, params), state


def scale_by_param_block_rms(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each block's update by the root mean square of that block's parameters.

        u <- max(rms(w), min_scale) u

    Adafactor's relative step size (Shazeer & Stern, 2018, Sec. 8): the step is proportional to
    the scale of the parameters, at least min_scale (the paper's eps2 = 1e-3) so that
    zero-initialized blocks move. As optax's. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_param_block_rms()
    scale_by_param_block_rms(min_scale=0.001)
    """
    check("scale_by_param_block_rms", min_scale=(min_scale, NONNEG))
    return transformation("scale_by_param_block_rms", init_empty, _update_param_block_rms, min_scale=min_scale)


# ---------------------------------------------------------------------------------------------------
# Clipping by block RMS


def _clip_block_rms_leaf(hp: Hyperparams, u: jax.Array) -> jax.Array:
    rms = _block_rms(u)
    c = _as(hp.threshold, rms)
    over = rms > c  # rms(u) > c >= 0, so rms(u) > 0 where the quotient is used
    factor = jnp.where(over, c / jnp.where(over, rms, 1), 1)  # 1 / max(1, rms(u) / c)
    return tree.scale(factor, u)  # u <- u / max(1, rms(u) / c)


def _update_clip_by_block_rms(hp: Hyperparams, updates, state, params=None):
    require_leaves("clip_by_block_rms", updates)
    return jax.tree.map(functools.partial(_clip_block_rms_leaf, hp), updates), state


def clip_by_block_rms(threshold: float) -> GradientTransformation:
    """Clips each block's update to a root mean square of at most `threshold`.

        u <- u / max(1, rms(u) / c)        (c = threshold >= 0)

    Adafactor's update clipping (Shazeer & Stern, 2018, Sec. 6, with d = c). As optax's, except
    that c = 0 gives zero updates where optax's divides by zero (NaN for zero updates).

    >>> import gradtx
    >>> gradtx.clip_by_block_rms(1.0)
    clip_by_block_rms(threshold=1.0)
    """
    check("clip_by_block_rms", threshold=(threshold, NONNEG))
    return transformation("clip_by_block_rms", init_empty, _update_clip_by_block_rms, threshold=threshold)


# ---------------------------------------------------------------------------------------------------
# Factored second moments (Adafactor)


class FactoredState(NamedTuple):
    """count: updates applied (int32); v_row, v_col: a factored leaf's statistics (means over its
    largest dimension and over its second largest); v: an unfactored leaf's second moment. Each leaf
    uses one kind; the other fields hold a (1,) placeholder there, as in optax. All real, >= float32."""

    count: Count
    v_row: Updates
    v_col: Updates
    v: Updates


def decay_rate_pow(i: jax.Array, exponent: Any = 0.8) -> jax.Array:
    """Adafactor's decay d = 1 - (i + 1)^(-exponent) at i = updates already applied (d = 0 at first).

    Computed in JAX's default float (float64 when x64 is on), as a float, so that i + 1 never
    overflows int32.
    """
    t = jnp.asarray(i).astype(float) + 1
    return 1 - t ** (-jnp.asarray(exponent).astype(t.dtype))


def _factored_dims(shape: tuple, factored: bool, min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """(second largest, largest) dimension of a leaf to factor over, or None to keep it whole.

    optax's rule: the two largest dimensions, if the smaller of them is >= min_dim_size_to_factor.
    Ties go to the earlier dimension as second largest (a stable sort).
    """
    if not factored or len(shape) < 2 or 0 in shape:
        return None
    second, largest = (int(d) for d in np.argsort(shape, kind="stable")[-2:])
    return (second, largest) if shape[second] >= min_dim_size_to_factor else None


def _init_factored_leaf(hp: Hyperparams, p: Any) -> tuple:
    dtype = tree.real_dtype(tree.compute_dtype(p.dtype))  # second moments: real, >= float32
    placeholder = jnp.zeros((1,), dtype)
    dims = _factored_dims(jnp.shape(p), hp.factored, hp.min_dim_size_to_factor)
    if dims is None:
        return placeholder, placeholder, jnp.zeros_like(p, dtype=dtype)
    second, largest = dims
    # The statistics' shapes (and shardings) as those of sums of p over one dimension.
    v_row = jnp.zeros_like(jax.eval_shape(functools.partial(jnp.sum, axis=largest), p), dtype=dtype)
    v_col = jnp.zeros_like(jax.eval_shape(functools.partial(jnp.sum, axis=second), p), dtype=dtype)
    return v_row, v_col, placeholder


def _unzip(like: Any, pairs: Any, n: int) -> tuple:
    """n trees from a tree of n-tuples whose structure above the tuples is `like`'s."""
    return tuple(jax.tree.map(lambda _, r, i=i: r[i], like, pairs) for i in range(n))


def _init_factored(hp: Hyperparams, params) -> FactoredState:
    v_row, v_col, v = _unzip(params, jax.tree.map(functools.partial(_init_factored_leaf, hp), params), 3)
    return FactoredState(count=zero_count(), v_row=v_row, v_col=v_col, v=v)


def _update_factored_leaf(hp: Hyperparams, d: jax.Array, g, v_row, v_col, v) -> tuple:
    g2 = tree.abs_sq(g)
    g2 = g2 + _as(hp.epsilon, g2)  # G2 = g^2 + eps, real, >= float32
    dims = _factored_dims(jnp.shape(g), hp.factored, hp.min_dim_size_to_factor)
    if dims is None:
        v = tree.ema(v, g2, d)  # v <- d v + (1 - d) G2
        return tree.safe_div_sqrt(g, v), v_row, v_col, v  # u = g / sqrt(v)
    second, largest = dims
    v_row = tree.ema(v_row, jnp.mean(g2, axis=largest), d)  # r <- d r + (1 - d) mean of G2 over the largest dim
    v_col = tree.ema(v_col, jnp.mean(g2, axis=second), d)  # c <- d c + (1 - d) mean of G2 over the other dim
    r_mean = jnp.mean(v_row, axis=second if second < largest else second - 1, keepdims=True)  # mean(r)
    # v^ = r c^T / mean(r): mean(r) > 0 unless eps = 0 and every gradient of the slice was 0 (then u = 0).
    r_hat = jnp.where(r_mean > 0, v_row / jnp.where(r_mean > 0, r_mean, 1), 0)
    v_hat = jnp.expand_dims(r_hat, largest) * jnp.expand_dims(v_col, second)
    return tree.safe_div_sqrt(g, v_hat), v_row, v_col, v  # u = g / sqrt(v^); 0 where v^ = 0


def _update_factored(hp: Hyperparams, g, state: FactoredState, params=None):
    require_leaves("scale_by_factored_rms", g)
    decay_rate_fn = hp.decay_rate_fn or decay_rate_pow
    # Clamped at 0: a count below step_offset (a fresh state with a fine-tuning offset) would give
    # optax's default a negative t and a NaN decay.
    d = decay_rate_fn(jnp.maximum(state.count - hp.step_offset, 0), hp.decay_rate)  # d_t
    out = jax.tree.map(functools.partial(_update_factored_leaf, hp, d), g, state.v_row, state.v_col, state.v)
    u, v_row, v_col, v = _unzip(g, out, 4)
    return tree.cast_like(u, g), FactoredState(count=next_count(state.count), v_row=v_row, v_col=v_col, v=v)


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float = 0.8,
    step_offset: int = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: float = 1e-30,
    decay_rate_fn: Callable[[jax.Array, Any], jax.Array] = decay_rate_pow,
) -> GradientTransformation:
    """Adafactor's preconditioner (Shazeer & Stern, 2018): divide by a factored RMS of the gradients.

        d_t = decay_rate_fn(k - step_offset, decay_rate)   (default 1 - (k + 1)^(-decay_rate), k = updates
                                                            already applied: d = 0 at the first update)
        G2  = g^2 + epsilon
        matrices:   r <- d r + (1 - d) mean of G2 over the largest dimension
                    c <- d c + (1 - d) mean of G2 over the second largest
                    v^ = r c^T / mean(r)
        the rest:   v <- d v + (1 - d) G2;   v^ = v
        u = g / sqrt(v^)

    A leaf is factored if its two largest dimensions are both >= `min_dim_size_to_factor` (and
    `factored`); for more than two dimensions the others are kept (one factored matrix a slice).
    The paper's decay 1 - t^(-0.8) needs no bias correction: d = 0 at t = 1. Same as optax's
    (state `FactoredState` with its fields), except that every moment is real and at least float32
    (optax keeps a bfloat16 param's in bfloat16) and a count below `step_offset` is taken as 0
    (optax's default then gives NaN). A custom `decay_rate_fn(i, decay_rate)` gets i as an int32
    count; make it a module-level function so the transformation pickles. `update` needs no params.

    >>> import gradtx
    >>> gradtx.scale_by_factored_rms(min_dim_size_to_factor=64)
    scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=64, epsilon=1e-30)
    """
    check(
        "scale_by_factored_rms",
        decay_rate=(decay_rate, NONNEG), step_offset=(step_offset, NONNEG),
        min_dim_size_to_factor=(min_dim_size_to_factor, NONNEG), epsilon=(epsilon, NONNEG),
    )  # fmt: skip
    if not callable(decay_rate_fn):
        raise TypeError(
            "scale_by_factored_rms: decay_rate_fn must be a function (count, decay_rate) -> decay,"
            f" got {decay_rate_fn!r}"
        )
    return transformation(
        "scale_by_factored_rms", _init_factored, _update_factored,
        factored=factored, decay_rate=decay_rate, step_offset=step_offset,
        min_dim_size_to_factor=min_dim_size_to_factor, epsilon=epsilon,
        # The default is kept as None, so that the repr reads as the call that built it.
        decay_rate_fn=None if decay_rate_fn is decay_rate_pow else decay_rate_fn,
    )  # fmt: skip


__all__ = [
    "FactoredState",
    "clip_by_block_rms",
    "scale_by_factored_rms",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_trust_ratio",
]
