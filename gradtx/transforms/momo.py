"""MoMo: momentum with a Polyak step size from a model of the loss (Schaipp et al., 2023).

    momo        f^ <- b f^ + (1 - b) f;  d <- b d + (1 - b) g;  gamma <- b gamma + (1 - b) <g, x>
                tau = min(alpha, max((1 + alpha lambda)(f^ - f* - gamma) + <d, x>, 0) / ||d||^2)
                u = -alpha lambda / (1 + alpha lambda) x - tau d
    momo_adam   u = -alpha lambda / (1 + alpha lambda) x - tau d / D,   D = eps + sqrt(v^)
                                          (Adam's preconditioner; tau as in momo, with bias corrections)

The step size is the largest one (up to alpha = learning_rate) that does not step below f*, a
lower bound of the loss (0 for most losses), on a model built from averaged losses, gradients and
<g, x>. The update needs the loss: `tx.update(grads, state, params, value=loss)`, which
`gradtx.make_step(tx, loss_fn)` passes. Each update holds the learning rate and the sign: no
`scale_by_learning_rate` follows it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Params,
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, POSITIVE, REAL, UNIT, check, check_flag, require_params

# "If the denominator is zero, take no step": optax's threshold, the float64 machine epsilon.
TINY = float(np.finfo(np.float64).eps)


def _scalar_dtype(params: Params) -> np.dtype:
    """The dtype of the state's scalars: the params' widest real compute dtype (float32 for none)."""
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _vdot(a: Updates, b: Updates, dtype: Any) -> jax.Array:
    """<a, b> = Re(sum over all leaves of conj(a) b), in at least float32, as a scalar of `dtype`."""
    parts = [
        jnp.sum((jnp.conj(x.astype(tree.compute_dtype(x.dtype))) * y.astype(tree.compute_dtype(x.dtype))).real)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum((p.astype(dtype) for p in parts), jnp.zeros([], dtype))


def loss_value(builder: str, extra_args: dict, dtype: Any) -> jax.Array:
    """The loss passed to `update` as `value=`, a scalar of `dtype`, or an error saying how to pass it."""
    value = extra_args.get("value")
    if value is None:
        raise TypeError(
            f"{builder}: update needs the loss at params as a keyword argument: tx.update(grads, state, params,"
            " value=loss). gradtx.make_step(tx, loss_fn) passes it; with jax.value_and_grad, pass its value."
        )
    if jnp.shape(value) != ():
        raise ValueError(f"{builder}: value must be the scalar loss, got shape {jnp.shape(value)}")
    return jnp.asarray(value).astype(dtype)


def _factors(hp: Hyperparams, count: Count, dtype: Any) -> tuple[Any, Any]:
    alpha = jnp.asarray(value_at(hp.learning_rate, count)).astype(dtype)
    return alpha, 1 + alpha * hp.weight_decay  # alpha, 1 + alpha lambda


def _step_size(numerator: jax.Array, norm: jax.Array) -> jax.Array:
    """max(numerator, 0) / norm, and 0 where norm <= TINY (no direction: no step); NaN stays NaN."""
    flat = norm <= TINY
    t1 = jnp.maximum(numerator, jnp.zeros_like(numerator)) / jnp.where(flat, jnp.ones_like(norm), norm)
    return jnp.where(flat, jnp.zeros_like(t1), t1)


def _decayed(shrink: Any, x: Params, tau: jax.Array, d: Updates, like: Updates) -> Updates:
    """u = -shrink x - tau d, in the gradients' dtypes."""
    return tree.cast_like(tree.lerp(tree.compute_like(d, like), tree.compute_like(x, like), -tau, -shrink), like)


# ---------------------------------------------------------------------------------------------------
# MoMo


class MomoState(NamedTuple):
    """exp_avg: d, the EMA of g; barf: f^, the EMA of the losses; gamma: the EMA of <g, x>; lb: f*,
    the loss's lower bound (estimated with adapt_lower_bound); count: updates applied (int32)."""

    exp_avg: Updates
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: Count


def _init_momo(hp: Hyperparams, params) -> MomoState:
    dtype = _scalar_dtype(params)
    zero = jnp.zeros([], dtype)
    return MomoState(
        exp_avg=tree.first_moment_like(params), barf=zero, gamma=zero, lb=jnp.asarray(hp.lower_bound, dtype),
        count=zero_count(),
    )  # fmt: skip


def _update_momo(hp: Hyperparams, g, state: MomoState, params=None, **extra_args):
    params = require_params("momo", params)
    dtype = state.barf.dtype
    f = loss_value("momo", extra_args, dtype)
    k = state.count
    b = jnp.where(k == 0, jnp.zeros([], dtype), jnp.asarray(hp.beta, dtype))  # the first step starts the averages
    barf = b * state.barf + (1 - b) * f  # f^ <- b f^ + (1 - b) f
    d = tree.ema(state.exp_avg, g, b)  # d <- b d + (1 - b) g
    gamma = b * state.gamma + (1 - b) * _vdot(g, params, dtype)  # gamma <- b gamma + (1 - b) <g, x>
    norm = _vdot(d, d, dtype)  # ||d||^2
    iprod = _vdot(d, params, dtype)  # <d, x>
    alpha, c = _factors(hp, k, dtype)  # c = 1 + alpha lambda
    lb = state.lb
    if hp.adapt_lower_bound:  # f* <- max(cap / (2 c), f*_0) where the model's value cap falls below c f*
        cap = c * (barf - gamma) + iprod
        lb = jnp.where(cap < c * lb, jnp.maximum(cap / (2 * c), hp.lower_bound), lb)
    tau = jnp.minimum(alpha, _step_size(c * (barf - lb - gamma) + iprod, norm))  # tau = min(alpha, t1)
    u = _decayed(alpha * hp.weight_decay / c, params, tau, d, g)  # u = -alpha lambda / c x - tau d
    if hp.adapt_lower_bound:
        lb = jnp.maximum(barf + iprod - gamma - tau * norm / 2, hp.lower_bound)
    return u, MomoState(exp_avg=d, barf=barf, gamma=gamma, lb=lb, count=next_count(k))


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo (Schaipp et al., 2023, Algorithm 1): SGD with momentum and a model-based Polyak step.

        f^    <- b f^ + (1 - b) f              (b = beta, and 0 at the first step: the averages start there)
        d     <- b d + (1 - b) g
        gamma <- b gamma + (1 - b) <g, x>
        c     = 1 + alpha lambda               (alpha = learning_rate, lambda = weight_decay)
        tau   = min(alpha, max(c (f^ - f* - gamma) + <d, x>, 0) / ||d||^2)     (0 where ||d|| = 0)
        u     = -alpha lambda / c x - tau d

    f = the loss at x, passed as `tx.update(grads, state, params, value=loss)` (`make_step` passes
    it; a TypeError names `value` when it is missing); f* = `lower_bound`. With
    `adapt_lower_bound=True`, f* is estimated on the fly (the paper's MoMo*), never below
    `lower_bound`. The update descends as it is. Same as optax.contrib.momo, and with
    weight_decay = 0 as the authors' `momo.Momo(lr, beta=b, lb=f*)`; with weight_decay > 0 the
    authors' code divides the whole new point by c, (x - tau d) / c, where optax (and this)
    divide x only. Complex params: <a, b> = Re(conj(a) b).

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.momo()
    >>> x = jnp.asarray([1.0, 2.0])
    >>> u, state = tx.update(2 * x, tx.init(x), x, value=jnp.sum(x**2))  # loss 5, gradient 2x
    >>> u.tolist()  # tau = f / ||g||^2 = 1/4: the step to f* = 0 on the linear model
    [-0.5, -1.0]
    """
    check(
        "momo",
        learning_rate=(learning_rate, LEARNING_RATE), beta=(beta, UNIT), lower_bound=(lower_bound, REAL),
        weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    return transformation(
        "momo", _init_momo, _update_momo,
        learning_rate=learning_rate, beta=beta, lower_bound=lower_bound, weight_decay=weight_decay,
        adapt_lower_bound=check_flag("momo", "adapt_lower_bound", adapt_lower_bound), extra_args=True,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# MoMo-Adam


class MomoAdamState(NamedTuple):
    """exp_avg: d, the EMA of g; exp_avg_sq: v, the EMA of g^2 (real, at least float32); barf: f^;
    gamma: the EMA of <g, x>; lb: f*; count: updates applied (int32)."""

    exp_avg: Updates
    exp_avg_sq: Updates
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: Count


def _init_momo_adam(hp: Hyperparams, params) -> MomoAdamState:
    dtype = _scalar_dtype(params)
    zero = jnp.zeros([], dtype)
    return MomoAdamState(
        exp_avg=tree.first_moment_like(params), exp_avg_sq=tree.second_moment_like(params), barf=zero,
        gamma=zero, lb=jnp.asarray(hp.lower_bound, dtype), count=zero_count(),
    )  # fmt: skip


def _update_momo_adam(hp: Hyperparams, g, state: MomoAdamState, params=None, **extra_args):
    params = require_params("momo_adam", params)
    dtype = state.barf.dtype
    f = loss_value("momo_adam", extra_args, dtype)
    t = next_count(state.count)
    barf = hp.b1 * state.barf + (1 - hp.b1) * f  # f^ <- b1 f^ + (1 - b1) f
    d = tree.ema(state.exp_avg, g, hp.b1)  # d <- b1 d + (1 - b1) g
    v = tree.ema(state.exp_avg_sq, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    d_over_D = tree.div_sqrt(tree.compute_like(d, g), tree.bias_correction(v, hp.b2, t), hp.eps)  # d / D
    norm = _vdot(d, d_over_D, dtype)  # <d, d / D>, D = eps + sqrt(v / (1 - b2^t))
    gamma = hp.b1 * state.gamma + (1 - hp.b1) * _vdot(g, params, dtype)  # gamma <- b1 gamma + (1 - b1) <g, x>
    iprod = _vdot(d, params, dtype)  # <d, x>
    bc1 = tree.one_minus_pow(hp.b1, t, dtype)  # 1 - b1^t
    alpha, c = _factors(hp, state.count, dtype)  # c = 1 + alpha lambda
    lb = state.lb
    if hp.adapt_lower_bound:
        cap = c * (barf - gamma) + iprod
        lb = jnp.where(cap < c * bc1 * lb, jnp.maximum(cap / (2 * bc1 * c), hp.lower_bound), lb)
    tau = jnp.minimum(alpha / bc1, _step_size(c * (barf - bc1 * lb - gamma) + iprod, norm))
    u = _decayed(alpha * hp.weight_decay / c, params, tau, d_over_D, g)  # u = -alpha lambda / c x - tau d / D
    if hp.adapt_lower_bound:
        lb = jnp.maximum((barf + iprod - gamma - tau * norm / 2) / bc1, hp.lower_bound)
    return u, MomoAdamState(exp_avg=d, exp_avg_sq=v, barf=barf, gamma=gamma, lb=lb, count=t)


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo-Adam (Schaipp et al., 2023, Algorithm 2): Adam with a model-based Polyak step.

        f^ <- b1 f^ + (1 - b1) f;   d <- b1 d + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        gamma <- b1 gamma + (1 - b1) <g, x>
        D   = eps + sqrt(v / (1 - b2^t)),   rho = 1 - b1^t,   c = 1 + alpha lambda
        tau = min(alpha / rho, max(c (f^ - rho f* - gamma) + <d, x>, 0) / <d, d / D>)
        u   = -alpha lambda / c x - tau d / D

    As `momo` (the loss goes in as `value=`; `adapt_lower_bound` estimates f*), with Adam's
    preconditioner. Same as optax.contrib.momo_adam, and with weight_decay = 0 as the authors'
    `momo.MomoAdam(lr, betas=(b1, b2), eps=eps, lb=f*)`.

    >>> import gradtx
    >>> gradtx.momo_adam()
    momo_adam(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-08, lower_bound=0.0, weight_decay=0.0,
              adapt_lower_bound=False)
    """
    check(
        "momo_adam",
        learning_rate=(learning_rate, LEARNING_RATE), b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, POSITIVE),
        lower_bound=(lower_bound, REAL), weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    return transformation(
        "momo_adam", _init_momo_adam, _update_momo_adam,
        learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, lower_bound=lower_bound, weight_decay=weight_decay,
        adapt_lower_bound=check_flag("momo_adam", "adapt_lower_bound", adapt_lower_bound), extra_args=True,
    )  # fmt: skip


__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam"]
