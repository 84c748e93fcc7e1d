"""Adam-atan2: Adam without eps, atan2(m^, b sqrt(v^)) in place of m^ / (sqrt(v^) + eps) (Everett et al., 2024).

    scale_by_adam_atan2   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  u = a atan2(m^, b sqrt(v^))
    adam_atan2            chain(scale_by_adam_atan2, add_decayed_weights, scale_by_learning_rate)

atan2(x, y) = arctan(x / y) for y > 0 is x / y near 0 and bounded by pi / 2: Adam's ratio where it
is small, a clipped step where v^ is tiny, and no eps to tune (nor to rescale with the model's
width, which is why the paper proposes it). The second moment is real and at least float32; the
first follows the first-moment policy (`mu_dtype` / `accumulator_dtype`).
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
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, arguments_of, check, first_moment_dtype
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# Adam-atan2


class ScaleByAdamAtan2State(NamedTuple):
    """count: updates applied (int32); mu: first moment m; nu: second moment v (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_adam_atan2(hp: Hyperparams, params) -> ScaleByAdamAtan2State:
    return ScaleByAdamAtan2State(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _atan2_leaf(hp: Hyperparams, m: jax.Array, v: jax.Array) -> jax.Array:
    """a atan2(m, b sqrt(v)) for v >= 0, in m's dtype; a complex m keeps its phase,
    (m / |m|) a atan2(|m|, b sqrt(v)). 0 where m = 0 and v = 0, with a zero gradient there too."""
    r = jnp.abs(m) if jnp.iscomplexobj(m) else m  # real, m's precision
    v = v.astype(r.dtype)
    positive = v > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1)), 0)  # sqrt(v), gradient 0 at v = 0
    y = jnp.asarray(hp.b).astype(r.dtype) * root  # b sqrt(v)
    origin = (r == 0) & (y == 0)  # atan2(0, 0): 0, but its gradient is 0 / 0
    angle = jnp.arctan2(jnp.where(origin, 0, r), jnp.where(origin, 1, y))
    angle = jnp.asarray(hp.a).astype(r.dtype) * jnp.where(origin, 0, angle)
    if not jnp.iscomplexobj(m):
        return angle
    phase = m / jnp.where(r > 0, r, 1).astype(m.dtype)  # m / |m| (0 where m = 0)
    return phase * angle.astype(m.dtype)


def _update_adam_atan2(hp: Hyperparams, g, state: ScaleByAdamAtan2State, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = jax.tree.map(lambda m, v: _atan2_leaf(hp, m, v), m_hat, v_hat)  # u = a atan2(m^, b sqrt(v^))
    return tree.cast_like(u, g), ScaleByAdamAtan2State(count=t, mu=mu, nu=nu)


def scale_by_adam_atan2(
    b1: float = 0.9,
    b2: float = 0.99,
    a: float = 1.27,
    b: float = 1.0,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam-atan2's direction (Everett et al., 2024, "Scaling Exponents Across Parameterizations and
    Optimizers"): Adam with atan2 in place of the division and its eps.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = a atan2(m^, b sqrt(v^))

    t counts updates from 1. For |m^| much smaller than b sqrt(v^), u = (a / b) m^ / sqrt(v^), Adam's
    direction scaled by a / b; |u| <= a pi / 2 always, also where v^ is 0. The defaults (b1 = 0.9,
    b2 = 0.99, a = 1.27, b = 1) are those of the adam-atan2-pytorch package (lucidrains), whose
    AdamAtan2 this equals to float64 rounding (tests/test_adam_atan2.py); a = 1.27 (about 4 / pi)
    gives u = 1 where m^ = b sqrt(v^), a gradient of constant sign, as Adam's step there.
    Complex params: u = (m^ / |m^|) a atan2(|m^|, b sqrt(v^)), m^'s phase with the real rule's size.
    `accumulator_dtype` (alias `mu_dtype`) sets m's dtype; v is real and at least float32.

    >>> import gradtx
    >>> gradtx.scale_by_adam_atan2()
    scale_by_adam_atan2(b1=0.9, b2=0.99, a=1.27, b=1.0)
    """
    check("scale_by_adam_atan2", b1=(b1, UNIT), b2=(b2, UNIT), a=(a, NONNEG), b=(b, NONNEG))
    dtype = first_moment_dtype("scale_by_adam_atan2", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adam_atan2", _init_adam_atan2, _update_adam_atan2,
        b1=b1, b2=b2, a=a, b=b, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def adam_atan2(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    a: float = 1.27,
    b: float = 1.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam-atan2 (Everett et al., 2024): `chain(scale_by_adam_atan2(b1, b2, a, b),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`.

    See `scale_by_adam_atan2`. W <- W - eta (u + lambda W): the decay is decoupled from the
    gradient and scaled by the learning rate, as adam-atan2-pytorch's AdamAtan2(lr, betas,
    weight_decay, a, b) with its default decoupled_wd=False, which this equals (its
    decoupled_wd=True divides weight_decay by the initial lr: pass weight_decay / lr here).
    `mask` selects the leaves that decay.

    >>> import gradtx
    >>> gradtx.adam_atan2(1e-4)
    chain(scale_by_adam_atan2(b1=0.9, b2=0.99, a=1.27, b=1.0), add_decayed_weights(weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.0001, flip_sign=True))
    """
    check("adam_atan2", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adam_atan2"):
        return chain(
            scale_by_adam_atan2(b1, b2, a, b, mu_dtype, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByAdamAtan2State", "adam_atan2", "scale_by_adam_atan2"]
