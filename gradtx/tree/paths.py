"""Finding and changing values in an optimizer state by name: optax.tree's get, set, map_params.

    get(state, "learning_rate")                  the one value named so (a field, a key, a state)
    set(state, learning_rate=1e-4)               a copy with it replaced
    get_all_with_path(state, "count")            every value named so, with its key path
    map_params(tx, f, state)                     f applied to the leaves that mirror the params

A name is a NamedTuple field (`mu`, `count`), a dict key (`"learning_rate"` in
`InjectHyperparamsState.hyperparams`) or a NamedTuple's class name (`"ScaleByAdamState"`). Key
paths name a NamedTuple's field with its class: `ScaleByAdamState.mu['w']`, so
`jax.tree_util.keystr` prints where a value lives. `filtering(path, value) -> bool` narrows the
matches. Names, arguments and matches are optax.tree's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

PyTree = Any
KeyPath = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A key path entry for the field `name` of a NamedTuple of class `tuple_name`."""

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


def _is_named_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _is_leaf_of(node: Any) -> Callable[[Any], bool]:
    return lambda x: x is not node


def _children(node: Any) -> list[tuple[Any, Any]]:
    """A node's children with the key entry of each: fields by class and name, dict keys, others as JAX keys them."""
    if _is_named_tuple(node):
        return [(NamedTupleKey(type(node).__name__, f), getattr(node, f)) for f in node._fields]
    if isinstance(node, dict):
        return [(jax.tree_util.DictKey(k), v) for k, v in node.items()]
    if node is None or jax.tree_util.treedef_is_leaf(jax.tree.structure(node)):
        return []
    return [
        (path[0], child) for path, child in jax.tree_util.tree_flatten_with_path(node, is_leaf=_is_leaf_of(node))[0]
    ]


def _rebuild(node: Any, children: list[Any]) -> Any:
    if _is_named_tuple(node):
        return type(node)(*children)
    if isinstance(node, dict):
        return type(node)(zip(node.keys(), children, strict=True))
    treedef: Any = jax.tree.structure(node, is_leaf=_is_leaf_of(node))
    return treedef.unflatten(children)


def _name(entry: Any) -> Any:
    """The name a key entry matches: a field's name or a dict key (None for positions in a sequence)."""
    if isinstance(entry, NamedTupleKey):
        return entry.name
    if isinstance(entry, jax.tree_util.DictKey):
        return entry.key
    return None


def get_all_with_path(tree: PyTree, key: Any, filtering: Callable[[KeyPath, Any], bool] | None = None) -> list:
    """Every value named `key` in `tree`, with its key path: a list of (path, value), in tree order.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> state = gradtx.adam(1e-3).init({"w": jnp.zeros(2)})
    >>> [jax.tree_util.keystr(path) for path, _ in gradtx.tree.get_all_with_path(state, "count")]
    ['[0]ScaleByAdamState.count']
    """
    found: list[tuple[KeyPath, Any]] = []

    def walk(path: KeyPath, node: Any) -> None:
        if _is_named_tuple(node) and type(node).__name__ == key:
            found.append((path, node))
        for entry, child in _children(node):
            if _name(entry) == key and not isinstance(entry, jax.tree_util.SequenceKey):
                found.append(((*path, entry), child))
            walk((*path, entry), child)

    walk((), tree)
    return [(p, v) for p, v in found if filtering is None or filtering(p, v)]


def get(tree: PyTree, key: Any, default: Any = None, filtering: Callable[[KeyPath, Any], bool] | None = None) -> Any:
    """The one value named `key` in `tree` (`default` if there is none; KeyError if there are several).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3)
    >>> float(gradtx.tree.get(tx.init({"w": jnp.zeros(2)}), "learning_rate"))
    0.001
    """
    found = get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = [jax.tree_util.keystr(p) for p, _ in found]
        raise KeyError(f"gradtx.tree.get: {key!r} names {len(found)} values, at {paths}; pass filtering to pick one")
    return found[0][1] if found else default


def set(tree: PyTree, filtering: Callable[[KeyPath, Any], bool] | None = None, /, **kwargs: Any) -> PyTree:
    """A copy of `tree` with every value named by a keyword replaced by that keyword's value.

    Each name must be found (KeyError otherwise). A state's structure and dtypes must stay those
    its init gave it: pass arrays of the same dtype (e.g. `jnp.asarray(1e-4, jnp.float32)`).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3)
    >>> state = gradtx.tree.set(tx.init({"w": jnp.zeros(2)}), learning_rate=jnp.asarray(1e-4))
    >>> float(gradtx.tree.get(state, "learning_rate"))
    0.0001
    """
    for key in kwargs:
        if not get_all_with_path(tree, key, filtering):
            raise KeyError(
                f"gradtx.tree.set: nothing in the tree is named {key!r}" + (" (after filtering)" * bool(filtering))
            )

    def replace(path: KeyPath, node: Any) -> Any:
        if _is_named_tuple(node) and type(node).__name__ in kwargs and (filtering is None or filtering(path, node)):
            return kwargs[type(node).__name__]
        children = _children(node)
        if not children:
            return node
        new = []
        for entry, child in children:
            name, at = _name(entry), (*path, entry)
            if name in kwargs and name is not None and (filtering is None or filtering(at, child)):
                new.append(kwargs[name])
            else:
                new.append(replace(at, child))
        return _rebuild(node, new)

    return replace((), tree)


class _Params:
    """Stands for the params when init is traced by map_params: a pytree node without children,
    so every tree map of init's leaves it over and hands it back where the state mirrors the params."""


jax.tree_util.register_pytree_node(_Params, lambda _: ((), None), lambda _, __: _Params())


def is_params_stand_in(x: Any) -> bool:
    """Whether `x` is map_params' stand-in for the params (wrappers that read the params' structure,
    such as masks, hand it to their inner transformations whole)."""
    return isinstance(x, _Params)


def map_params(
    initable: Any,
    f: Callable[..., Any],
    state: PyTree,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    """`f` applied to every part of `state` that mirrors the params (moments, traces), optax's way.

    `initable` is the transformation (or its init): its init is run on a stand-in for the params,
    which marks the parts of the state built from them. `rest` are trees of the params' structure
    passed to `f` alongside; `transform_non_params` is applied to every other leaf (counts, keys).
    For example, to shard a state as its params: `map_params(tx, lambda x: put(x, s), state)`.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.adam(1e-3)
    >>> state = gradtx.tree.map_params(tx, lambda x: x + 1, tx.init({"w": jnp.zeros(2)}))
    >>> state[0].mu["w"].tolist(), int(state[0].count)
    ([1.0, 1.0], 0)
    """
    init = initable.init if hasattr(initable, "init") else initable
    marked = init(_Params())

    def visit(mark: Any, value: Any) -> Any:
        if isinstance(mark, _Params):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return value if transform_non_params is None else transform_non_params(value)

    return jax.tree.map(visit, marked, state, is_leaf=lambda x: isinstance(x, _Params))
