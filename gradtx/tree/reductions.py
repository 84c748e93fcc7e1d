"""Reductions of a tree to a number: sums, norms, extrema, dot products, sizes and dtypes.

Norms and sums of squares accumulate in at least float32 and are real for complex leaves, as the
second moments of `gradtx.tree.arithmetic` are. Names and arguments are optax.tree's.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.tree.arithmetic import _abs_sq, _up, real_dtype

PyTree = Any


def all_finite(tree: PyTree) -> jax.Array:
    """A boolean scalar: True when no leaf holds a NaN or an infinity (True for an empty tree)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _total(parts: list[jax.Array]) -> jax.Array:
    """The sum of scalars of possibly different dtypes, in their widest dtype (float32 for none)."""
    if not parts:
        return jnp.zeros([], jax.dtypes.canonicalize_dtype(np.float32))
    dtype = np.result_type(*[p.dtype for p in parts])
    return builtins.sum((p.astype(dtype) for p in parts), jnp.zeros([], dtype))


def sum_sq(tree: PyTree) -> jax.Array:
    """The sum of |x|^2 over all leaves, accumulated in at least float32 (real for complex leaves)."""
    parts = [jnp.sum(_abs_sq(_up(jnp.asarray(x)))) for x in jax.tree.leaves(tree)]
    return _total([p.astype(real_dtype(p.dtype)) for p in parts])


def sum(tree: PyTree, associative_reduction: bool = False) -> jax.Array:
    """The sum of every entry of every leaf (0 for an empty tree).

    `associative_reduction` is optax's switch for a tree-shaped reduction; the value is the same
    up to rounding, and gradtx always adds the per-leaf sums in order.
    """
    return _total([jnp.sum(jnp.asarray(x)) for x in jax.tree.leaves(tree)])


def max(tree: PyTree) -> jax.Array:
    """The largest entry over all leaves (-inf for an empty tree)."""
    return functools.reduce(jnp.maximum, [jnp.max(x) for x in jax.tree.leaves(tree)], jnp.asarray(-jnp.inf))


def min(tree: PyTree) -> jax.Array:
    """The smallest entry over all leaves (inf for an empty tree)."""
    return functools.reduce(jnp.minimum, [jnp.min(x) for x in jax.tree.leaves(tree)], jnp.asarray(jnp.inf))


def vdot(tree_x: PyTree, tree_y: PyTree) -> jax.Array:
    """sum over leaves of vdot(x, y) = sum conj(x) * y: the inner product of two trees."""
    return _total(jax.tree.leaves(jax.tree.map(lambda x, y: jnp.vdot(x, y), tree_x, tree_y)))


def norm(tree: PyTree, ord: int | str | float | None = None, squared: bool = False) -> jax.Array:
    """The norm of a tree seen as one vector: L2 (`ord` None or 2), L1 (1) or max (inf, 'inf').

        ||x||_2 = sqrt(sum |x|^2),   ||x||_1 = sum |x|,   ||x||_inf = max |x|      (over all leaves)

    `squared=True` returns the square of the norm (for L2, without the root). optax.tree.norm's
    arguments; the sum of squares accumulates in at least float32.
    """
    if ord is None or ord == 2:
        sq = sum_sq(tree)
        return sq if squared else jnp.sqrt(sq)
    if ord == 1:
        value = sum(jax.tree.map(jnp.abs, tree))
    elif ord == jnp.inf or ord in ("inf", "infinity"):
        value = max(jax.tree.map(jnp.abs, tree))
    else:
        raise ValueError(f"gradtx.tree.norm: ord must be None, 1, 2 or inf, got {ord!r}")
    return value * value if squared else value


def size(tree: PyTree) -> int:
    """The number of scalars in a tree."""
    return builtins.sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def batch_shape(tree: PyTree, shape: tuple[int, ...] = ()) -> PyTree:
    """Each leaf broadcast to `shape + leaf.shape` (a batch of copies of the tree)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def dtype(tree: PyTree, mixed_dtype_handler: str | None = None) -> Any:
    """The dtype of a tree's leaves.

    Leaves of several dtypes raise, unless `mixed_dtype_handler` says how to pick one:
    'promote' (their promotion), 'highest' or 'lowest' (by precision, within one kind). An empty
    tree has JAX's default float dtype.
    """
    dtypes = {np.dtype(jnp.asarray(x).dtype) for x in jax.tree.leaves(tree)}
    if not dtypes:
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    if len(dtypes) == 1:
        return dtypes.pop()
    if mixed_dtype_handler == "promote":
        with jax.numpy_dtype_promotion("standard"):  # asked for: promotion is the point
            return np.dtype(functools.reduce(jnp.promote_types, dtypes))
    if mixed_dtype_handler in ("highest", "lowest"):
        kinds = {d.kind for d in dtypes}
        if len(kinds) > 1:
            raise ValueError(f"gradtx.tree.dtype: the leaves are of several kinds, {sorted(map(str, dtypes))}")
        pick = builtins.max if mixed_dtype_handler == "highest" else builtins.min
        return pick(dtypes, key=lambda d: d.itemsize)
    raise ValueError(
        f"gradtx.tree.dtype: the leaves have several dtypes, {sorted(map(str, dtypes))}; pass"
        " mixed_dtype_handler='promote', 'highest' or 'lowest' to pick one"
    )


def allclose(a: PyTree, b: PyTree, rtol: Any = 1e-5, atol: Any = 1e-8, equal_nan: bool = False) -> bool:
    """True when the trees have one structure and every pair of leaves is `jnp.allclose`."""
    structure: Any = jax.tree.structure(a)
    if structure != jax.tree.structure(b):
        return False
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return builtins.all(bool(jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)) for x, y in pairs)
