"""flatten: the inner transformation sees one vector, the concatenation of every leaf.

u = unflatten(t(concatenate(g)))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import GradientTransformation, Hyperparams, OptState, Params, Updates
from gradtx.combine import check_members, update_one, wrapper


def _flat_dtype(leaves: list) -> np.dtype:
    """The dtype every leaf fits in (float64 with a float64 leaf, complex with a complex one)."""
    dtypes = [jnp.result_type(x) for x in leaves]
    return np.dtype(jnp.float32) if not dtypes else np.result_type(*dtypes)


def _flatten(tree_: Any) -> jax.Array:
    """Every leaf, raveled and concatenated, in their common dtype (None leaves hold nothing)."""
    leaves = jax.tree.leaves(tree_)
    dtype = _flat_dtype(leaves)
    return jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves]) if leaves else jnp.zeros([0], dtype)


def _unflatten(like: Any, flat: jax.Array) -> Any:
    """`flat` cut back into the leaves of `like`, each in its own shape and dtype."""
    leaves, treedef = jax.tree.flatten(like)
    pieces, start = [], 0
    for x in leaves:
        size = int(np.size(x))
        piece = flat[start : start + size].reshape(jnp.shape(x))
        if jnp.iscomplexobj(piece) and not jnp.iscomplexobj(x):
            piece = piece.real  # a real leaf among complex ones: its imaginary part is 0
        pieces.append(piece.astype(jnp.result_type(x)))
        start += size
    return jax.tree.unflatten(treedef, pieces)


def _init_flatten(hp: Hyperparams, params: Params) -> OptState:
    return hp.args[0].init(_flatten(params))


def _check_state(hp: Hyperparams, g: Updates, flat: jax.Array, state: OptState) -> None:
    """The state must be the one init builds for a vector of this length (trace time, shapes only):
    the inner transformation sees one vector, so it could not name the leaf that differs."""
    built = jax.eval_shape(hp.args[0].init, jax.ShapeDtypeStruct(flat.shape, flat.dtype))
    structure: Any = jax.tree.structure(built)  # PyTreeDef's stubs lack __eq__
    same = structure == jax.tree.structure(state) and all(
        jnp.shape(a) == jnp.shape(b) for a, b in zip(jax.tree.leaves(built), jax.tree.leaves(state), strict=True)
    )
    if not same:
        shapes = ", ".join(
            f"{jax.tree_util.keystr(k)} {jnp.shape(x)}" for k, x in jax.tree_util.tree_leaves_with_path(g)
        )
        raise ValueError(
            f"flatten: the state does not fit the gradients: they flatten to {flat.size} coordinates ({shapes}),"
            f" the state holds {[jnp.shape(x) for x in jax.tree.leaves(state)]}. Was it built by this"
            " transformation's init, from params of these shapes?"
        )


def _update_flatten(hp: Hyperparams, g: Updates, state: OptState, params=None, **extra_args):
    flat_params = None if params is None else _flatten(params)
    flat = _flatten(g)
    _check_state(hp, g, flat, state)
    u, state = update_one(hp.args[0], flat, state, flat_params, extra_args)  # u = t(concatenate(g))
    return _unflatten(g, u), state


def flatten(inner: GradientTransformation) -> GradientTransformation:
    """Runs `inner` on one vector, the concatenation of all leaves, and cuts its updates back into leaves.

        v = concatenate(ravel(g_1), ..., ravel(g_n));   u_1, ..., u_n = split(inner(v))

    A model of many small leaves then costs `inner` a few large operations instead of a few per
    leaf, for a copy of the gradients. Only for transformations that act coordinate by
    coordinate or on the whole tree (Adam, SGD, clip_by_global_norm): a layerwise one (LAMB's
    trust ratio) would see one layer. As optax's, the state is `inner`'s state for the vector;
    the vector is in the leaves' common dtype (optax's concatenation promotes them too) and each
    update comes back in its leaf's dtype (optax's keeps the common one).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.flatten(gradtx.adam(1e-3))
    >>> tx.init({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})[0].mu.shape
    (9,)
    """
    check_members("flatten", (inner,))
    return wrapper("flatten", _init_flatten, _update_flatten, inner)


__all__ = ["flatten"]
