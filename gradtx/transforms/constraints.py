"""Constraints: updates changed so that the params, or the updates themselves, stay in a set.

    keep_params_nonnegative():   u = -w  where w + g < 0,  else g         (so that w + u >= 0)
    zero_nans():                 u = 0   where g is NaN,   else g         (found_nan: which leaves had one)

Each stands at the end of a chain (keep_params_nonnegative) or at its start (zero_nans), and is
stateless but for zero_nans' record of which leaves held a NaN.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import EmptyState, GradientTransformation, Hyperparams, init_empty, transformation
from gradtx.checks import require_params
from gradtx.combine import wrapper

# ---------------------------------------------------------------------------------------------------
# keep_params_nonnegative

NonNegativeParamsState = EmptyState  # optax's name for its (empty) state


def _nonnegative_leaf(g: Any, w: Any) -> Any:
    if g is None:
        return None
    w = w.astype(g.dtype)
    # A NaN g fails the comparison and stays NaN: never turned into -w.
    return jnp.where(w + g < 0, -w, g)  # u = -w where w + g < 0, else g


def _update_keep_params_nonnegative(hp: Hyperparams, updates, state, params=None):
    params = require_params("keep_params_nonnegative", params)
    return jax.tree.map(_nonnegative_leaf, updates, params, is_leaf=lambda x: x is None), state


def keep_params_nonnegative() -> GradientTransformation:
    """Changes the updates so that the params stay >= 0: a step that would cross 0 stops at 0.

        u = -w   where w + g < 0     (the param lands on 0)
        u = g    elsewhere

    The projection onto w >= 0 of one step, for params that must stay non-negative (rates, scales,
    mixture weights). It goes last in a chain, after the learning rate, since it reads the step
    that will be applied. Params that are already negative are moved to 0. As optax's (state
    `NonNegativeParamsState`, an `EmptyState`); `update` needs params.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.keep_params_nonnegative())
    >>> w = jnp.asarray([0.5, 2.0])
    >>> u, _ = tx.update(jnp.asarray([1.0, 1.0]), tx.init(w), w)
    >>> print(w + u)
    [0. 1.]
    """
    return transformation("keep_params_nonnegative", init_empty, _update_keep_params_nonnegative)


# ---------------------------------------------------------------------------------------------------
# zero_nans


class ZeroNansState(NamedTuple):
    """found_nan: the params' tree with one boolean scalar a leaf, True where the last update's
    gradient of that leaf held a NaN (optax's field)."""

    found_nan: Any  # one 0-d boolean a leaf, not the params' shapes


def _init_zero_nans(hp: Hyperparams, params) -> ZeroNansState:
    return ZeroNansState(found_nan=jax.tree.map(lambda _: jnp.asarray(False), params))


def _update_zero_nans(hp: Hyperparams, updates, state, params=None, **extra_args):
    found_nan = jax.tree.map(lambda g: jnp.any(jnp.isnan(g)), updates)  # was there a NaN in this leaf?
    zeroed = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)  # u = 0 where g is NaN
    return zeroed, ZeroNansState(found_nan=found_nan)


def zero_nans() -> GradientTransformation:
    """Replaces each NaN in the updates by 0, and records which leaves held one.

        u = 0  where g is NaN,   u = g  elsewhere (infinities included)
        state.found_nan[leaf] = any(isnan(g[leaf]))       (for the last update)

    The one transformation of gradtx that turns a NaN into a number, because that is what it is
    for: everywhere else NaN gradients give NaN updates, so that a broken step is seen. Put it
    first in a chain (`chain(zero_nans(), adam(lr))`) to train through rare NaN coordinates, and
    read `state.found_nan` to see where they came from; to skip a whole step with NaN or infinite
    gradients instead, use `apply_if_finite`. As optax's, state `ZeroNansState(found_nan)`.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.zero_nans()
    >>> g = {"w": jnp.asarray([1.0, jnp.nan]), "b": jnp.asarray([jnp.inf])}
    >>> u, state = tx.update(g, tx.init(g))
    >>> print(u["w"], u["b"], state.found_nan["w"])
    [1. 0.] [inf] True
    """
    # Built as a wrapper is, so that its state is checked against what its init builds (a boolean a
    # leaf), not against the params' shapes.
    return wrapper("zero_nans", _init_zero_nans, _update_zero_nans)


__all__ = ["NonNegativeParamsState", "ZeroNansState", "keep_params_nonnegative", "zero_nans"]
