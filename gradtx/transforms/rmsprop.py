"""RMSProp: divide each coordinate by the root of an EMA of its squared gradients.

    scale_by_rms       nu <- decay nu + (1 - decay) g^2;   u = g / sqrt(nu + eps)   (Hinton, lecture 6.5)
    scale_by_stddev    the same with nu - mu^2 (centered RMSProp, Graves 2013)
    rmsprop            chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace(momentum)?)

The dtype policy is adam.py's: second moments real and at least float32, first moments (the
centered mean, the momentum) in `accumulator_dtype`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
from gradtx.checks import LEARNING_RATE, NONNEG, SCHEDULE, UNIT, check, check_dtype
from gradtx.combine import chain
from gradtx.transforms.momentum import trace
from gradtx.transforms.scaling import scale_by_learning_rate


def _divide_by_rms(hp: Hyperparams, g, second_moment):
    """g / sqrt(nu + eps) (eps_in_sqrt) or g / (sqrt(nu) + eps): the two placements courses teach."""
    if hp.eps_in_sqrt:
        return tree.div_sqrt(g, second_moment, eps_root=hp.eps)
    return tree.div_sqrt(g, second_moment, hp.eps)


def _check_rms(builder: str, decay: Any, eps: Any, initial_scale: Any, bias_correction: bool) -> None:
    check(builder, decay=(decay, UNIT + SCHEDULE), eps=(eps, NONNEG), initial_scale=(initial_scale, NONNEG))
    if bias_correction and callable(decay):
        raise TypeError(
            f"{builder}: bias_correction=True needs a constant decay (1 - decay^t undoes an average"
            " with a fixed decay), got a schedule. Pass a number, or bias_correction=False."
        )


# ---------------------------------------------------------------------------------------------------
# RMSProp


class ScaleByRmsState(NamedTuple):
    """count: updates applied (int32); nu: EMA of g^2 (real). optax's ScaleByRmsWithCountState."""

    count: Count
    nu: Updates


def _init_rms(hp: Hyperparams, params) -> ScaleByRmsState:
    return ScaleByRmsState(count=zero_count(), nu=tree.second_moment_like(params, hp.initial_scale))


def _update_rms(hp: Hyperparams, g, state: ScaleByRmsState, params=None):
    t = next_count(state.count)
    decay = value_at(hp.decay, state.count)
    nu = tree.ema(state.nu, tree.abs_sq(g), decay)  # nu <- decay nu + (1 - decay) g^2
    nu_hat = tree.bias_correction(nu, decay, t) if hp.bias_correction else nu  # nu^ = nu / (1 - decay^t)
    u = _divide_by_rms(hp, g, nu_hat)  # u = g / sqrt(nu^ + eps)  or  g / (sqrt(nu^) + eps)
    return tree.cast_like(u, g), ScaleByRmsState(count=t, nu=nu)


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp's preconditioner (Hinton, lecture 6.5): divide by the root of an EMA of g^2.

        nu <- decay nu + (1 - decay) g^2       (nu starts at initial_scale)
        nu^ = nu / (1 - decay^t)               (bias_correction=True; otherwise nu^ = nu)
        u  = g / sqrt(nu^ + eps)               (eps_in_sqrt=True: Goodfellow et al., Alg. 8.5)
        u  = g / (sqrt(nu^) + eps)             (eps_in_sqrt=False: the cs231n code, torch)

    t counts updates from 1. `decay` may be a schedule of k = the number of updates already applied,
    unless `bias_correction` is on (1 - decay^t assumes a constant decay). The state always holds
    the count: its fields are those of optax's `ScaleByRmsWithCountState`, whatever
    `bias_correction` is. torch.optim.RMSprop(alpha=decay, eps=eps) is this with
    `eps_in_sqrt=False`, followed by the learning rate. With `eps_in_sqrt=False` and
    `bias_correction=True` it is `scale_by_adam(b1=0, b2=decay)` without the first moment.

    >>> import gradtx
    >>> gradtx.scale_by_rms(0.99, bias_correction=True)
    scale_by_rms(decay=0.99, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=True)
    """
    _check_rms("scale_by_rms", decay, eps, initial_scale, bias_correction)
    return transformation(
        "scale_by_rms", _init_rms, _update_rms,
        decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Centered RMSProp


class ScaleByRStdDevState(NamedTuple):
    """count: updates applied (int32); mu: EMA of g; nu: EMA of g^2 (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_stddev(hp: Hyperparams, params) -> ScaleByRStdDevState:
    return ScaleByRStdDevState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params, hp.initial_scale),
    )


def _update_stddev(hp: Hyperparams, g, state: ScaleByRStdDevState, params=None):
    t = next_count(state.count)
    decay = value_at(hp.decay, state.count)
    mu = tree.ema(state.mu, g, decay)  # mu <- decay mu + (1 - decay) g
    nu = tree.ema(state.nu, tree.abs_sq(g), decay)  # nu <- decay nu + (1 - decay) g^2
    if hp.bias_correction:
        mu_hat = tree.bias_correction(mu, decay, t)  # mu^ = mu / (1 - decay^t)
        nu_hat = tree.bias_correction(nu, decay, t)  # nu^ = nu / (1 - decay^t)
    else:
        mu_hat, nu_hat = mu, nu
    var = tree.sub(nu_hat, tree.abs_sq(mu_hat))  # nu^ - |mu^|^2
    var = tree.maximum(var, tree.zeros_like(var))  # >= 0 in exact arithmetic; rounding can dip below
    u = _divide_by_rms(hp, g, var)  # u = g / sqrt(nu^ - |mu^|^2 + eps)  or  g / (sqrt(...) + eps)
    return tree.cast_like(u, g), ScaleByRStdDevState(count=t, mu=mu, nu=nu)


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Centered RMSProp's preconditioner (Graves, 2013): divide by a running standard deviation.

        mu <- decay mu + (1 - decay) g
        nu <- decay nu + (1 - decay) g^2       (nu starts at initial_scale)
        mu^, nu^ = mu / (1 - decay^t), nu / (1 - decay^t)   (bias_correction=True; else mu, nu)
        u  = g / sqrt(nu^ - mu^^2 + eps)       (eps_in_sqrt=True)
        u  = g / (sqrt(nu^ - mu^^2) + eps)     (eps_in_sqrt=False: torch's centered RMSprop)

    The variance nu^ - mu^^2 is clamped at 0: it is never negative in exact arithmetic, but rounding
    can make it so (with bias correction it is exactly 0 at t = 1), and optax then returns NaN.
    `decay` may be a schedule as in `scale_by_rms`; `accumulator_dtype` sets mu's dtype.
    torch.optim.RMSprop(alpha=decay, eps=eps, centered=True) is this with `eps_in_sqrt=False`,
    followed by the learning rate.

    >>> import gradtx
    >>> gradtx.scale_by_stddev(0.99)
    scale_by_stddev(decay=0.99, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False)
    """
    _check_rms("scale_by_stddev", decay, eps, initial_scale, bias_correction)
    dtype = check_dtype("scale_by_stddev", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_stddev", _init_stddev, _update_stddev,
        decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """RMSProp (Hinton, lecture 6.5): `chain(scale_by_rms(...), scale_by_learning_rate(lr), trace(momentum))`.

    `centered=True` uses `scale_by_stddev` (Graves, 2013) instead of `scale_by_rms`; the trace is
    there only when `momentum` is given (`nesterov=True`: Sutskever et al., 2013). The momentum
    accumulates steps already scaled by the learning rate, as torch does. Matches
    torch.optim.RMSprop(lr, alpha=decay, eps=eps, momentum=..., centered=...) with
    `eps_in_sqrt=False` (torch puts eps outside the root). `accumulator_dtype` sets the dtype of
    the first moments (the centered mean and the momentum trace).

    >>> import gradtx
    >>> gradtx.rmsprop(0.01, momentum=0.9)
    chain(scale_by_rms(decay=0.9, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True), trace(decay=0.9, nesterov=False))
    """
    check("rmsprop", learning_rate=(learning_rate, LEARNING_RATE))
    if centered:
        precondition = scale_by_stddev(
            decay, eps, initial_scale, eps_in_sqrt, bias_correction, accumulator_dtype=accumulator_dtype
        )
    else:
        precondition = scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    if momentum is None:
        return chain(precondition, scale_by_learning_rate(learning_rate))
    return chain(
        precondition,
        scale_by_learning_rate(learning_rate),
        trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
    )


__all__ = ["ScaleByRStdDevState", "ScaleByRmsState", "rmsprop", "scale_by_rms", "scale_by_stddev"]
