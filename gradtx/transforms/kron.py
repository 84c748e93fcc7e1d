"""PSGD Kron: momentum preconditioned by a learned Kronecker-factored matrix (Li, 2015; Walters, 2024).

    scale_by_kron   m <- b1 m + (1 - b1) g;  m^ = m / (1 - b1^t)
                    with probability p_t: Q_i <- Q_i - precond_lr dQ_i   (each factor, from m^ and a probe V)
                    u = clip_rms(P m^, 1.1),  P = (Q_1^T Q_1) x ... x (Q_n^T Q_n)
    kron            chain(scale_by_kron, add_decayed_weights (leaves of ndim >= 2), scale_by_learning_rate)

Each leaf (merged to a matrix when it has more than two axes, as kron_torch does) gets one factor Q_i
per axis: upper-triangular (d_i x d_i) or, for a large, skewed or one-axis leaf, diagonal. Q is fit
online to the pair (V, m^ + noise), V ~ N(0, 1): the fit makes P the whitening preconditioner whose
P^-1 is the root of the second moment of the gradients. The preconditioner is updated at a step
with probability p_t (kron_torch's schedule: 1 for 500 steps, then exp-annealed to 0.03), drawn
from the key in the state, so a run is reproducible and a checkpoint resumes it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Bound,
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    Updates,
    next_count,
    schedule,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import (
    COUNT,
    FRACTION,
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE,
    SCHEDULE,
    UNIT,
    ArgumentTypeError,
    ArgumentValueError,
    arguments_of,
    check,
    check_dtype,
    check_flag,
    first_moment_dtype,
)
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

MEMORY_SAVE_MODES = (None, "smart_one_diag", "one_diag", "all_diag")
_NOISE = math.sqrt(float(np.finfo(np.float32).eps))  # the probe's size next to mean |m^|, kron_torch's
_CLIP_RMS = 1.1  # kron_torch clips every update to this RMS


class KronState(NamedTuple):
    """count: steps taken (int32); mu: the momentum m; Qs: each leaf's tuple of factors Q_i (a d_i x d_i
    upper-triangular matrix or a length-d_i diagonal); rng_key: the raw PRNG key of the next step (uint32)."""

    count: Count
    mu: Updates
    Qs: Any
    rng_key: jax.Array


# ---------------------------------------------------------------------------------------------------
# The update probability (kron_torch's precond_update_prob_schedule)


def _prob_schedule(hp: Hyperparams, count: jax.Array) -> jax.Array:
    n = jnp.asarray(count, jnp.float32)  # kron_torch evaluates it in float32
    p = hp.max_prob * jnp.exp(-hp.decay * (n - hp.flat_start))  # p = max_prob exp(-decay (n - flat_start))
    return jnp.clip(p, hp.min_prob, hp.max_prob)


DEFAULT_PROBABILITY = schedule(
    "precond_update_prob_schedule", _prob_schedule, max_prob=1.0, min_prob=0.03, decay=0.001, flat_start=500
)


# ---------------------------------------------------------------------------------------------------
# Shapes and factors


def merged_shape(shape: tuple[int, ...], merge_dims: bool) -> tuple[int, ...]:
    """The shape a leaf is preconditioned in: a scalar as (1,); more than two axes merged into the
    matrix (prod(shape[:-1]), shape[-1]) or (shape[0], prod(shape[1:])), the squarer (kron_torch's choice)."""
    if len(shape) == 0:
        return (1,)
    if len(shape) > 2 and merge_dims:
        first = (math.prod(shape[:-1]), shape[-1])
        last = (shape[0], math.prod(shape[1:]))
        return first if first[1] - first[0] <= last[1] - last[0] else last
    return tuple(shape)


def diagonal_axes(hp: Hyperparams, shape: tuple[int, ...]) -> list[bool]:
    """True for the axes whose factor is diagonal, False for the triangular ones."""
    order = list(np.argsort(shape)[::-1])  # the largest axis first (np's tie order, as kron_torch)
    diag = [hp.memory_save_mode == "all_diag"] * len(shape)
    if hp.memory_save_mode == "one_diag" or (
        hp.memory_save_mode == "smart_one_diag" and len(shape) > 1 and sorted(shape)[-1] > sorted(shape)[-2]
    ):
        diag[order[0]] = True
    numel, skew = math.prod(shape), math.inf if hp.max_skew_triangular is None else hp.max_skew_triangular
    return [
        d or size == 1 or size > hp.max_size_triangular or size**2 > skew * numel
        or len(shape) < hp.min_ndim_triangular
        for size, d in zip(shape, diag, strict=True)
    ]  # fmt: skip


def _precond_dtype(hp: Hyperparams, x: Any) -> Any:
    return tree.compute_dtype(jnp.result_type(x)) if hp.precond_dtype is None else hp.precond_dtype


def _init_factors(hp: Hyperparams, x: Any) -> tuple[jax.Array, ...] | None:
    if not tree.is_inexact(x):
        return None  # integer and boolean leaves hold no state
    if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating):
        raise TypeError(
            f"scale_by_kron: got a {jnp.result_type(x)} param; its Q fit is for real gradients (kron_torch's)."
            " Wrap it in gradtx.split_real_and_imaginary for complex params."
        )
    shape = merged_shape(jnp.shape(x), hp.merge_dims)
    dtype = _precond_dtype(hp, x)
    scale = hp.precond_init_scale ** (1 / len(shape))  # Q_i = s^(1/n) I: Q = s I
    return tuple(
        jnp.full((d,), scale, dtype) if diag else scale * jnp.eye(d, dtype=dtype)
        for d, diag in zip(shape, diagonal_axes(hp, shape), strict=True)
    )


def _init_kron(hp: Hyperparams, params) -> KronState:
    mu = tree.first_moment_like(params, hp.accumulator_dtype)
    Qs = jax.tree.map(lambda x: _init_factors(hp, x), params)
    return KronState(zero_count(), mu, Qs, jnp.asarray(hp.key, jnp.uint32) if isinstance(hp.key, tuple) else
                     jax.random.PRNGKey(hp.key))  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Kronecker products along axes


def _apply(q: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """x with its axis `axis` multiplied by q (a matrix, or a diagonal)."""
    if q.ndim == 1:
        return x * q.reshape((-1,) + (1,) * (x.ndim - 1 - axis))
    return jnp.moveaxis(jnp.tensordot(q, x, axes=(1, axis)), 0, axis)


def _solve_right(q: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """x with each fiber along `axis` (a row vector v) replaced by v Q^-1."""
    if q.ndim == 1:
        return x / q.reshape((-1,) + (1,) * (x.ndim - 1 - axis))
    v = jnp.moveaxis(x, axis, -1)
    rows = v.reshape(-1, v.shape[-1])
    out = jax.scipy.linalg.solve_triangular(q, rows.T, trans="T", lower=False).T  # Q^T y^T = v^T
    return jnp.moveaxis(out.reshape(v.shape), -1, axis)


def _gram(a: jax.Array, axis: int, diagonal: bool) -> jax.Array:
    """a's mode-`axis` Gram matrix A_(i) A_(i)^T, or only its diagonal."""
    others = [k for k in range(a.ndim) if k != axis]
    if diagonal:
        return jnp.sum(a * a, axis=tuple(others))
    return jnp.tensordot(a, a, axes=(others, others))


def _lower_bound(a: jax.Array, max_abs: jax.Array) -> jax.Array:
    """A cheap lower bound of the spectral norm of the symmetric a (kron_torch's): one power step
    from its largest column."""
    a = a / max_abs
    x = a[:, jnp.argmax(jnp.sum(a * a, axis=0))]
    x = x @ a
    x = x / jnp.where(jnp.linalg.norm(x) > 0, jnp.linalg.norm(x), 1)
    return jnp.linalg.norm(a @ x) * max_abs


def precondition(Qs: tuple[jax.Array, ...], x: jax.Array) -> jax.Array:
    """P x = (Q_1^T Q_1) x ... x (Q_n^T Q_n) applied to x, axis by axis."""
    for i, q in enumerate(Qs):
        x = _apply(q.T if q.ndim == 2 else q, _apply(q, x, i), i)
    return x


def update_factors(Qs: tuple[jax.Array, ...], G: jax.Array, V: jax.Array, precond_lr: Any) -> tuple[jax.Array, ...]:
    """One step of the fit of Q to the pair (V, G) (Li's normalized-gradient rule on the Lie group)."""
    G = G + _NOISE * jnp.mean(jnp.abs(G)) * V  # G <- G + sqrt(eps_f32) mean|G| V
    A, B = G, V
    for i, q in enumerate(Qs):
        A = _apply(q, A, i)  # A = Q G  (each factor on its axis)
        B = _solve_right(q, B, i)  # B = Q^-T V
    tiny = jnp.finfo(G.dtype).tiny
    new = []
    for i, q in enumerate(Qs):
        diagonal = q.ndim == 1
        AA, BB = _gram(A, i, diagonal), _gram(B, i, diagonal)
        norm = jnp.max(jnp.abs(AA + BB))
        if diagonal:  # dQ = (AA - BB) Q / max|AA + BB|
            dq = (AA - BB) * q / jnp.maximum(norm, tiny)
        else:  # dQ = triu(AA^T - BB^T) Q / ||AA^T + BB^T||  (a lower bound of the spectral norm)
            bound = jnp.where(norm > 0, _lower_bound(AA + BB, jnp.where(norm > 0, norm, 1)), norm)
            dq = (jnp.triu(AA - BB) / jnp.maximum(bound, tiny)) @ q
        new.append(q - precond_lr * dq)  # Q_i <- Q_i - precond_lr dQ_i
    return tuple(new)


def balance(Qs: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """The factors rescaled to one max-abs (their geometric mean), Q unchanged: keeps them in range."""
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in Qs])
    target = jnp.exp(jnp.mean(jnp.log(norms)))
    return tuple(q * (target / n) for q, n in zip(Qs, norms, strict=True))


# ---------------------------------------------------------------------------------------------------
# The transformation


def _update_leaf(hp: Hyperparams, t: Count, do_update: Any, key: jax.Array, g: Any, mu: Any, Qs: Any) -> tuple:
    if g is None or Qs is None or not tree.is_inexact(g) or jnp.size(g) == 0:
        return g, mu, Qs
    mu = tree.ema(mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    dtype = Qs[0].dtype
    shape = merged_shape(g.shape, hp.merge_dims)
    m = tree.bias_correction(mu, hp.b1, t).astype(dtype).reshape(shape)  # m^ = m / (1 - b1^t)
    G = m if hp.momentum_into_precond_update else g.astype(dtype).reshape(shape)

    def fit(Qs: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        Qs = balance(Qs) if len(shape) > 1 else Qs
        return update_factors(Qs, G, jax.random.normal(key, shape, dtype), hp.precond_lr)

    Qs = jax.lax.cond(do_update, fit, lambda Qs: Qs, Qs)  # with probability p_t
    u = precondition(Qs, m)  # u = P m^
    ms = jnp.mean(u * u)
    rms = jnp.where(ms > 0, jnp.sqrt(jnp.where(ms > 0, ms, 1)), 0)  # sqrt's derivative is infinite at 0
    u = u * jnp.minimum(1.0, _CLIP_RMS / (rms + 1e-12))  # u <- u min(1, 1.1 / RMS(u))
    return u.reshape(g.shape).astype(g.dtype), mu, Qs


def _update_kron(hp: Hyperparams, g, state: KronState, params=None):
    require_leaves("scale_by_kron", g)  # each leaf's axes get factors: a packed buffer has one axis
    t = next_count(state.count)
    rng_key, prob_key, probe_key = jax.random.split(state.rng_key, 3)  # the next state's key, and this step's
    probability = hp.preconditioner_update_probability
    p = value_at(DEFAULT_PROBABILITY if probability is None else probability, state.count)
    do_update = jax.random.uniform(prob_key, (), jnp.float32) < p  # one draw for every leaf, as kron_torch
    leaves, structure = jax.tree.flatten(g, is_leaf=lambda x: x is None)
    treedef: Any = structure
    keys = jax.random.split(probe_key, max(len(leaves), 1))  # leaf k's probe V ~ normal(keys[k], merged shape)
    mus, Qss = treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.Qs)
    out = [_update_leaf(hp, t, do_update, k, *leaf) for k, *leaf in zip(keys, leaves, mus, Qss, strict=False)]
    u, mu, Qs = (treedef.unflatten([o[j] for o in out]) for j in range(3))
    mu = jax.tree.map(lambda new, old: new.astype(old.dtype), mu, state.mu)
    return u, KronState(t, mu, Qs, rng_key)


def _key_argument(key: Any) -> Any:
    """An int seed, or a concrete key (typed or raw) as its two ints (hashable, shown by repr); a tracer as is."""
    if isinstance(key, jax.Array | np.ndarray | np.generic) and not isinstance(key, jax.core.Tracer):
        if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        array = np.asarray(key)
        if not jnp.issubdtype(array.dtype, jnp.integer) or array.shape not in ((), (2,)):
            raise ArgumentTypeError(
                "scale_by_kron",
                "key",
                f"must be an int seed or a PRNG key, got an array {array.dtype}{list(array.shape)}",
            )
        key = int(array) if array.ndim == 0 else tuple(int(k) for k in array)
    if isinstance(key, tuple) and not (len(key) == 2 and all(isinstance(k, int) for k in key)):
        raise ArgumentTypeError("scale_by_kron", "key", f"must be an int seed or a PRNG key's two ints, got {key!r}")
    if isinstance(key, bool) or not isinstance(key, int | tuple | jax.core.Tracer):
        raise ArgumentTypeError("scale_by_kron", "key", f"must be an int seed or a PRNG key, got {key!r}")
    return key


def scale_by_kron(
    b1: float = 0.9,
    preconditioner_update_probability: ScalarOrSchedule | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    precond_lr: float = 0.1,
    precond_init_scale: float = 1.0,
    merge_dims: bool = True,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    *,
    max_skew_triangular: float | None = None,
    key: Any = 0,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """PSGD with Kronecker-factored preconditioners (Li, 2015; kron_torch's Kron, Walters, 2024).

        m <- b1 m + (1 - b1) g
        m^ = m / (1 - b1^t)
        with probability p_t:  V ~ N(0, 1)
            G = m^ + sqrt(eps_f32) mean(|m^|) V
            A = Q G,  B = Q^-T V                          (each factor Q_i on its axis)
            C_i = A_i A_i^T - B_i B_i^T,  H_i = A_i A_i^T + B_i B_i^T
            U_i = triu(C_i)
            Q_i <- Q_i - precond_lr U_i Q_i / ||H_i||     (||H_i||: a lower bound of the spectral norm)
        u = P m^,  P = Q^T Q                              (each factor Q_i^T Q_i on its axis)
        u <- u min(1, 1.1 / RMS(u))

    A_i is the mode-i unfolding of A (axis i's rows); a diagonal factor takes the diagonals of C_i
    and H_i (U_i = C_i) and max|H_i| in place of the spectral norm's lower bound. An axis's factor
    is diagonal when its size is 1 or above `max_size_triangular`, when size^2 > `max_skew_triangular`
    numel (psgd_jax's rule; None, kron_torch's, no limit), when the leaf has fewer than
    `min_ndim_triangular` axes, or as `memory_save_mode` says ("one_diag": the largest axis;
    "smart_one_diag": the largest if it is strictly the largest; "all_diag").
    `preconditioner_update_probability`: a number or a schedule of the steps taken; None is
    kron_torch's, p = clip(exp(-0.001 (t - 500)), 0.03, 1). The draws (whether to update, and each
    leaf's V) come from the state's `rng_key` (`key`: an int seed or a PRNG key):
    rng_key', k_p, k_V = split(rng_key, 3); update if uniform(k_p) < p_t; leaf k's V is
    normal(split(k_V, n_leaves)[k], its merged shape).

    Where it differs from kron_torch 0.3.3, and why: it updates the preconditioner when
    `uniform < p` (psgd_jax, and the issue's reproducible draw) where kron_torch 0.3.3 updates
    every ceil(1 / p) steps by a counter; it balances the factors' scales at every update where
    kron_torch does at a random 1 % of them (a rescaling that leaves Q and every later update
    unchanged but for rounding); kron_torch adds the probe noise in place into m^ and then
    preconditions that noisy m^, where this preconditions m^ (as psgd_jax; tests/test_kron.py
    gives kron_torch a copy); kron_torch solves B in float32, this in the factors' dtype; a 0-d
    leaf is a (1,) vector with a diagonal factor (kron_torch 0.3.3 fails on one);
    `precond_dtype` None is the params' compute dtype (>= float32) where kron_torch's is float32.

    References: Li (2015), "Preconditioned Stochastic Gradient Descent", arXiv:1512.04202; Li (2018),
    "Preconditioner on Matrix Lie Group for SGD", arXiv:1809.10232; github.com/evanatyourservice/kron_torch.

    >>> import gradtx
    >>> gradtx.scale_by_kron()
    scale_by_kron(b1=0.9, max_size_triangular=8192, min_ndim_triangular=2, momentum_into_precond_update=True,
                  precond_lr=0.1, precond_init_scale=1.0, merge_dims=True, key=0)
    """
    builder = "scale_by_kron"
    check(
        builder, b1=(b1, UNIT), preconditioner_update_probability=(preconditioner_update_probability,
        FRACTION + SCHEDULE + OR_NONE), max_size_triangular=(max_size_triangular, COUNT),
        min_ndim_triangular=(min_ndim_triangular, COUNT), precond_lr=(precond_lr, NONNEG),
        precond_init_scale=(precond_init_scale, POSITIVE),
    )  # fmt: skip
    check(builder, max_skew_triangular=(max_skew_triangular, NONNEG + OR_NONE))
    if memory_save_mode not in MEMORY_SAVE_MODES:
        raise ArgumentValueError(
            builder, "memory_save_mode", f"must be one of {MEMORY_SAVE_MODES}, got {memory_save_mode!r}"
        )
    for flag, value in (("momentum_into_precond_update", momentum_into_precond_update), ("merge_dims", merge_dims)):
        check_flag(builder, flag, value)
    return transformation(
        builder, _init_kron, _update_kron, b1=b1, preconditioner_update_probability=preconditioner_update_probability,
        max_size_triangular=max_size_triangular, min_ndim_triangular=min_ndim_triangular,
        memory_save_mode=memory_save_mode, momentum_into_precond_update=momentum_into_precond_update,
        precond_lr=precond_lr, precond_init_scale=precond_init_scale, merge_dims=merge_dims,
        precond_dtype=check_dtype(builder, "precond_dtype", precond_dtype), max_skew_triangular=max_skew_triangular,
        key=_key_argument(key), accumulator_dtype=first_moment_dtype(builder, mu_dtype, accumulator_dtype),
    )  # fmt: skip


def _ndim_at_least_two(hp: Hyperparams, params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def kron_decay_mask() -> Bound:
    """The leaves `kron` decays by default: those of two or more axes (kron_torch's rule), as a mask
    function params -> tree of bools, equal for every call (so `kron` stays hashable by value).

    >>> import gradtx, jax.numpy as jnp
    >>> gradtx.kron_decay_mask()({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    {'b': False, 'w': True}
    """
    return Bound(_ndim_at_least_two, Hyperparams("kron_decay_mask", (), {}))


def kron(
    learning_rate: ScalarOrSchedule = 0.0003,
    b1: float = 0.9,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    preconditioner_update_probability: ScalarOrSchedule | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    precond_lr: float = 0.1,
    precond_init_scale: float = 1.0,
    merge_dims: bool = True,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    *,
    max_skew_triangular: float | None = None,
    key: Any = 0,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """PSGD Kron (kron_torch's Kron): the preconditioned, RMS-clipped momentum with decoupled weight decay.

        chain(scale_by_kron(...), add_decayed_weights(weight_decay, weight_decay_mask),
              scale_by_learning_rate(learning_rate))

    W <- W - lr (clip_rms(P m^, 1.1) + weight_decay W). `weight_decay_mask` None decays the leaves
    of two or more axes (kron_torch's rule; `kron_decay_mask`). Arguments and defaults are
    kron_torch 0.3.3's (lr 3e-4); see `scale_by_kron` for the rest and where it differs.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.kron(1e-3)
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> updates["w"].shape, updates["b"].shape
    ((3, 4), (4,))
    """
    check("kron", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("kron", {"add_decayed_weights.mask": "weight_decay_mask"}):
        return _kron_chain(
            learning_rate, b1, weight_decay, weight_decay_mask, preconditioner_update_probability, max_size_triangular,
            min_ndim_triangular, memory_save_mode, momentum_into_precond_update, precond_lr, precond_init_scale,
            merge_dims, mu_dtype, precond_dtype, max_skew_triangular, key, accumulator_dtype,
        )  # fmt: skip


def _kron_chain(
    learning_rate, b1, weight_decay, weight_decay_mask, preconditioner_update_probability, max_size_triangular,
    min_ndim_triangular, memory_save_mode, momentum_into_precond_update, precond_lr, precond_init_scale,
    merge_dims, mu_dtype, precond_dtype, max_skew_triangular, key, accumulator_dtype,
) -> GradientTransformation:  # fmt: skip
    return chain(
        scale_by_kron(
            b1, preconditioner_update_probability, max_size_triangular, min_ndim_triangular, memory_save_mode,
            momentum_into_precond_update, precond_lr, precond_init_scale, merge_dims, mu_dtype, precond_dtype,
            max_skew_triangular=max_skew_triangular, key=key, accumulator_dtype=accumulator_dtype,
        ),
        add_decayed_weights(weight_decay, kron_decay_mask() if weight_decay_mask is None else weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )  # fmt: skip
