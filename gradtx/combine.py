"""Composition: transformations in sequence, on part of the params, or on labelled parts.

    chain(t1, t2, ..., tn):      u <- t1(g);  u <- t2(u);  ...;  state = (s1, s2, ..., sn)
    masked(t, mask):             u = t(g) where mask is True, u = g where it is False
    partition({a: ta, b: tb}, labels):  u = ta(g) on the leaves labelled a, tb(g) on those labelled b

`chain` accepts any object with `init` and `update` (optax's too), and its state is a plain tuple
of the members' states, exactly as optax's, so states and checkpoints move between libraries.

`masked` and `partition` hand their inner transformations a tree in which every masked-out subtree
is a `MaskedNode()`: a node without children, so the inner transformation neither sees nor keeps
state for it (a state holds zero bytes for a masked-out leaf). Their states are optax's:
`MaskedState(inner_state)` and `PartitionState(inner_states={label: MaskedState(...)})`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from gradtx import tree
from gradtx.base import (
    EmptyState,
    ExtraArgsUpdateFn,
    GradientTransformation,
    Hyperparams,
    InitFn,
    OptState,
    Params,
    UpdateFn,
    Updates,
    init_empty,
    transformation,
)
from gradtx.packing import require_leaves


def _takes_extra_args(tx: Any) -> bool:
    # Every gradtx update ignores keywords it does not use; optax marks those that accept them by
    # their class. A plain optax GradientTransformation would raise on them, so it gets none.
    return isinstance(tx.update, UpdateFn) or type(tx).__name__ == "GradientTransformationExtraArgs"


def update_one(tx: Any, updates: Updates, state: OptState, params: Params, extra_args: dict) -> Any:
    """`tx.update`, passing the caller's keyword arguments where `tx` takes them."""
    if extra_args and _takes_extra_args(tx):
        return tx.update(updates, state, params, **extra_args)
    return tx.update(updates, state, params)


def check_members(builder: str, transforms: tuple) -> None:
    """Each member must have `init` and `update` (a gradtx or an optax transformation)."""
    for i, tx in enumerate(transforms):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"{builder}: argument {i} must be a gradient transformation (with init and update),"
                f" got {type(tx).__name__}: {tx!r}"
            )


# ---------------------------------------------------------------------------------------------------
# Wrappers: transformations whose state holds other transformations' states


class WrapperUpdateFn(ExtraArgsUpdateFn):
    """The update of a wrapper (`masked`, `partition`, `apply_if_finite`, ...).

    As `UpdateFn`, but the gradients are checked against the params only: the wrapper's state nests
    its inner transformations' states, which do not have the params' structure and which the inner
    transformations check themselves.
    """

    __slots__ = ()
    checks_state = False


def wrapper(
    builder: str,
    init: Callable[..., OptState],
    update: Callable[..., tuple[Updates, OptState]],
    *args: Any,
    hyperparams: type[Hyperparams] = Hyperparams,
    **kwargs: Any,
) -> GradientTransformation:
    """`transformation` for wrappers: `update(hp, updates, state, params, **extra_args)` forwards the
    caller's keyword arguments, and its state may nest other states. `hyperparams` may be a subclass
    of Hyperparams whose repr spells a builder called in two steps (`MultiSteps(...).gradient_transformation()`)."""
    hp = hyperparams(builder, args, kwargs)
    return GradientTransformation(InitFn(init, hp), WrapperUpdateFn(update, hp))


# ---------------------------------------------------------------------------------------------------
# chain, named_chain


def _chain_init(hp: Hyperparams, params: Params) -> tuple:
    return tuple(tx.init(params) for tx in hp.args)


# Between the members of a chain, updates travel in their compute dtype (float32 for bfloat16 and
# float16 gradients) and are rounded to the gradients' dtype once, at the end: a bfloat16 SGD with
# momentum would otherwise round the momentum, then the step, then the sum (three roundings where one
# is needed), and each rounding costs a conversion per element in the compiled step.


def _chain_update(
    hp: Hyperparams, updates: Updates, state: tuple, params: Params = None, **extra_args: Any
) -> tuple[Updates, tuple]:
    if len(state) != len(hp.args):
        raise ValueError(
            f"chain: state has {len(state)} members but the chain has {len(hp.args)} transformations;"
            " was the state built by this chain's init?"
        )
    new_state = []
    u = tree.compute_like(updates, updates)  # see _in_compute_dtype
    for tx, s in zip(hp.args, state, strict=True):
        u, s = update_one(tx, u, s, params, extra_args)
        new_state.append(s)
    return tree.cast_like(u, updates), tuple(new_state)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Applies transformations in sequence; the state is the tuple of their states.

    >>> import gradtx
    >>> gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.scale_by_sign(), gradtx.scale(-1e-3))
    chain(clip_by_global_norm(max_norm=1.0), scale_by_sign(), scale(step_size=-0.001))
    """
    check_members("chain", transforms)
    return transformation("chain", _chain_init, _chain_update, *transforms, extra_args=True)


def _named_chain_init(hp: Hyperparams, params: Params) -> dict:
    return {name: tx.init(params) for name, tx in hp.args}


def _named_chain_update(
    hp: Hyperparams, updates: Updates, state: dict, params: Params = None, **extra_args: Any
) -> tuple[Updates, dict]:
    new_state = {}
    u = tree.compute_like(updates, updates)
    for name, tx in hp.args:
        u, new_state[name] = update_one(tx, u, state[name], params, extra_args)
    return tree.cast_like(u, updates), new_state


def named_chain(*transforms: tuple[str, GradientTransformation]) -> GradientTransformation:
    """Like `chain`, with each member named: the state is a dict from name to member state.

    >>> import gradtx
    >>> tx = gradtx.named_chain(("clip", gradtx.clip(1.0)), ("sgd", gradtx.scale(-0.1)))
    >>> list(tx.init({"w": 0.0}))
    ['clip', 'sgd']
    """
    names = [pair[0] if isinstance(pair, tuple) and len(pair) == 2 else None for pair in transforms]
    if None in names or not all(isinstance(n, str) for n in names):
        raise TypeError("named_chain: each argument must be a (name, transformation) pair")
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be unique, got {names}")
    check_members("named_chain", tuple(tx for _, tx in transforms))
    return transformation("named_chain", _named_chain_init, _named_chain_update, *transforms, extra_args=True)


# ---------------------------------------------------------------------------------------------------
# set_to_zero


def _zero_update(hp: Hyperparams, updates: Updates, state: EmptyState, params: Params = None):
    return tree.zeros_like(updates), state


def set_to_zero() -> GradientTransformation:
    """Zero updates: the leaves it is applied to do not move. Stateless.

    Freezes part of a model when given to `partition` (or `multi_transform`) for that part's label;
    under `jax.jit` the work for the frozen leaves is dropped.

    >>> import gradtx
    >>> tx = gradtx.partition({"train": gradtx.adam(1e-3), "freeze": gradtx.set_to_zero()},
    ...                       {"encoder": "freeze", "head": "train"})
    """
    return transformation("set_to_zero", init_empty, _zero_update)


# ---------------------------------------------------------------------------------------------------
# masked


class MaskedNode(NamedTuple):
    """Stands for a masked-out subtree: a node without children, so tree maps skip it (optax's)."""


class MaskedState(NamedTuple):
    """inner_state: the inner transformation's state, with a `MaskedNode()` for each masked-out subtree."""

    inner_state: Any


def _is_none(x: Any) -> bool:
    return x is None


def _not_a_prefix(prefix: Any, full: Any, name: str) -> str:
    """Where the tree `prefix` is not a prefix of `full`: a key path, or 'the node types differ'."""
    full_paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(full, is_leaf=_is_none)[0]]
    prefix_paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(prefix)[0]]
    for path in prefix_paths:
        if not any(q[: len(path)] == path for q in full_paths):
            return f"{jax.tree_util.keystr(path)} is in the {name}, not in the params"
    for q in full_paths:
        if not any(q[: len(path)] == path for path in prefix_paths):
            return f"{jax.tree_util.keystr(q)} is in the params, not in the {name}"
    return "the node types differ"


def check_mask_leaves(builder: str, mask: Any) -> None:
    """A mask's leaves are Python bools: it is static, since it decides which leaves have state."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(mask)[0]:
        if not isinstance(leaf, bool | np.bool_):
            raise TypeError(
                f"{builder}: mask leaves must be Python bools (a mask is static: it decides which leaves"
                f" have state), got {leaf!r} at {jax.tree_util.keystr(path) or 'the root'}"
            )


def is_function(spec: Any) -> bool:
    """Whether a mask or labels argument is a function of the params rather than a tree.

    A pytree node is a tree even when callable: an equinox Module of bools (or of labels) is a mask,
    not a function to call on the params (calling it would run the model's forward pass on them).
    """
    return callable(spec) and jax.tree_util.treedef_is_leaf(jax.tree.structure(spec))


def _tree_over(builder: str, name: str, spec: Any, full: Any) -> Any:
    """`spec` (a mask or labels: a tree, or a function of the params giving one), checked to be a
    prefix of `full` (the params or the updates)."""
    require_leaves(builder, full)  # a mask names leaves: packed params have merged them
    value = spec(full) if is_function(spec) else spec
    structure: Any = jax.tree.structure(value)
    try:
        structure.flatten_up_to(full)
    except (ValueError, TypeError):
        what = "a tree of bools" if name == "mask" else "a tree of labels"
        raise ValueError(
            f"{builder}: {name} must be {what} with the params' structure (or a prefix of it):"
            f" {_not_a_prefix(value, full, name)}.\n"
            f"  {name}: {jax.tree.structure(value)}\n  params: {jax.tree.structure(full, is_leaf=_is_none)}"
        ) from None
    return value


def _hide(mask: Any, full: Any) -> Any:
    """`full` with each subtree whose mask is False replaced by a MaskedNode()."""
    return jax.tree.map(lambda on, sub: sub if on else MaskedNode(), mask, full)


def _merge(mask: Any, inner: Any, outer: Any) -> Any:
    """`inner` where the mask is True, `outer` where it is False."""
    return jax.tree.map(lambda on, a, b: a if on else b, mask, inner, outer)


def _masked_init_with(builder: str, inner: Any, mask: Any, params: Params) -> MaskedState:
    if tree.is_params_stand_in(params):  # tree.map_params marks what init builds from the params
        return MaskedState(inner_state=inner.init(params))
    m = _tree_over(builder, "mask", mask, params)
    check_mask_leaves(builder, m)
    return MaskedState(inner_state=inner.init(_hide(m, params)))


def _masked_update_with(
    builder: str, inner: Any, mask: Any, g: Updates, state: MaskedState, params: Params, extra_args: dict
) -> tuple[Updates, MaskedState]:
    m = _tree_over(builder, "mask", mask, g)  # as optax: a mask function is given the updates
    check_mask_leaves(builder, m)
    hidden_params = None if params is None else _hide(m, params)
    u, inner_state = update_one(inner, _hide(m, g), state.inner_state, hidden_params, extra_args)
    return _merge(m, u, g), MaskedState(inner_state=inner_state)  # u = t(g) where masked in, g elsewhere


def _masked_init(hp: Hyperparams, params: Params) -> MaskedState:
    return _masked_init_with(hp.builder, hp.args[0], hp.mask, params)


def _masked_update(hp: Hyperparams, g, state: MaskedState, params=None, **extra_args):
    return _masked_update_with(hp.builder, hp.args[0], hp.mask, g, state, params, extra_args)


def masked(inner: GradientTransformation, mask: Any | Callable[[Params], Any]) -> GradientTransformation:
    """Applies `inner` to the leaves where `mask` is True; the others pass through unchanged.

        u = inner(g)  where mask is True,      u = g  where mask is False

    `mask` is a tree of Python bools with the params' structure, or a prefix of it (one bool for a
    whole subtree), or a function params -> such a tree (called on the params at init and on the
    updates at update, as in optax). `inner` sees only the leaves masked in: the others are
    replaced by `MaskedNode()`, so its state holds nothing for them. The state is
    `MaskedState(inner_state)`, as optax's. optax's `mask_compatible_extra_args` is not taken:
    keyword arguments reach `inner` unmasked.

    >>> import jax, gradtx
    >>> matrices = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    >>> gradtx.masked(gradtx.add_decayed_weights(1e-4), matrices)  # no decay on biases and scales
    masked(add_decayed_weights(weight_decay=0.0001), mask=<lambda>)
    """
    check_members("masked", (inner,))
    if not is_function(mask):
        check_mask_leaves("masked", mask)
    return wrapper("masked", _masked_init, _masked_update, inner, mask=mask)


# ---------------------------------------------------------------------------------------------------
# partition (multi_transform)


class PartitionState(NamedTuple):
    """inner_states: label -> MaskedState of that label's transformation (optax's layout)."""

    inner_states: Mapping[Hashable, Any]


MultiTransformState = PartitionState  # optax's older name


def _labels_over(builder: str, hp: Hyperparams, full: Any) -> Any:
    labels = _tree_over(builder, "param_labels", hp.param_labels, full)
    _check_labels(builder, labels, hp.transforms)
    return labels


def _check_labels(builder: str, labels: Any, transforms: Mapping) -> None:
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        if label not in transforms:
            raise ValueError(
                f"{builder}: label {label!r} (at {jax.tree_util.keystr(path) or 'the root'}) has no"
                f" transformation; the labels with one are {list(transforms)}. Add {label!r} to the"
                " transforms, or label those params with one of these."
            )


def _group(labels: Any, label: Hashable) -> Any:
    return jax.tree.map(lambda x: x == label, labels)


def _partition_init(hp: Hyperparams, params: Params) -> PartitionState:
    if tree.is_params_stand_in(params):  # tree.map_params marks what init builds from the params
        return PartitionState(inner_states={label: MaskedState(tx.init(params)) for label, tx in hp.transforms.items()})
    labels = _labels_over(hp.builder, hp, params)
    return PartitionState(
        inner_states={
            label: _masked_init_with(hp.builder, tx, _group(labels, label), params)
            for label, tx in hp.transforms.items()
        }
    )


def _partition_update(hp: Hyperparams, g, state: PartitionState, params=None, **extra_args):
    labels = _labels_over(hp.builder, hp, g)
    inner_states = {}
    for label, tx in hp.transforms.items():  # each transforms its own leaves and passes the others on
        g, inner_states[label] = _masked_update_with(
            hp.builder, tx, _group(labels, label), g, state.inner_states[label], params, extra_args
        )
    return g, PartitionState(inner_states=inner_states)


def partition(
    transforms: Mapping[Hashable, GradientTransformation], param_labels: Any | Callable[[Params], Any]
) -> GradientTransformation:
    """Applies a different transformation to each labelled part of the params.

        u = transforms[label](g)   on the leaves labelled `label`

    `param_labels` is a tree of labels with the params' structure (or a prefix of it), or a function
    params -> such a tree; every label must be a key of `transforms`. Each transformation sees only
    its own leaves (`masked` by its label) and keeps state for those alone. The state is
    `PartitionState(inner_states={label: MaskedState(...)})`, as optax's. To freeze a part, give its
    label `set_to_zero()`. `multi_transform` is the same function (optax's older name).

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.partition({"adam": gradtx.adam(1e-3), "sgd": gradtx.sgd(1e-2)},
    ...                       {"w": "adam", "b": "sgd"})
    >>> sorted(tx.init({"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}).inner_states)
    ['adam', 'sgd']
    """
    if not isinstance(transforms, Mapping):
        raise TypeError(f"partition: transforms must be a mapping from label to transformation, got {transforms!r}")
    check_members("partition", tuple(transforms.values()))
    if not is_function(param_labels):
        _check_labels("partition", param_labels, transforms)
    return wrapper(
        "partition", _partition_init, _partition_update, transforms=dict(transforms), param_labels=param_labels
    )


multi_transform = partition  # optax's older name, kept by optax as an alias


__all__ = [
    "MaskedNode",
    "MaskedState",
    "MultiTransformState",
    "PartitionState",
    "chain",
    "masked",
    "multi_transform",
    "named_chain",
    "partition",
    "set_to_zero",
]
