"""Normalization: updates rescaled to a fixed length, keeping their direction.

    normalize()   u = g / ||g||        (||.|| the global L2 norm over all leaves; u = 0 where g = 0)

SAM's ascent step is a normalized gradient times rho: `chain(normalize(), sgd(rho))` as the
adversarial optimizer of `gradtx.sam`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, transformation


class NormalizeState(NamedTuple):
    """normalize's state: empty (optax's NormalizeState is its EmptyState; both have no leaves)."""


def _init_normalize(hp: Hyperparams, params) -> NormalizeState:
    return NormalizeState()


def _update_normalize(hp: Hyperparams, g, state, params=None):
    sq = tree.sum_sq(g)  # ||g||^2 over all leaves, in >= float32
    zero = sq == 0
    # 1 / ||g||, with 1 in place of 0 / 0: zero gradients stay zero (and jax.grad through update is
    # finite there); a NaN norm is not 0, so NaN gradients give NaN updates.
    inverse = jnp.where(zero, jnp.ones_like(sq), 1 / jnp.sqrt(jnp.where(zero, jnp.ones_like(sq), sq)))
    return tree.scale(inverse, g), state  # u = g / ||g||


def normalize() -> GradientTransformation:
    """Divides the updates by their global L2 norm: a unit-length step in the gradient's direction.

        ||g|| = sqrt(sum over all leaves and coordinates of |g|^2)
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


__all__ = ["NormalizeState", "normalize"]
