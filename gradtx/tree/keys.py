"""Random keys shaped like a tree: one key a leaf, random trees, and raw key data for checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

PyTree = Any


def split_key_like(rng_key: jax.Array, target_tree: PyTree) -> PyTree:
    """A tree of `target_tree`'s structure holding a different key split from `rng_key` at each leaf."""
    treedef: Any = jax.tree.structure(target_tree)
    return treedef.unflatten(list(jax.random.split(rng_key, treedef.num_leaves)))


def random_like(
    rng_key: jax.Array, target_tree: PyTree, sampler: Callable[..., jax.Array] = jax.random.normal, dtype: Any = None
) -> PyTree:
    """A random tree of `target_tree`'s structure and shapes: `sampler(key, shape, dtype)` at each leaf.

    Each leaf gets its own key (`split_key_like`) and, unless `dtype` is given, its own dtype.
    """
    keys = split_key_like(rng_key, target_tree)
    return jax.tree.map(lambda x, k: sampler(k, x.shape, dtype or x.dtype), target_tree, keys)


def unwrap_random_key_data(input_tree: PyTree) -> PyTree:
    """Typed PRNG keys replaced by their raw uint32 key data (the form every checkpoint stores)."""

    def unwrap(x: Any) -> Any:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(unwrap, input_tree)
