"""Momentum: running sums and averages of past updates, and the Nesterov look-ahead.

    trace(mu):               t <- mu t + g;               u = t              (heavy ball, optax/torch form)
    trace(mu, dampening=d):  t <- mu t + (1 - d) g after the first step, t_1 = g   (torch.optim.SGD)
    ema(a):                  m <- a m + (1 - a) g;        u = m / (1 - a^t)  (debiased average)
    scale_by_momentum(a):    v <- a v + (1 - a) g;        u = v              (the lecture's EMA form)
    nesterov(mu):            u_k = (1 + mu_{k+1}) v_k - mu_k v_{k-1}           (look-ahead of any momentum)
    bias_correction(a):      u = g / (1 - a^t)

`decay` may be a schedule count -> value; mu_k is its value at k = the number of updates already
applied (so the first update uses mu_0, and the look-ahead of update k uses mu_{k+1}). Every state
keeps that count. Accumulators take `accumulator_dtype` (None: the params' dtype; complex params
keep complex accumulators of that precision, `tree.first_moment_like`); all arithmetic runs in at
least float32 (`gradtx.tree`) and updates come back in the incoming updates' dtypes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

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
    FRACTION,
    LEARNING_RATE,
    MOMENTUM,
    SCHEDULE,
    UNIT,
    ArgumentTypeError,
    ArgumentValueError,
    arguments_of,
    check,
    check_dtype,
    is_zero,
    normalize,
)
from gradtx.combine import chain
from gradtx.transforms.scaling import scale_by_learning_rate


def _require_constant_decay(builder: str, decay: Any, fix: str) -> None:
    # 1 - a^t undoes the zero start of an EMA only when a is constant; with a schedule the weight of
    # the zero start is prod_j a_j, which the state does not keep.
    if callable(decay):
        raise ArgumentTypeError(
            builder, "decay",
            "must be a number: the bias correction 1 - decay^t assumes a constant decay, got the schedule"
            f" {getattr(decay, '__qualname__', decay)!r}. {fix}",
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Heavy-ball momentum (trace)


class TraceState(NamedTuple):
    """trace: the accumulated updates t (optax's field); count: updates applied (int32), for schedules."""

    trace: Updates
    count: Count


def _init_trace(hp: Hyperparams, params) -> TraceState:
    return TraceState(trace=tree.first_moment_like(params, hp.accumulator_dtype), count=zero_count())


def _update_trace(hp: Hyperparams, g, state: TraceState, params=None):
    k1 = next_count(state.count)
    mu = value_at(hp.decay, state.count)
    dampening = hp.kwargs.get("dampening")  # absent when 0: the plain heavy ball, op for op
    if dampening is None:
        t = tree.lerp(state.trace, g, mu, 1)  # t <- mu_k t + g
    else:
        c = jnp.where(state.count == 0, 1.0, 1 - dampening)  # torch's first buffer is g itself
        t = tree.lerp(state.trace, g, mu, c)  # t <- mu_k t + (1 - dampening) g, t_1 = g
    u = tree.cast_like(t, g)  # u = t
    if hp.nesterov:
        u = tree.add_scale(g, value_at(hp.decay, k1), t)  # u = g + mu_{k+1} t
    return u, TraceState(trace=t, count=k1)


def trace(
    decay: ScalarOrSchedule, nesterov: bool = False, accumulator_dtype: Any = None, *, dampening: float = 0.0
) -> GradientTransformation:
    """Heavy-ball momentum: a decaying sum of past updates (Polyak, 1964).

        t <- mu t + g             (with dampening d: t <- mu t + (1 - d) g, and t = g at the first step)
        u  = t                    (nesterov=False)
        u  = g + mu_{k+1} t       (nesterov=True; for a constant decay: g + mu t)

    mu = `decay`, a number or a schedule (mu_k at k = updates already applied), in [0, 1].
    The lecture's heavy ball  v <- mu v - eta g;  W <- W + v  is `chain(trace(mu),
    scale_by_learning_rate(eta))`: with v = -eta t, v <- mu v - eta g is exactly t <- mu t + g
    times -eta (for a constant eta; with a learning-rate schedule the chain rescales the whole
    trace by today's eta, the lecture form keeps each step's own eta).
    Same as torch.optim.SGD(momentum=mu, dampening=0, nesterov=...) with lr = 1 and a constant mu:
    torch's first step sets its buffer to g, which is mu * 0 + g. Unlike optax, the state also has
    a step count, so that decay may be a schedule (e.g. `gradtx.sutskever_momentum_schedule`).
    `accumulator_dtype` sets the dtype of t (default: the params' dtype). `dampening` d in [0, 1]
    is torch.optim.SGD's: from the second step on, the gradient enters the trace times 1 - d, the
    first step sets t = g undamped, as torch does (d = 0, the default, is the plain heavy ball;
    optax has no dampening). With nesterov=True the look-ahead is g + mu t on the damped trace,
    which torch refuses to combine.

    >>> import gradtx
    >>> gradtx.trace(0.9, nesterov=True)
    trace(decay=0.9, nesterov=True)
    >>> gradtx.trace(0.9, dampening=0.5)
    trace(decay=0.9, nesterov=False, dampening=0.5)
    """
    check("trace", decay=(decay, MOMENTUM + SCHEDULE), dampening=(dampening, FRACTION))
    dtype = check_dtype("trace", "accumulator_dtype", accumulator_dtype)
    # A zero dampening is not stored: trace(mu) and trace(mu, dampening=0) are the same object.
    damped: dict[str, Any] = {} if is_zero(normalize(dampening)) else {"dampening": dampening}
    return transformation(
        "trace", _init_trace, _update_trace, decay=decay, nesterov=nesterov, accumulator_dtype=dtype, **damped
    )


# ---------------------------------------------------------------------------------------------------
# Exponential moving average (ema)


class EmaState(NamedTuple):
    """count: updates applied (int32); ema: the raw (not debiased) average m."""

    count: Count
    ema: Updates


def _init_ema(hp: Hyperparams, params) -> EmaState:
    return EmaState(count=zero_count(), ema=tree.first_moment_like(params, hp.accumulator_dtype))


def _update_ema(hp: Hyperparams, g, state: EmaState, params=None):
    t = next_count(state.count)
    a = value_at(hp.decay, state.count)
    m = tree.ema(state.ema, g, a)  # m <- a m + (1 - a) g
    u = tree.bias_correction(m, a, t) if hp.debias else m  # u = m / (1 - a^t)
    return tree.cast_like(u, g), EmaState(count=t, ema=m)


def ema(decay: ScalarOrSchedule, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    """An exponential moving average of past updates, debiased by default.

        m <- a m + (1 - a) g
        u  = m / (1 - a^t)       (debias=True; t counts updates from 1)
        u  = m                   (debias=False)

    a = `decay` in [0, 1). Starting from m = 0, m is an average with total weight 1 - a^t; the
    division makes it a true average from the first step (Kingma & Ba, 2015, Sec. 3). The state keeps
    the raw m, as optax's does. A schedule decay needs debias=False (1 - a^t assumes a constant a).
    Compare `trace` (t <- mu t + g, no 1 - a) and `scale_by_momentum` (this without debiasing).

    >>> import gradtx
    >>> gradtx.ema(0.99)
    ema(decay=0.99, debias=True)
    """
    check("ema", decay=(decay, UNIT + SCHEDULE))
    if debias:
        _require_constant_decay(
            "ema",
            decay,
            "Pass a number, or debias=False (a decay schedule that starts low is itself a warm-up).",
        )
    dtype = check_dtype("ema", "accumulator_dtype", accumulator_dtype)
    return transformation("ema", _init_ema, _update_ema, decay=decay, debias=debias, accumulator_dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# EMA-form momentum (scale_by_momentum)


class ScaleByMomentumState(NamedTuple):
    """count: updates applied (int32); mu: the velocity v, an EMA of past updates."""

    count: Count
    mu: Updates


def _init_momentum(hp: Hyperparams, params) -> ScaleByMomentumState:
    return ScaleByMomentumState(count=zero_count(), mu=tree.first_moment_like(params, hp.accumulator_dtype))


def _update_momentum(hp: Hyperparams, g, state: ScaleByMomentumState, params=None):
    k1 = next_count(state.count)
    a = value_at(hp.decay, state.count)
    v = tree.ema(state.mu, g, a)  # v <- a_k v + (1 - a_k) g
    u = tree.cast_like(v, g)  # u = v
    if hp.nesterov:
        u = tree.lerp(g, v, 1 - a, value_at(hp.decay, k1))  # u = a_{k+1} v + (1 - a_k) g
    return u, ScaleByMomentumState(count=k1, mu=v)


def scale_by_momentum(
    decay: ScalarOrSchedule, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """The lecture's EMA-form momentum: the update is a moving average of gradients.

        v <- a v + (1 - a) g
        u  = v                           (nesterov=False)
        u  = a_{k+1} v + (1 - a_k) g     (nesterov=True; for a constant decay: a v + (1 - a) g)

    a = `decay` in [0, 1) (a = 0 is plain SGD), a number or a schedule (a_k at k = updates already
    applied). With `scale_by_learning_rate(eta)` after it this is  v <- a v + (1 - a) g;  W <- W - eta v.
    For a constant a, v is (1 - a) times `trace(a)`'s output (nesterov or not), so learning rate
    eta / (1 - a) here equals eta with `trace`. torch.optim.SGD(momentum=a, dampening=a) applies
    the same recursion from its second step on: its first step sets its buffer to g, not
    (1 - a) g, so its buffer stays ours plus a^(k+1) g_0, a difference that decays but never
    vanishes. Goodfellow et al. (2016), Algorithm 8.2, write momentum in the heavy-ball form
    (`trace`). Not in optax (optax's momentum is `trace`); no bias correction (see `ema`).

    >>> import gradtx
    >>> gradtx.scale_by_momentum(0.9)
    scale_by_momentum(decay=0.9, nesterov=False)
    """
    check("scale_by_momentum", decay=(decay, UNIT + SCHEDULE))
    dtype = check_dtype("scale_by_momentum", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_momentum", _init_momentum, _update_momentum,
        decay=decay, nesterov=nesterov, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Nesterov look-ahead (nesterov)


class NesterovState(NamedTuple):
    """count: updates applied (int32); prev: the previous incoming update v_{k-1} (zero at start)."""

    count: Count
    prev: Updates


def _init_nesterov(hp: Hyperparams, params) -> NesterovState:
    return NesterovState(count=zero_count(), prev=tree.zeros_like(params))


def _update_nesterov(hp: Hyperparams, v, state: NesterovState, params=None):
    k1 = next_count(state.count)
    mu = value_at(hp.decay, state.count)
    mu1 = value_at(hp.decay, k1)
    u = tree.lerp(v, state.prev, 1 + mu1, -mu)  # u_k = (1 + mu_{k+1}) v_k - mu_k v_{k-1}
    return u, NesterovState(count=k1, prev=tree.cast_like(v, state.prev))


def nesterov(decay: ScalarOrSchedule) -> GradientTransformation:
    """Turns the momentum placed right before it into its Nesterov form (Sutskever et al., 2013).

        u_k = (1 + mu_{k+1}) v_k - mu_k v_{k-1}

    v_k is the incoming update (the momentum's output), v_{-1} = 0, and mu_k = `decay` at k =
    updates already applied (a number or a schedule in [0, 1], the same decay as the momentum's).
    This is the lecture's reformulation with phi = W + mu v, which needs the gradient only at the
    current point:  v_t = mu v_{t-1} - eps grad f(phi_{t-1});  phi_t = phi_{t-1} - mu v_{t-1} +
    (1 + mu) v_t. So `chain(trace(mu), nesterov(mu), scale_by_learning_rate(eps))` moves the params
    along phi of  v <- mu v - eps grad f(W + mu v);  W <- W + v. For any linear momentum v_k =
    mu_k v_{k-1} + c_k g_k it gives u = mu_{k+1} v_k + c_k g_k, hence
    `chain(trace(mu), nesterov(mu)) == trace(mu, nesterov=True)` and
    `chain(scale_by_momentum(a), nesterov(a)) == scale_by_momentum(a, nesterov=True)`, schedules
    included; with a constant mu, `chain(trace(mu), nesterov(mu), scale_by_learning_rate(eta))` is
    torch.optim.SGD(lr=eta, momentum=mu, nesterov=True). Goodfellow et al. (2016) write the same
    method as Algorithm 8.3 (the gradient taken at the interim point W + mu v). Not in optax.

    >>> import gradtx
    >>> gradtx.chain(gradtx.trace(0.9), gradtx.nesterov(0.9))
    chain(trace(decay=0.9, nesterov=False), nesterov(decay=0.9))
    """
    check("nesterov", decay=(decay, MOMENTUM + SCHEDULE))
    return transformation("nesterov", _init_nesterov, _update_nesterov, decay=decay)


# ---------------------------------------------------------------------------------------------------
# Bias correction (bias_correction)


class BiasCorrectionState(NamedTuple):
    """count: updates applied (int32)."""

    count: Count


def _init_bias_correction(hp: Hyperparams, params) -> BiasCorrectionState:
    return BiasCorrectionState(count=zero_count())


def _update_bias_correction(hp: Hyperparams, g, state: BiasCorrectionState, params=None):
    t = next_count(state.count)
    u = tree.bias_correction(g, hp.decay, t)  # u = g / (1 - a^t)
    return u, BiasCorrectionState(count=t)


def bias_correction(decay: float) -> GradientTransformation:
    """Divides updates by 1 - a^t: undoes the zero start of an EMA with decay a placed before it.

        u = g / (1 - a^t)        (t counts updates from 1)

    a = `decay` in [0, 1), a constant. `chain(ema(a, debias=False), bias_correction(a))` equals
    `ema(a)`, and `chain(scale_by_momentum(b1), bias_correction(b1))` is Adam's m^ (Kingma & Ba,
    2015). `gradtx.tree.bias_correction` is the same on a tree. Not in optax.

    >>> import gradtx
    >>> gradtx.bias_correction(0.9)
    bias_correction(decay=0.9)
    """
    check("bias_correction", decay=(decay, UNIT))
    return transformation("bias_correction", _init_bias_correction, _update_bias_correction, decay=decay)


# ---------------------------------------------------------------------------------------------------
# Optimizer


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    *,
    dampening: float = 0.0,
) -> GradientTransformation:
    """Stochastic gradient descent: `chain(trace(momentum, nesterov), scale_by_learning_rate(lr))`.

    Without momentum (the default) the chain is `scale_by_learning_rate` alone: W <- W - eta g.
    With it, see `trace` (heavy ball, or Nesterov with `nesterov=True`). Matches
    torch.optim.SGD(lr, momentum, dampening, nesterov=nesterov): `dampening` d (default 0, not in
    optax) damps the gradient in the trace, t <- mu t + (1 - d) g, from the second step on (see
    `trace`). torch ignores dampening without momentum; here that combination is an error.

    >>> import gradtx
    >>> gradtx.sgd(0.1, momentum=0.9)
    chain(trace(decay=0.9, nesterov=False), scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    >>> gradtx.sgd(0.1, momentum=0.9, dampening=0.1)
    chain(trace(decay=0.9, nesterov=False, dampening=0.1), scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("sgd", learning_rate=(learning_rate, LEARNING_RATE), dampening=(dampening, FRACTION))
    traced = any(isinstance(x, jax.core.Tracer) for x in (dampening, momentum))  # inject_hyperparams: unknown here
    if not traced and not is_zero(normalize(dampening)) and (momentum is None or is_zero(normalize(momentum))):
        raise ArgumentValueError(
            "sgd", "dampening",
            f"damps the momentum's trace, and there is none (momentum={momentum!r}), got {dampening!r}:"
            " pass a momentum, or leave dampening at 0 (torch.optim.SGD ignores it without momentum)",
        )  # fmt: skip
    with arguments_of("sgd", {"trace.decay": "momentum"}):
        if momentum is None:
            return chain(scale_by_learning_rate(learning_rate))
        return chain(
            trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype, dampening=dampening),
            scale_by_learning_rate(learning_rate),
        )


__all__ = [
    "BiasCorrectionState", "EmaState", "NesterovState", "ScaleByMomentumState", "TraceState",
    "bias_correction", "ema", "nesterov", "scale_by_momentum", "sgd", "trace",
]  # fmt: skip
