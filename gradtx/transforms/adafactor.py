"""Adafactor: a factored second moment and a step relative to the parameters' scale (Shazeer & Stern, 2018).

    scale_by_factored_rms   Adafactor's second moment (Alg. 4 and 5):
        d_t = 1 - t^(-decay_rate)                                (t counts updates from 1)
        a matrix (its two largest dimensions >= min_dim_size_to_factor), G2 = g^2 + eps:
            r <- d_t r + (1 - d_t) mean of G2 over the largest dimension   (one value a row)
            c <- d_t c + (1 - d_t) mean of G2 over the other dimension     (one value a column)
            v^ = r c^T / mean(r)
        any other leaf:
            v <- d_t v + (1 - d_t) (g^2 + eps);   v^ = v
        u = g / sqrt(v^)
        (factor_last_dims: the last two dimensions instead; eps_floor: torch's eps, see below)
    scale_by_relative_step   u <- min(lr, 1 / sqrt(t)) u, the paper's step size rho_t (torch's, Keras's)
    adafactor   chain(scale_by_factored_rms, clip_by_block_rms?, scale_by_learning_rate?,
                      scale_by_param_block_rms?, ema(momentum)?, add_decayed_weights?, scale(-1))

The factored moment keeps one number a row and one a column of a matrix instead of one a
coordinate (memory n + m instead of n m); the paper's row and column *sums* give the same v^ as
these means. The moments are real and at least float32.
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
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import (
    COUNT,
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    SCHEDULE,
    ArgumentTypeError,
    arguments_of,
    check,
    check_flag,
)
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.layerwise import clip_by_block_rms, scale_by_param_block_rms
from gradtx.transforms.momentum import ema
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale, scale_by_learning_rate


def _as(value: Any, like: jax.Array) -> jax.Array:
    """A hyperparameter (a number or a tracer) cast to the dtype of `like`, so that it changes no dtype."""
    return jnp.asarray(value).astype(like.dtype)


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


def _factored_dims(hp: Hyperparams, shape: tuple) -> tuple[int, int] | None:
    """(second largest, largest) dimension of a leaf to factor over, or None to keep it whole.

    optax's rule: the two largest dimensions, if the smaller of them is >= min_dim_size_to_factor.
    Ties go to the earlier dimension as second largest (a stable sort). With factor_last_dims
    (torch's, Keras's), the last two: rows (dimension -2) and columns (dimension -1).
    """
    if not hp.factored or len(shape) < 2 or 0 in shape:
        return None
    if hp.factor_last_dims:
        second, largest = len(shape) - 2, len(shape) - 1
    else:
        second, largest = (int(d) for d in np.argsort(shape, kind="stable")[-2:])
    return (second, largest) if min(shape[second], shape[largest]) >= hp.min_dim_size_to_factor else None


def _init_factored_leaf(hp: Hyperparams, p: Any) -> tuple:
    dtype = tree.real_dtype(tree.compute_dtype(p.dtype))  # second moments: real, >= float32
    placeholder = jnp.zeros((1,), dtype)
    dims = _factored_dims(hp, jnp.shape(p))
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


def _floor(hp: Hyperparams, g: jax.Array, like: jax.Array) -> jax.Array | None:
    """torch's eps1 in the dtype of `like` (None: no floor); "machine" is the gradient dtype's epsilon."""
    if hp.eps_floor is None:
        return None
    floor = jnp.finfo(g.dtype).eps if isinstance(hp.eps_floor, str) else hp.eps_floor
    return _as(floor, like)


def _update_factored_leaf(hp: Hyperparams, d: jax.Array, g, v_row, v_col, v) -> tuple:
    g2 = tree.abs_sq(g)
    g2 = g2 + _as(hp.epsilon, g2)  # G2 = g^2 + eps, real, >= float32
    floor = _floor(hp, g, g2)
    dims = _factored_dims(hp, jnp.shape(g))
    if dims is None:
        v = tree.ema(v, g2, d)  # v <- d v + (1 - d) G2
        v_hat = v if floor is None else jnp.maximum(v, floor * floor)  # torch: v^ >= eps1^2
        return tree.safe_div_sqrt(g, v_hat), v_row, v_col, v  # u = g / sqrt(v^)
    second, largest = dims
    v_row = tree.ema(v_row, jnp.mean(g2, axis=largest), d)  # r <- d r + (1 - d) mean of G2 over the largest dim
    v_col = tree.ema(v_col, jnp.mean(g2, axis=second), d)  # c <- d c + (1 - d) mean of G2 over the other dim
    r_mean = jnp.mean(v_row, axis=second if second < largest else second - 1, keepdims=True)  # mean(r)
    if floor is not None:  # torch: v^ = max(r c^T / max(mean(r), eps1), eps1^2)
        v_hat = jnp.expand_dims(v_row / jnp.maximum(r_mean, floor), largest) * jnp.expand_dims(v_col, second)
        return tree.safe_div_sqrt(g, jnp.maximum(v_hat, floor * floor)), v_row, v_col, v
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
    *,
    factor_last_dims: bool = False,
    eps_floor: float | str | None = None,
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

    torch.optim.Adafactor's and Keras's forms (`gradtx.presets`): `factor_last_dims=True` factors
    every leaf of two or more dimensions over its last two (rows: dimension -2, columns: -1; both
    >= `min_dim_size_to_factor`), whatever their sizes; `eps_floor=eps1` is torch's epsilon, a
    floor instead of an addend (with `epsilon=0`):

        v^ = max(r c^T / max(mean(r), eps1), eps1^2)        (the rest: v^ = max(v, eps1^2))

    where eps_floor="machine" is the gradient dtype's machine epsilon (torch's eps=(None, ...)).

    >>> import gradtx
    >>> gradtx.scale_by_factored_rms(min_dim_size_to_factor=64)
    scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=64, epsilon=1e-30)
    """
    check(
        "scale_by_factored_rms",
        decay_rate=(decay_rate, NONNEG), step_offset=(step_offset, COUNT),
        min_dim_size_to_factor=(min_dim_size_to_factor, COUNT), epsilon=(epsilon, NONNEG),
    )  # fmt: skip
    factor_last_dims = check_flag("scale_by_factored_rms", "factor_last_dims", factor_last_dims)
    if isinstance(eps_floor, str) and eps_floor != "machine":
        raise ArgumentTypeError(
            "scale_by_factored_rms", "eps_floor", f'must be a number in [0, inf), "machine" or None, got {eps_floor!r}'
        )
    if not isinstance(eps_floor, str):
        check("scale_by_factored_rms", eps_floor=(eps_floor, NONNEG + OR_NONE))
    if not callable(decay_rate_fn):
        raise ArgumentTypeError(
            "scale_by_factored_rms",
            "decay_rate_fn",
            f"must be a function (count, decay_rate) -> decay, got {decay_rate_fn!r}",
        )
    return transformation(
        "scale_by_factored_rms", _init_factored, _update_factored,
        factored=factored, decay_rate=decay_rate, step_offset=step_offset,
        min_dim_size_to_factor=min_dim_size_to_factor, epsilon=epsilon,
        # The default is kept as None, so that the repr reads as the call that built it.
        decay_rate_fn=None if decay_rate_fn is decay_rate_pow else decay_rate_fn,
        factor_last_dims=factor_last_dims or None, eps_floor=eps_floor,  # None (optax's form): not in the repr
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The relative step size


class ScaleByRelativeStepState(NamedTuple):
    """count: updates applied (int32); t - 1 in rho_t."""

    count: Count


def _init_relative_step(hp: Hyperparams, params) -> ScaleByRelativeStepState:
    return ScaleByRelativeStepState(count=zero_count())


def _update_relative_step(hp: Hyperparams, updates, state: ScaleByRelativeStepState, params=None):
    t = state.count.astype(float) + 1  # t counts updates from 1, as a float (no int32 overflow)
    rho = jnp.minimum(jnp.asarray(value_at(hp.learning_rate, state.count)).astype(t.dtype), 1 / jnp.sqrt(t))
    return tree.scale(rho, updates), ScaleByRelativeStepState(count=next_count(state.count))


def scale_by_relative_step(learning_rate: ScalarOrSchedule = 1e-2) -> GradientTransformation:
    """Adafactor's step size rho_t (Shazeer & Stern, 2018, Sec. 8): the learning rate, capped by 1 / sqrt(t).

        u <- min(lr_k, 1 / sqrt(t)) u           (t = k + 1, k = updates already applied)

    The paper's rho_t = min(1e-2, 1 / sqrt(t)); torch.optim.Adafactor's and Keras's (whose
    `relative_step` takes the same min): 1 / sqrt(t) from the start while lr > 1, then lr once
    t > 1 / lr^2. A schedule learning rate is evaluated at k. Not in optax (its adafactor scales by
    the learning rate alone). `update` needs no params.

    >>> import gradtx
    >>> gradtx.scale_by_relative_step(1e-2)
    scale_by_relative_step(learning_rate=0.01)
    """
    check("scale_by_relative_step", learning_rate=(learning_rate, NONNEG + SCHEDULE))
    return transformation(
        "scale_by_relative_step", _init_relative_step, _update_relative_step, learning_rate=learning_rate
    )


# ---------------------------------------------------------------------------------------------------
# Optimizer


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern, 2018): a factored RMS preconditioner with a relative step size.

    `chain(scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
    clip_by_block_rms(clipping_threshold)?, scale_by_learning_rate(lr, flip_sign=False)?,
    scale_by_param_block_rms()?, ema(momentum, debias=False, accumulator_dtype=dtype_momentum)?,
    add_decayed_weights(weight_decay_rate, weight_decay_mask)?, scale(-1))`, as optax's: each `?`
    member is there unless its argument is None (or False). The paper's update is
    W <- W - rho_t max(eps2, rms(W)) U / max(1, rms(U) / d),  U = g / sqrt(v^), with
    rho_t = `learning_rate` (None: 1), eps2 = 1e-3 and d = `clipping_threshold`. The weight decay
    is added after the learning rate, so it is not scaled by it (optax's order).

    >>> import gradtx
    >>> gradtx.adafactor(1e-2)
    chain(scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=128,
          epsilon=1e-30), clip_by_block_rms(threshold=1.0), scale_by_learning_rate(learning_rate=0.01, flip_sign=False),
          scale_by_param_block_rms(min_scale=0.001), scale(step_size=-1))
    """
    check("adafactor", learning_rate=(learning_rate, LEARNING_RATE + OR_NONE))
    with arguments_of(
        "adafactor",
        {
            "scale_by_factored_rms.epsilon": "eps",
            "scale_by_factored_rms.step_offset": "decay_offset",
            "clip_by_block_rms.threshold": "clipping_threshold",
            "ema.decay": "momentum",
            "ema.accumulator_dtype": "dtype_momentum",
            "add_decayed_weights.weight_decay": "weight_decay_rate",
            "add_decayed_weights.mask": "weight_decay_mask",
        },
    ):
        members = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
        if clipping_threshold is not None:
            members.append(clip_by_block_rms(clipping_threshold))
        if learning_rate is not None:
            members.append(scale_by_learning_rate(learning_rate, flip_sign=False))
        if multiply_by_parameter_scale:
            members.append(scale_by_param_block_rms())
        if momentum is not None:
            members.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
        if weight_decay_rate is not None:
            members.append(add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
        members.append(scale(-1))  # descend
        return chain(*members)


__all__ = ["FactoredState", "ScaleByRelativeStepState", "adafactor", "scale_by_factored_rms", "scale_by_relative_step"]
