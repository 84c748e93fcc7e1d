"""Normalization: updates divided by their global norm, so that only their direction is kept.

    normalize()                        u = g / ||g||              (u = 0 where g = 0)
    normalize_by_update_norm(s, eps)   u = s g / (||g|| + eps)

||g|| is the global L2 norm over all leaves, accumulated in at least float32. Both are stateless:
each step has the same length whatever the size of the gradient. SAM's ascent step is a normalized
gradient times rho: `chain(normalize(), sgd(rho))` as the adversarial optimizer of `gradtx.sam`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, init_empty, transformation
from gradtx.checks import NONNEG, REAL, check


def _nonzero(x: jax.Array) -> jax.Array:
    """x with 1 in place of 0: a safe divisor (and a finite jax.grad at zero gradients); NaN stays NaN."""
    return jnp.where(x == 0, jnp.ones_like(x), x)


class NormalizeState(NamedTuple):
    """normalize's state: empty (optax's NormalizeState is its EmptyState; both have no leaves)."""


def _init_normalize(hp: Hyperparams, params) -> NormalizeState:
    return NormalizeState()


def _update_normalize(hp: Hyperparams, g, state, params=None):
    sq = tree.sum_sq(g)  # ||g||^2
    inverse = jnp.where(sq == 0, jnp.ones_like(sq), 1 / jnp.sqrt(_nonzero(sq)))  # 1 in place of 1 / 0
    return tree.scale(inverse, g), state  # u = g / ||g||


def normalize() -> GradientTransformation:
    """Divides the updates by their global L2 norm: a unit-length step in the gradient's direction.

        u = g / ||g||          (u = 0 where ||g|| = 0)

    Same as optax.contrib.normalize, except at zero gradients, where optax's 0 / 0 gives NaN
    updates (and NaN gradients through `update`): here they stay zero. NaN gradients give NaN
    updates. Stateless (`NormalizeState()`); used as SAM's ascent step, `chain(normalize(), sgd(rho))`.

    >>> import gradtx, jax.numpy as jnp
    >>> u, _ = gradtx.normalize().update({"w": jnp.asarray([3.0, 4.0])}, gradtx.NormalizeState())
    >>> u["w"].tolist()
    [0.6, 0.8]
    """
    return transformation("normalize", _init_normalize, _update_normalize)


def _update_by_update_norm(hp: Hyperparams, g, state, params=None):
    sq = tree.sum_sq(g)
    norm = jnp.where(sq == 0, jnp.zeros_like(sq), jnp.sqrt(_nonzero(sq)))  # ||g||, a zero derivative at 0
    d = norm + jnp.asarray(hp.eps).astype(norm.dtype)  # ||g|| + eps
    # d = 0 only where every gradient is 0 (eps = 0): u = 0 then; a NaN norm stays NaN.
    factor = jnp.asarray(hp.scale_factor).astype(d.dtype) / _nonzero(d)
    return tree.scale(factor, g), state  # u = s g / (||g|| + eps)


def normalize_by_update_norm(scale_factor: float = 1.0, eps: float = 1e-6) -> GradientTransformation:
    """Scales the updates to the global norm `scale_factor`: a normalized gradient step.

        u = s g / (||g|| + eps)          (s = scale_factor; ||g||^2 = the sum of |g|^2 over all leaves)

    optax's transformation, with its numbers (optax divides g by (||g|| + eps) / s: the same up to
    rounding). s < 0 flips the sign: with s = -eta it is a normalized gradient descent step of
    length eta (for a small eps). With eps = 0, zero gradients give zero updates. Stateless.

    >>> import gradtx
    >>> gradtx.normalize_by_update_norm(scale_factor=-0.1)
    normalize_by_update_norm(scale_factor=-0.1, eps=1e-06)
    """
    check("normalize_by_update_norm", scale_factor=(scale_factor, REAL), eps=(eps, NONNEG))
    return transformation(
        "normalize_by_update_norm", init_empty, _update_by_update_norm, scale_factor=scale_factor, eps=eps
    )


__all__ = ["NormalizeState", "normalize", "normalize_by_update_norm"]
