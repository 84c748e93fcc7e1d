"""AdaBelief: Adam whose second moment tracks (g - m)^2, the "belief" in the gradient (Zhuang et al., 2020).

scale_by_belief   s <- b2 s + (1 - b2) (g - m)^2 + eps_root;   u = m^ / (sqrt(s^) + eps)
adabelief         chain(scale_by_belief, scale_by_learning_rate)
scale_by_acprop   ACProp (Zhuang et al., 2021): AdaBelief's s, one step late: u = g / (sqrt(s^_{t-1}) + eps)
acprop            chain(scale_by_acprop, add_decayed_weights, scale_by_learning_rate)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

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
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, arguments_of, check, check_dtype
from gradtx.combine import chain
from gradtx.transforms.adam import corrected_first_moment
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# AdaBelief


class ScaleByBeliefState(NamedTuple):
    """count: updates applied (int32); mu: m, the EMA of g; nu: s, the EMA of (g - m)^2 (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_belief(hp: Hyperparams, params) -> ScaleByBeliefState:
    return ScaleByBeliefState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_belief(hp: Hyperparams, g, state: ScaleByBeliefState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    surprise = tree.abs_sq(tree.sub(tree.compute_like(g, g), mu))  # (g - m)^2, with the new m
    s = tree.add(tree.ema(state.nu, surprise, hp.b2), tree.full_like(state.nu, hp.eps_root))  # s <- ... + eps_root
    m_hat = corrected_first_moment(hp, mu, g, t)  # m^ = m / (1 - b1^t), or NAdam's look-ahead
    s_hat = tree.bias_correction(s, hp.b2, t)  # s^ = s / (1 - b2^t)
    u = tree.div_sqrt(m_hat, s_hat, hp.eps)  # u = m^ / (sqrt(s^) + eps)
    return tree.cast_like(u, g), ScaleByBeliefState(count=t, mu=mu, nu=s)


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief's preconditioner (Zhuang et al., 2020): divide by the RMS of g's surprise g - m.

        m <- b1 m + (1 - b1) g
        s <- b2 s + (1 - b2) (g - m)^2 + eps_root      (the new m; eps_root is added every step)
        m^ = m / (1 - b1^t),   s^ = s / (1 - b2^t)
        u  = m^ / (sqrt(s^) + eps)

    Where gradients agree with their average (g ~ m) the step is large; where they scatter, small.
    The paper's Algorithm 2 is this with eps_root = eps (its eps enters s too); the defaults are
    optax's and the authors' code's (1e-16, 1e-16), the paper's experiments use eps = 1e-8.
    `nesterov=True` uses NAdam's m^ (see `scale_by_adam`). Complex params: (g - m)^2 is |g - m|^2.

    >>> import gradtx
    >>> gradtx.scale_by_belief()
    scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False)
    """
    check("scale_by_belief", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = check_dtype("scale_by_belief", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_belief", _init_belief, _update_belief,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al., 2020): `chain(scale_by_belief(...), scale_by_learning_rate(lr))`.

    See `scale_by_belief` (the defaults are the authors' code's; the paper's experiments use eps = 1e-8).

    >>> import gradtx
    >>> gradtx.adabelief(1e-3)
    chain(scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adabelief", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adabelief"):
        return chain(
            scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            scale_by_learning_rate(learning_rate),
        )


# ---------------------------------------------------------------------------------------------------
# ACProp


def _update_acprop(hp: Hyperparams, g, state: ScaleByBeliefState, params=None):
    k = state.count  # updates already applied
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    surprise = tree.abs_sq(tree.sub(tree.compute_like(g, g), state.mu))  # (g - m_(t-1))^2: the old m
    s = tree.add(tree.ema(state.nu, surprise, hp.b2), tree.full_like(state.nu, hp.eps_root))  # s <- ... + eps_root
    first = k == 0  # no s_(t-1) yet: s^ = 1, so the first step is g / (1 + eps)
    s_prev_hat = tree.bias_correction(state.nu, hp.b2, jnp.where(first, next_count(k), k))  # s^_(t-1)
    s_prev_hat = tree.where(first, tree.full_like(s_prev_hat, 1.0), s_prev_hat)
    u = tree.div_sqrt(tree.compute_like(g, g), s_prev_hat, hp.eps)  # u = g / (sqrt(s^_(t-1)) + eps)
    return tree.cast_like(u, g), ScaleByBeliefState(count=next_count(k), mu=mu, nu=s)


def scale_by_acprop(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-16, eps_root: float = 1e-16, *, accumulator_dtype: Any = None
) -> GradientTransformation:
    """ACProp's preconditioner (Zhuang et al., 2021): AdaBelief's second moment, used one step late.

        m <- b1 m + (1 - b1) g
        s <- b2 s + (1 - b2) (g - m_{t-1})^2 + eps_root      (the surprise against the previous m)
        s^_{t-1} = s_{t-1} / (1 - b2^(t-1)),   and 1 at the first step
        u = g / (sqrt(s^_{t-1}) + eps)

    "Asynchronous": the denominator holds only past gradients, so it is independent of the
    numerator g, and "centered": s tracks g - m. The numerator is the raw gradient, as in optax
    and the authors' code (m is kept for s). Same as optax.contrib.scale_by_acprop (its state,
    ScaleByBeliefState, too). Complex params: (g - m)^2 is |g - m|^2.

    >>> import gradtx
    >>> gradtx.scale_by_acprop()
    scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16)
    """
    check("scale_by_acprop", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = check_dtype("scale_by_acprop", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_acprop", _init_belief, _update_acprop,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype,
    )  # fmt: skip


def acprop(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    weight_decay: float = 0.0,
    mask: Any | Callable[[Params], Any] | None = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """ACProp (Zhuang et al., 2021): `chain(scale_by_acprop(b1, b2, eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    See `scale_by_acprop`. The decay is added after the preconditioner and scaled by the learning
    rate (as torch's and optax's AdamW-style decay). Same as optax.contrib.acprop.

    >>> import gradtx
    >>> gradtx.acprop(1e-3)
    chain(scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16), add_decayed_weights(weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("acprop", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("acprop"):
        return chain(
            scale_by_acprop(b1, b2, eps, eps_root, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByBeliefState", "acprop", "adabelief", "scale_by_acprop", "scale_by_belief"]
