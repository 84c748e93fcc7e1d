"""Centralization: each weight's gradient made zero-mean over the inputs of one output.

    centralize():    u = g - mean of g over every dimension but the first   (leaves of 2+ dimensions)

Gradient centralization (Yong et al., 2020) removes the mean of the gradient of each output's weight
vector (a column of a dense kernel, one filter of a convolution): a constraint on the weight space
that the paper reports regularizes and smooths training. Vectors and scalars pass unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, init_empty, transformation
from gradtx.packing import require_leaves


def _centralize_leaf(g: jax.Array) -> jax.Array:
    if g.ndim <= 1:
        return g  # a vector (bias, scale) or a scalar has one unit: nothing to centralize
    g32 = g.astype(tree.compute_dtype(g.dtype))
    mean = jnp.mean(g32, axis=tuple(range(1, g.ndim)), keepdims=True)  # mean over all but axis 0
    return (g32 - mean).astype(g.dtype)  # u = g - mean


def _update_centralize(hp: Hyperparams, updates, state, params=None):
    require_leaves("centralize", updates)  # each leaf is a weight: packing would merge them
    return jax.tree.map(_centralize_leaf, updates), state


def centralize() -> GradientTransformation:
    """Subtracts from each leaf of 2+ dimensions its mean over every dimension but the first.

        u[i, ...] = g[i, ...] - mean over j... of g[i, j...]     (g with 2 or more dimensions)
        u = g                                                     (vectors and scalars)

    Gradient centralization ("Gradient Centralization: A New Optimization Technique for Deep
    Neural Networks", Yong et al., 2020), put before the optimizer: `chain(centralize(), adam(lr))`.
    As optax's `centralize`: the mean is over the dimensions after the first, whatever the layout
    (the paper's weight layout is (out, in...), so for flax's (in, out) Dense kernels it centers
    over the outputs). Stateless; leaves the dtype and NaN of each leaf as they are.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.centralize()
    >>> g = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
    >>> print(tx.update(g, tx.init(g))[0])
    [[-1.  0.  1.]
     [-2. -1.  3.]]
    """
    return transformation("centralize", init_empty, _update_centralize)


__all__ = ["centralize"]
