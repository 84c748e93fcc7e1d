"""Normalization: updates divided by their norm, so that only their direction is kept.

    normalize_by_update_norm(s, eps)   u = s g / (||g|| + eps)       (||g||: the global norm of all leaves)

Stateless: each step has the length |s| whatever the size of the gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, init_empty, transformation
from gradtx.checks import NONNEG, REAL, check


def _norm(sq: jax.Array) -> jax.Array:
    """sqrt(sq), with a zero derivative at sq = 0 (jax.grad through update at zero gradients: never
    inf * 0); NaN stays NaN."""
    zero = sq == 0
    return jnp.where(zero, jnp.zeros_like(sq), jnp.sqrt(jnp.where(zero, jnp.ones_like(sq), sq)))


def _update_normalize(hp: Hyperparams, g, state, params=None):
    norm = _norm(tree.sum_sq(g))  # ||g||, real, accumulated in at least float32 (float64 if a leaf is)
    d = norm + jnp.asarray(hp.eps).astype(norm.dtype)  # ||g|| + eps
    # d = 0 only where every gradient is 0 (eps = 0): u = 0 then; a NaN norm stays NaN.
    factor = jnp.asarray(hp.scale_factor).astype(d.dtype) / jnp.where(d == 0, jnp.ones_like(d), d)
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
    return transformation("normalize_by_update_norm", init_empty, _update_normalize, scale_factor=scale_factor, eps=eps)


__all__ = ["normalize_by_update_norm"]
