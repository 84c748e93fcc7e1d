"""Lion: the sign of an interpolation of momentum and gradient (Chen et al., 2023).

    scale_by_lion   u = sign(b1 m + (1 - b1) g);   m <- b2 m + (1 - b2) g
    lion            chain(scale_by_lion, add_decayed_weights, scale_by_learning_rate)

Signs are exact in every dtype; the moment follows the first-moment policy (`mu_dtype` /
`accumulator_dtype`).
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
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, check, first_moment_dtype
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# Lion

LION_MODES = ("hard", "smooth", "refined")


class ScaleByLionState(NamedTuple):
    """count: updates applied (int32); mu: m, the EMA of g with decay b2."""

    count: Count
    mu: Updates


def _init_lion(hp: Hyperparams, params) -> ScaleByLionState:
    return ScaleByLionState(count=zero_count(), mu=tree.first_moment_like(params, hp.accumulator_dtype))


def _soft_sign(hp: Hyperparams, c: jax.Array) -> jax.Array:
    if hp.mode == "smooth":  # tanh(beta c)
        return jnp.tanh(jnp.asarray(hp.smooth_beta).astype(c.dtype) * c)
    if hp.mode == "refined":  # c where |c| < 1, sign(c) beyond
        return jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
    return jnp.sign(c)


def _update_lion(hp: Hyperparams, g, state: ScaleByLionState, params=None):
    c = tree.lerp(tree.compute_like(state.mu, g), g, hp.b1, 1 - hp.b1)  # c = b1 m + (1 - b1) g
    u = jax.tree.map(lambda x: _soft_sign(hp, x), c)  # u = sign(c)
    mu = tree.ema(state.mu, g, hp.b2)  # m <- b2 m + (1 - b2) g
    return tree.cast_like(u, g), ScaleByLionState(count=next_count(state.count), mu=mu)


def scale_by_lion(
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float = 1.0,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Lion's direction (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

        c = b1 m + (1 - b1) g
        u = sign(c)
        m <- b2 m + (1 - b2) g

    The update interpolates with b1 but the momentum decays with b2 > b1, so the momentum remembers
    longer than the update looks. Every coordinate moves by exactly the learning rate: Lion wants a
    learning rate 3-10x smaller than AdamW's. `mode` (optax's extension) replaces sign: "smooth" is
    tanh(smooth_beta c), "refined" is c where |c| < 1 and sign(c) beyond. `accumulator_dtype`
    (alias `mu_dtype`) sets m's dtype. Complex params: sign(c) = c / |c|. The count is kept for
    optax's state layout; Lion itself does not use it.

    >>> import gradtx
    >>> gradtx.scale_by_lion()
    scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0)
    """
    check("scale_by_lion", b1=(b1, "[0, 1]"), b2=(b2, UNIT), smooth_beta=(smooth_beta, NONNEG))
    if mode not in LION_MODES:
        raise ValueError(f"scale_by_lion: mode must be one of {LION_MODES}, got {mode!r}")
    dtype = first_moment_dtype("scale_by_lion", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_lion", _init_lion, _update_lion,
        b1=b1, b2=b2, accumulator_dtype=dtype, mode=mode, smooth_beta=smooth_beta,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023): `chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`.

    See `scale_by_lion`. The decay is decoupled, as in AdamW: W <- W - eta (sign(c) + lambda W).
    Lion's steps are larger than Adam's (every coordinate moves by eta): take a learning rate 3-10x
    smaller and a weight decay 3-10x larger than AdamW's. `mask` selects the leaves that decay.

    >>> import gradtx
    >>> gradtx.lion(1e-4)
    chain(scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0), add_decayed_weights(weight_decay=0.001),
          scale_by_learning_rate(learning_rate=0.0001, flip_sign=True))
    """
    check("lion", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_lion(b1, b2, mu_dtype, accumulator_dtype=accumulator_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["ScaleByLionState", "lion", "scale_by_lion"]
