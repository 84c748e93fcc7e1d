"""MADGRAD: momentumized, adaptive, dual-averaged gradients (Defazio & Jelassi, 2021).

    scale_by_madgrad   lambda = (eta + eps) sqrt(k + 1);  G <- G + lambda g^2;  s <- s + lambda g
                       z = x_0 - s / (G^(1/3) + eps);  x' = (1 - momentum) z + momentum x;  u = x' - x
    madgrad            chain(add_decayed_weights, scale_by_madgrad)

A dual-averaging method: the point z is computed afresh from the initial params x_0 and the
weighted sums of gradients, and the params follow z with momentum. The learning rate is inside
the step (it weighs the sums), so `scale_by_madgrad` takes it and its update already descends.
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
from gradtx.checks import LEARNING_RATE, NONNEG, POSITIVE, UNIT, arguments_of, check, require_params
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights


@jax.custom_jvp
def cbrt0(x: jax.Array) -> jax.Array:
    """x^(1/3) whose derivative at 0 is 0, not inf (jax.grad through an update at zero gradients
    stays finite); for x >= 0 as MADGRAD's sums of squares."""
    return jnp.cbrt(x)


@cbrt0.defjvp
def _cbrt0_jvp(primals: tuple, tangents: tuple) -> tuple:
    (x,), (dx,) = primals, tangents
    y = jnp.cbrt(x)
    positive = x > 0
    safe = jnp.where(positive, y, jnp.ones_like(y))
    return y, jnp.where(positive, dx / (3 * safe * safe), jnp.zeros_like(dx))


# ---------------------------------------------------------------------------------------------------
# MADGRAD


class MadgradState(NamedTuple):
    """count: updates applied, k (int32); grad_sum_sq: G, the lambda-weighted sum of g^2 (real, at
    least float32); s: the lambda-weighted sum of g; x0: the initial params x_0."""

    count: Count
    grad_sum_sq: Updates
    s: Updates
    x0: Params


def _init_madgrad(hp: Hyperparams, params) -> MadgradState:
    return MadgradState(
        count=zero_count(),
        grad_sum_sq=tree.second_moment_like(params),
        s=tree.first_moment_like(params),
        x0=jax.tree.map(jnp.copy, params),
    )


class _Leaf(NamedTuple):
    """One leaf's results, kept together while mapping over the trees."""

    u: jax.Array
    grad_sum_sq: jax.Array
    s: jax.Array


def _madgrad_leaf(hp: Hyperparams, lamb: Any, g, x, big_g, s, x0):
    dtype = tree.compute_dtype(g.dtype)
    real = big_g.dtype
    g_, lamb = g.astype(dtype), lamb.astype(real)
    big_g = big_g + lamb * tree.abs_sq(g_).astype(real)  # G <- G + lambda g^2
    s_new = s.astype(dtype) + lamb.astype(dtype) * g_  # s <- s + lambda g
    z = x0.astype(dtype) - s_new / (cbrt0(big_g) + hp.eps).astype(dtype)  # z = x_0 - s / (G^(1/3) + eps)
    # x' = (1 - momentum) z + momentum x, so u = x' - x = (1 - momentum) (z - x): exactly 0 where z = x
    u = (1 - hp.momentum) * (z - x.astype(dtype))
    return u.astype(g.dtype), big_g, s_new.astype(s.dtype)


def _update_madgrad(hp: Hyperparams, g, state: MadgradState, params=None):
    params = require_params("scale_by_madgrad", params)
    k = state.count
    lr = value_at(hp.learning_rate, k)
    dtype = np.result_type(*[x.dtype for x in jax.tree.leaves(state.grad_sum_sq)], np.float32)  # the widest G
    root = jnp.sqrt(k.astype(dtype) + 1)  # k + 1 in floats: at the int32 maximum an int32 k + 1 would wrap
    lamb = (jnp.asarray(lr).astype(dtype) + hp.eps) * root  # lambda = (eta + eps) sqrt(k + 1)
    out = jax.tree.map(
        lambda *leaves: _Leaf(*_madgrad_leaf(hp, lamb, *leaves)), g, params, state.grad_sum_sq, state.s, state.x0
    )
    part = lambda i: jax.tree.map(lambda leaf: leaf[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
    return part(0), MadgradState(count=next_count(k), grad_sum_sq=part(1), s=part(2), x0=state.x0)


def scale_by_madgrad(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, eps: float = 1e-6
) -> GradientTransformation:
    """MADGRAD's step (Defazio & Jelassi, 2021, Algorithm 1), learning rate included.

        lambda = (eta + eps) sqrt(k + 1)           (k = updates already applied; eta = learning_rate)
        G  <- G + lambda g^2
        s  <- s + lambda g
        z  = x_0 - s / (G^(1/3) + eps)
        x' = (1 - momentum) z + momentum x
        u  = x' - x

    The update descends as it is (no learning rate or sign flip after it); `update` needs params.
    eta + eps in lambda is the authors' code's and optax's (so eta = 0 still moves, slowly; the
    authors' code skips the eps then). Same as optax.contrib.scale_by_madgrad and the authors'
    `madgrad.MADGRAD(lr, momentum, eps=eps)`; G is real and in at least float32.

    >>> import gradtx
    >>> gradtx.scale_by_madgrad(1e-2)
    scale_by_madgrad(learning_rate=0.01, momentum=0.9, eps=1e-06)
    """
    check(
        "scale_by_madgrad",
        learning_rate=(learning_rate, LEARNING_RATE), momentum=(momentum, UNIT), eps=(eps, POSITIVE),
    )  # fmt: skip
    return transformation(
        "scale_by_madgrad", _init_madgrad, _update_madgrad, learning_rate=learning_rate, momentum=momentum, eps=eps
    )


def madgrad(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, weight_decay: float = 0.0, eps: float = 1e-6
) -> GradientTransformation:
    """MADGRAD (Defazio & Jelassi, 2021): `chain(add_decayed_weights(weight_decay),
    scale_by_madgrad(learning_rate, momentum, eps))`.

        g' = g + weight_decay x;   u = scale_by_madgrad(g')        (see `scale_by_madgrad`)

    The decay is L2 (added to the gradient), as in optax.contrib.madgrad and the authors'
    `madgrad.MADGRAD(lr, momentum, weight_decay, eps)` (its default `decouple_decay=False`).

    >>> import gradtx
    >>> gradtx.madgrad(1e-2)
    chain(add_decayed_weights(weight_decay=0.0), scale_by_madgrad(learning_rate=0.01, momentum=0.9, eps=1e-06))
    """
    check("madgrad", learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG))
    with arguments_of("madgrad"):
        return chain(add_decayed_weights(weight_decay), scale_by_madgrad(learning_rate, momentum, eps))


__all__ = ["MadgradState", "madgrad", "scale_by_madgrad"]
