"""Clipping: bound the size of updates, coordinate by coordinate or as a whole.

    clip(c):                   u = min(max(g, -c), c)                   (each coordinate)
    clip_by_global_norm(c):    u = g * c / ||g||  if ||g|| > c,  else g  (||.|| over all leaves)

The lecture's rule "if ||dL/dW|| > u, use sign(dL/dW) u" is the one-coordinate picture: for a
scalar, g / |g| = sign(g), so a too-large gradient becomes sign(g) u, which is what `clip(u)` does to
each coordinate. For a vector, `clip_by_global_norm(u)` keeps the direction g / ||g|| (the vector's
"sign") and sets the length to u, so the step still points downhill; `clip` changes the direction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, init_empty, transformation
from gradtx.checks import NONNEG, check


def _update_clip(hp: Hyperparams, updates, state, params=None):
    def leaf(g: jax.Array) -> jax.Array:
        g32 = g.astype(tree.compute_dtype(g.dtype))
        c = jnp.asarray(hp.max_delta).astype(g32.dtype)
        return jnp.clip(g32, -c, c).astype(g.dtype)  # u = min(max(g, -c), c)

    return jax.tree.map(leaf, updates), state


def clip(max_delta: float) -> GradientTransformation:
    """Clips each coordinate of the updates to [-max_delta, max_delta].

        u = min(max(g, -c), c),   c = max_delta >= 0

    The lecture's "sign(dL/dW) u" applied coordinate by coordinate (see the module docstring).
    Same as optax.clip and torch.nn.utils.clip_grad_value_. c = 0 gives zero updates.

    >>> import gradtx
    >>> gradtx.clip(1.0)
    clip(max_delta=1.0)
    """
    check("clip", max_delta=(max_delta, NONNEG))
    return transformation("clip", init_empty, _update_clip, max_delta=max_delta)


def _update_clip_by_global_norm(hp: Hyperparams, updates, state, params=None):
    sq = tree.sum_sq(updates)  # ||g||^2 over all leaves, in >= float32
    c = jnp.asarray(hp.max_norm).astype(sq.dtype)
    over = jnp.sqrt(sq) > c  # ||g|| > c
    # ||g|| > c >= 0 means ||g|| > 0, so c / ||g|| is finite where it is used; the inner `where`
    # also keeps jax.grad through update finite at g = 0 (d sqrt(x) / dx is infinite at 0).
    factor = jnp.where(over, c / jnp.sqrt(jnp.where(over, sq, 1)), 1)  # s = c / ||g|| or 1
    return tree.scale(factor, updates), state  # u = s g


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the updates so that their global L2 norm is at most max_norm (Pascanu et al., 2013).

        ||g|| = sqrt(sum over all leaves and coordinates of |g|^2)
        u = g * c / ||g||   if ||g|| > c,   else g        (c = max_norm >= 0)

    One norm over the whole tree, so the direction of the update is kept. Same as optax's and as
    torch.nn.utils.clip_grad_norm_ (which adds 1e-6 to the norm), except that it is finite where
    optax is not: optax computes c / ||g|| also for ||g|| = 0, which gives NaN for c = 0 and zero
    gradients, and NaN gradients through `update` at zero gradients. Here zero gradients stay zero
    and c = 0 gives zero updates.

    >>> import gradtx
    >>> gradtx.clip_by_global_norm(1.0)
    clip_by_global_norm(max_norm=1.0)
    """
    check("clip_by_global_norm", max_norm=(max_norm, NONNEG))
    return transformation("clip_by_global_norm", init_empty, _update_clip_by_global_norm, max_norm=max_norm)


__all__ = ["clip", "clip_by_global_norm"]
