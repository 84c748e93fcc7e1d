"""AdEMAMix: Adam whose numerator mixes a fast EMA of the gradients with a slow one (Pagliardini et
al., 2024), and its simplified form with one momentum (Morwani et al., 2025).

    scale_by_ademamix             m1 <- b1 m1 + (1 - b1) g;  m2 <- b3 m2 + (1 - b3) g
                                  u = (m1^ + alpha m2) / (sqrt(v^ + eps_root) + eps)
    scale_by_simplified_ademamix  m <- b1 m + g;  u = (m + alpha g) / (sqrt(v^ + eps_root) + eps)
    ademamix                      chain(scale_by_ademamix, add_decayed_weights, scale_by_learning_rate)
    simplified_ademamix           chain(scale_by_simplified_ademamix, add_decayed_weights, scale_by_learning_rate)

v is Adam's second moment in both. The slow EMA (b3 = 0.9999 remembers ~10,000 steps) keeps very
old gradients in every step; the paper warms alpha and b3 up over the first steps, which the
`alpha` and `b3` schedules express. optax.contrib's names, arguments, defaults and state.
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
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    SCHEDULE,
    UNIT,
    arguments_of,
    check,
    first_moment_dtype,
)
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# AdEMAMix


class ScaleByAdemamixState(NamedTuple):
    """count: updates applied (int32); count_m2: the same count, at which the alpha and b3
    schedules are read (optax's two fields); m1: fast EMA; m2: slow EMA; nu: second moment (real)."""

    count: Count
    count_m2: Count
    m1: Updates
    m2: Updates
    nu: Updates


def _init_ademamix(hp: Hyperparams, params) -> ScaleByAdemamixState:
    return ScaleByAdemamixState(
        count=zero_count(),
        count_m2=zero_count(),
        m1=tree.first_moment_like(params, hp.accumulator_dtype),
        m2=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_ademamix(hp: Hyperparams, g, state: ScaleByAdemamixState, params=None):
    b3, alpha = value_at(hp.b3, state.count_m2), value_at(hp.alpha, state.count_m2)  # at k = updates applied
    t = next_count(state.count)
    m1 = tree.ema(state.m1, g, hp.b1)  # m1 <- b1 m1 + (1 - b1) g
    m2 = tree.ema(state.m2, g, b3)  # m2 <- b3 m2 + (1 - b3) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m1_hat = tree.bias_correction(tree.compute_like(m1, g), hp.b1, t)  # m1^ = m1 / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    mix = tree.add_scale(m1_hat, alpha, tree.compute_like(m2, g))  # m1^ + alpha m2 (m2 not corrected)
    u = tree.div_sqrt(mix, v_hat, hp.eps, hp.eps_root)  # u = (m1^ + alpha m2) / (sqrt(v^ + eps_root) + eps)
    new = ScaleByAdemamixState(count=t, count_m2=next_count(state.count_m2), m1=m1, m2=m2, nu=nu)
    return tree.cast_like(u, g), new


def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix's preconditioner (Pagliardini et al., 2024, Algorithm 1): Adam with a slow EMA added
    to the bias-corrected fast one.

        m1 <- b1 m1 + (1 - b1) g
        m2 <- b3 m2 + (1 - b3) g                (b3 a number or a schedule of k)
        v  <- b2 v + (1 - b2) g^2
        m1^ = m1 / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = (m1^ + alpha m2) / (sqrt(v^ + eps_root) + eps)      (alpha a number or a schedule of k)

    t counts updates from 1; the schedules are read at k = t - 1, the updates already applied
    (optax's `count_m2`). m2 is not bias-corrected (the paper: with b3 near 1 its correction would
    blow up the first steps; the alpha warmup does that job). The paper's warmups, alpha_k = min(k
    alpha / T, alpha) and b3_k = min(exp(log(b1) log(b3) / ((1 - k / T) log(b3) + (k / T) log(b1))),
    b3), are schedules to pass; pytorch_optimizer's `t_alpha_beta3=T` reads them at k + 1 (its
    step counts from 1), so its numbers are these schedules shifted by one step (tests/test_ademamix.py).
    alpha defaults to 6.0 here and 5.0 in `ademamix`, as in optax. v of bfloat16 params is float32
    (gradtx's dtype policy; optax keeps it in `mu_dtype`).

    >>> import gradtx
    >>> gradtx.scale_by_ademamix()
    scale_by_ademamix(b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-08, eps_root=0.0)
    """
    check(
        "scale_by_ademamix",
        b1=(b1, UNIT), b2=(b2, UNIT), b3=(b3, UNIT + SCHEDULE), alpha=(alpha, NONNEG + SCHEDULE),
        eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
    )  # fmt: skip
    dtype = first_moment_dtype("scale_by_ademamix", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_ademamix", _init_ademamix, _update_ademamix,
        b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, eps_root=eps_root, accumulator_dtype=dtype,
    )  # fmt: skip


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al., 2024): `chain(scale_by_ademamix(...), add_decayed_weights(
    weight_decay, mask), scale_by_learning_rate(lr))`, optax.contrib's chain and defaults.

    W <- W - eta (u + lambda W), u as in `scale_by_ademamix`: decoupled weight decay, scaled by the
    learning rate, as the paper's Algorithm 1 and pytorch_optimizer's `AdEMAMix(weight_decouple=True)`
    (its default, `weight_decouple=False`, is L2: `add_decayed_weights` before `scale_by_ademamix`).

    >>> import gradtx
    >>> gradtx.ademamix(1e-3)
    chain(scale_by_ademamix(b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-08, eps_root=0.0),
          add_decayed_weights(weight_decay=0.0), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("ademamix", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("ademamix"):
        return chain(
            scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


# ---------------------------------------------------------------------------------------------------
# Simplified AdEMAMix


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """t: updates applied (int32); m: the momentum, a discounted sum of g; n: second moment (real).
    optax's field names."""

    t: Count
    m: Updates
    n: Updates


def _init_simplified_ademamix(hp: Hyperparams, params) -> ScaleBySimplifiedAdEMAMixState:
    return ScaleBySimplifiedAdEMAMixState(
        t=zero_count(), m=tree.first_moment_like(params), n=tree.second_moment_like(params)
    )


def _update_simplified_ademamix(hp: Hyperparams, g, state: ScaleBySimplifiedAdEMAMixState, params=None):
    alpha = value_at(hp.alpha, state.t)  # at k = updates applied
    t = next_count(state.t)
    m = tree.lerp(state.m, g, hp.b1, 1.0)  # m <- b1 m + g  (in m's dtype)
    n = tree.ema(state.n, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    v_hat = tree.bias_correction(n, hp.b2, t)  # v^ = v / (1 - b2^t)
    mix = tree.add_scale(tree.compute_like(m, g), alpha, g)  # m + alpha g
    u = tree.div_sqrt(mix, v_hat, hp.eps, hp.eps_root)  # u = (m + alpha g) / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleBySimplifiedAdEMAMixState(t=t, m=m, n=n)


def scale_by_simplified_ademamix(
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Simplified AdEMAMix's preconditioner (Morwani et al., 2025): one momentum, kept as a sum
    ("theory style"), plus alpha times the gradient itself.

        m <- b1 m + g
        v <- b2 v + (1 - b2) g^2,   v^ = v / (1 - b2^t)
        u  = (m + alpha g) / (sqrt(v^ + eps_root) + eps)      (alpha a number or a schedule of k)

    t counts updates from 1, the alpha schedule is read at k = t - 1. m is not bias-corrected and
    sums to g / (1 - b1) for a constant g: a learning rate (1 - b1) times Adam's gives the same
    step size (alpha = 0 is Adam with b1 and that rate, but for the bias correction of m). These are
    the authors' code's numbers (DepenM/Simplified-AdEMAMix with its defaults, beta1 not warmed up)
    and optax's. pytorch_optimizer 4.1.0's `SimplifiedAdEMAMix` keeps an EMA, m <- b1 m + (1 - b1) g,
    and divides by sqrt(1 - b2^t) where the authors multiply: its step is this one with alpha / (1 - b1)
    for alpha and the learning rate eta (1 - b1) / (1 - b2^t) (tests/test_ademamix.py). m
    is in the params' dtype (optax's; `state_dtype` stores it in another), v of bfloat16 params in float32.

    >>> import gradtx
    >>> gradtx.scale_by_simplified_ademamix()
    scale_by_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-08, eps_root=0.0)
    """
    check(
        "scale_by_simplified_ademamix",
        b1=(b1, UNIT), b2=(b2, UNIT), alpha=(alpha, NONNEG + SCHEDULE), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
    )  # fmt: skip
    return transformation(
        "scale_by_simplified_ademamix", _init_simplified_ademamix, _update_simplified_ademamix,
        b1=b1, b2=b2, alpha=alpha, eps=eps, eps_root=eps_root,
    )  # fmt: skip


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Simplified AdEMAMix (Morwani et al., 2025): `chain(scale_by_simplified_ademamix(...),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`, optax.contrib's.

    W <- W - eta (u + lambda W), u as in `scale_by_simplified_ademamix` (the authors' weight decay).
    Its m is a sum of about 1 / (1 - b1) gradients: the learning rate is smaller than Adam's by that
    factor (the authors' default is 1e-4 for b1 = 0.99).

    >>> import gradtx
    >>> gradtx.simplified_ademamix(1e-4)
    chain(scale_by_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-08, eps_root=0.0),
          add_decayed_weights(weight_decay=0.0), scale_by_learning_rate(learning_rate=0.0001, flip_sign=True))
    """
    check("simplified_ademamix", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("simplified_ademamix"):
        return chain(
            scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = [
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ademamix",
    "scale_by_ademamix",
    "scale_by_simplified_ademamix",
    "simplified_ademamix",
]
