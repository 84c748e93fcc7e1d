"""FTRL-Proximal: follow the regularized leader, with per-coordinate rates and an L1 term that
sets weights exactly to zero (McMahan et al., 2013), as Keras computes it (keras.optimizers.Ftrl).

    n' = n + g^2;   sigma = (n'^(-p) - n^(-p)) / lr;   W <- (1 - lr wd) W   (weight_decay, Keras's)
    z <- z + g + 2 l2s W - sigma W
    W <- (clip(z, -l1, l1) - z) / (n'^(-p) / lr + 2 l2 + beta / lr)        (0 wherever |z| <= l1)
"""

from __future__ import annotations

import functools
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
from gradtx.checks import NONNEG, POSITIVE, SCHEDULE, check, require_params


class FtrlState(NamedTuple):
    """count: updates applied (int32), the learning-rate schedule's argument; accumulator: n, the sum
    of squared gradients; linear: z. Both real and at least float32; Keras's names."""

    count: Count
    accumulator: Updates
    linear: Updates


def _init_ftrl(hp: Hyperparams, params) -> FtrlState:
    for leaf in jax.tree.leaves(params):
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                "ftrl: complex params have no order for the L1 threshold clip(z, -l1, l1) (nor Keras's"
                f" Ftrl), got a {leaf.dtype} leaf. Use it on real params only."
            )
    return FtrlState(
        count=zero_count(),
        accumulator=tree.second_moment_like(params, hp.initial_accumulator_value),
        linear=tree.second_moment_like(params),
    )


def _as(value: Any, dtype: Any) -> jax.Array:
    return jnp.asarray(value).astype(dtype)  # a number, a tracer or a schedule's value: never widens a dtype


def _update_leaf(hp: Hyperparams, lr: Any, g: jax.Array, w: jax.Array, n: jax.Array, z: jax.Array) -> tuple:
    dtype = n.dtype
    lr, p = _as(lr, dtype), -_as(hp.learning_rate_power, dtype)
    w32, g32 = w.astype(dtype), g.astype(dtype)
    w32 = w32 - w32 * _as(hp.weight_decay, dtype) * lr  # W <- (1 - lr wd) W: Keras's decay, before the step
    l1, l2, l2s, beta = (_as(v, dtype) for v in (hp.l1_regularization_strength, hp.l2_regularization_strength,
                         hp.l2_shrinkage_regularization_strength, hp.beta))  # fmt: skip
    n_new = n + g32 * g32  # n' = n + g^2 (the plain gradient, as Keras)
    sigma = (n_new**p - n**p) / lr  # sigma = (n'^(-p) - n^(-p)) / lr
    z = z + (g32 + 2 * l2s * w32) - sigma * w32  # z <- z + (g + 2 l2s W) - sigma W
    quadratic = n_new**p / lr + 2 * (l2 + beta / (2 * lr))  # n'^(-p) / lr + 2 l2 + beta / lr
    w_new = (jnp.clip(z, -l1, l1) - z) / quadratic  # W' = (clip(z, -l1, l1) - z) / quadratic
    return (w_new - w.astype(dtype)).astype(g.dtype), n_new, z


def _update_ftrl(hp: Hyperparams, g, state: FtrlState, params=None):
    params = require_params("ftrl", params)
    leaf = functools.partial(_update_leaf, hp, value_at(hp.learning_rate, state.count))
    out = jax.tree.map(leaf, g, params, state.accumulator, state.linear)
    u, n, z = (jax.tree.map(lambda _, o, i=i: o[i], g, out) for i in range(3))
    return u, FtrlState(count=next_count(state.count), accumulator=n, linear=z)


def ftrl(
    learning_rate: ScalarOrSchedule,
    learning_rate_power: float = -0.5,
    initial_accumulator_value: float = 0.1,
    l1_regularization_strength: float = 0.0,
    l2_regularization_strength: float = 0.0,
    l2_shrinkage_regularization_strength: float = 0.0,
    beta: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """FTRL-Proximal (McMahan et al., 2013, Algorithm 1), keras.optimizers.Ftrl's numbers and arguments.

        n' = n + g^2                                          (n_0 = initial_accumulator_value)
        sigma = (n'^(-p) - n^(-p)) / lr                       (p = learning_rate_power <= 0)
        z <- z + g + 2 l2s W - sigma W                        (l2s: L2 shrinkage, a penalty on the loss)
        W' = (clip(z, -l1, l1) - z) / (n'^(-p) / lr + 2 l2 + beta / lr)
        u  = W' - W;   n <- n'

    with weight_decay = wd > 0, W <- (1 - lr wd) W before the z update, as Keras's decoupled decay
    (applied to the variable before its step; the new weight is a function of z, so the decay
    acts only through z's sigma W and l2s W terms). An `add_decayed_weights` before ftrl would
    add wd W to g, and to n, instead.

    l1, l2 = l1_ and l2_regularization_strength. With p = -1/2 the per-coordinate rate is
    lr / (beta + sqrt(n)), the paper's; p = 0 is a fixed rate. A coordinate whose |z| stays within
    l1 is exactly 0: the sparsity FTRL is used for. The update is the new weight minus the old, so
    it needs params; a schedule learning rate is evaluated at k = updates already applied (Keras's
    iterations). FTRL is meant to start at W = 0 (as in the paper and in Keras's use): the
    weights are a function of z, so from other initial weights the first steps pull W toward 0,
    and a zero gradient at the first step sets W to 0. Keras's default learning rate is 1e-3; its
    clipping options are transformations before it (`gradtx.presets.keras.Ftrl` chains them).
    Not in optax.

    >>> import gradtx
    >>> gradtx.ftrl(0.1, l1_regularization_strength=0.01)
    ftrl(learning_rate=0.1, learning_rate_power=-0.5, initial_accumulator_value=0.1,
         l1_regularization_strength=0.01, l2_regularization_strength=0.0,
         l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=0.0)
    """
    check(
        "ftrl",
        learning_rate=(learning_rate, POSITIVE + SCHEDULE), learning_rate_power=(learning_rate_power, "(-inf, 0]"),
        initial_accumulator_value=(initial_accumulator_value, NONNEG),
        l1_regularization_strength=(l1_regularization_strength, NONNEG),
        l2_regularization_strength=(l2_regularization_strength, NONNEG),
        l2_shrinkage_regularization_strength=(l2_shrinkage_regularization_strength, NONNEG), beta=(beta, NONNEG),
        weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    return transformation(
        "ftrl", _init_ftrl, _update_ftrl,
        learning_rate=learning_rate, learning_rate_power=learning_rate_power,
        initial_accumulator_value=initial_accumulator_value, l1_regularization_strength=l1_regularization_strength,
        l2_regularization_strength=l2_regularization_strength,
        l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength, beta=beta,
        weight_decay=weight_decay,
    )  # fmt: skip


__all__ = ["FtrlState", "ftrl"]
