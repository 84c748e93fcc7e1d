"""State conversion: optax's state layouts to gradtx's and back, and a state carried over to params
that gained or lost leaves.

`state_from_optax(optax_state, tx, params)` is the state of gradtx's `tx` holding an optax run's
state; `state_to_optax(state, optax_tx, params)` the reverse; `remap_state(tx, state, old_params,
new_params)` the state of `tx` for new params, with a report of what it kept, added and dropped.

gradtx's states are optax's wherever the two libraries have the same transformation, except where
gradtx keeps more or optax's layout moved on:

    TraceState                gradtx keeps a count (for a momentum schedule); optax has the trace only
    ScaleByRmsState, ScaleByRStdDevState      gradtx always keeps the count; optax only with
                              bias_correction (ScaleByRmsWithCountState, ScaleByRStdDevWithCountState)
    InjectHyperparamsState    optax's InjectStatefulHyperparamsState (0.1.9 on) adds hyperparams_states
    AddNoiseState.rng_key     gradtx keeps a raw uint32[2] key, optax a typed key
    chains                    optax's sgd and rmsprop chain an identity, its adadelta a zero weight decay:
                              stateless members that gradtx's chains leave out
    MultiStepsState.acc_grads optax accumulates in float32 by default, gradtx in the params' dtype

The conversion walks the target layout (the init state of the transformation converted to) and
takes each field from the source by name; chains are aligned on their members that keep arrays
(stateless members are skipped on both sides); leaves are cast to the target's dtypes and keys
wrapped or unwrapped. A field the source does not have is a step count (or optax's schedule
states, which hold counts): it is the source's count of the same chain (Adam's count for the trace
after it), or `count` where the source keeps none (optax's sgd with momentum): then `count` is
required, the number of updates applied. Anything else that does not fit is an error naming it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import OptState, Params
from gradtx.combine import MaskedNode

__all__ = ["RemapReport", "remap_state", "state_from_optax", "state_to_optax"]


# ---------------------------------------------------------------------------------------------------
# optax <-> gradtx


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _holds_arrays(x: Any) -> bool:
    return bool(jax.tree.leaves(x))


def _counts(x: Any) -> set[int]:
    """The values of every field named `count` in x's NamedTuples (step counts)."""
    found: set[int] = set()
    if _is_namedtuple(x):
        for field, value in zip(x._fields, x, strict=True):
            if field == "count" and hasattr(value, "shape") and not np.shape(value):
                found.add(int(value))
            else:
                found |= _counts(value)
    elif isinstance(x, tuple | list):
        for v in x:
            found |= _counts(v)
    elif isinstance(x, dict):
        for v in x.values():
            found |= _counts(v)
    return found


class _Context(NamedTuple):
    builder: str
    count: Any  # int | None, given by the caller (typed Any: a field named count shadows tuple.count)
    counts: frozenset[int]  # the source's counts in the nearest enclosing chain


def _the_count(ctx: _Context, where: str) -> int:
    if ctx.count is not None:
        return ctx.count
    if len(ctx.counts) == 1:
        return next(iter(ctx.counts))
    found = f"its counts there are {sorted(ctx.counts)}" if ctx.counts else "it keeps no count there"
    raise ValueError(
        f"{ctx.builder}: the target's {where} is a step count the source does not have ({found});"
        " pass count=, the number of updates applied"
    )


def _missing(field: str, template: Any, ctx: _Context, where: str) -> Any:
    """A field only the target has: a step count, or its init value with every step count in it set."""
    if field == "count" and hasattr(template, "dtype"):
        return jnp.asarray(_the_count(ctx, where), template.dtype)
    if _is_namedtuple(template):
        return type(template)(*(
            _missing(f, v, ctx, f"{where}.{f}") for f, v in zip(template._fields, template, strict=True)
        ))  # fmt: skip
    if isinstance(template, dict):
        return {k: _missing(str(k), v, ctx, f"{where}[{k!r}]") for k, v in template.items()}
    if _holds_arrays(template):
        raise ValueError(f"{ctx.builder}: the target's {where} holds arrays the source does not have")
    return template


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf(source: Any, template: Any, ctx: _Context, where: str) -> Any:
    if _is_key(template) and not _is_key(source):
        return jax.random.wrap_key_data(jnp.asarray(source), impl=jax.random.key_impl(template))
    if _is_key(source) and not _is_key(template):
        source = jax.random.key_data(source)
    if _is_key(template):
        return source
    if not hasattr(source, "shape") and not isinstance(source, int | float | bool):
        raise ValueError(f"{ctx.builder}: {where} is {type(source).__name__} in the source, an array in the target")
    if np.shape(source) != np.shape(template):
        raise ValueError(f"{ctx.builder}: {where} has shape {np.shape(source)} in the source, {np.shape(template)}")
    return jnp.asarray(source).astype(template.dtype)


def _convert(source: Any, template: Any, ctx: _Context, where: str) -> Any:
    if isinstance(template, MaskedNode) or template is None:
        return template
    if _is_namedtuple(template):
        if not _is_namedtuple(source):
            raise ValueError(f"{ctx.builder}: {where} is a {type(template).__name__} in the target, not in the source")
        fields = dict(zip(source._fields, source, strict=True))
        extra = [f for f in fields if f not in template._fields and f != "hyperparams_states"]
        extra = [f for f in extra if not (f == "count" or not _holds_arrays(fields[f]))]
        if extra:
            raise ValueError(f"{ctx.builder}: {where}.{extra[0]} of the source has no place in the target")
        return type(template)(*(
            _convert(fields[f], t, ctx, f"{where}.{f}") if f in fields else _missing(f, t, ctx, f"{where}.{f}")
            for f, t in zip(template._fields, template, strict=True)
        ))  # fmt: skip
    if isinstance(template, tuple | list):
        if not isinstance(source, tuple | list):
            kind = type(source).__name__
            raise ValueError(f"{ctx.builder}: {where} is a sequence in the target, {kind} in the source")
        t_at = [i for i, t in enumerate(template) if _holds_arrays(t)]
        s_at = [i for i, s in enumerate(source) if _holds_arrays(s)]
        if len(t_at) != len(s_at):
            raise ValueError(
                f"{ctx.builder}: {where} has {len(s_at)} members with state in the source, {len(t_at)} in the target"
            )
        inner = ctx._replace(counts=frozenset(_counts(source)))
        out = list(template)
        for i, j in zip(t_at, s_at, strict=True):
            out[i] = _convert(source[j], template[i], inner, f"{where}[{i}]")
        return type(template)(out) if isinstance(template, list) else tuple(out)
    if isinstance(template, dict):
        if not isinstance(source, dict) or set(source) != set(template):
            keys = sorted(source) if isinstance(source, dict) else type(source).__name__
            raise ValueError(f"{ctx.builder}: {where} has keys {sorted(template)} in the target, {keys} in the source")
        return type(template)((k, _convert(source[k], t, ctx, f"{where}[{k!r}]")) for k, t in template.items())
    return _leaf(source, template, ctx, where)


def state_from_optax(optax_state: OptState, tx: Any, params: Params, *, count: int | None = None) -> OptState:
    """The state of gradtx's `tx` for `params` that holds `optax_state`, an optax run's state.

    `tx` is the gradtx transformation equal to the optax one that made the state (same names and
    arguments: `gradtx.rmsprop(0.01, momentum=0.9)` for `optax.rmsprop(0.01, momentum=0.9)`).
    `count`: the number of updates applied, needed only where gradtx keeps a count that optax's
    state does not (see the module docstring).

    >>> import jax.numpy as jnp, optax, gradtx
    >>> params = {"w": jnp.ones(3, jnp.float32)}
    >>> opt = optax.sgd(0.1, momentum=0.9)
    >>> state = opt.init(params)
    >>> gradtx.state_from_optax(state, gradtx.sgd(0.1, momentum=0.9), params, count=0)[0]
    TraceState(trace={'w': Array([0., 0., 0.], dtype=float32)}, count=Array(0, dtype=int32))
    """
    ctx = _Context("state_from_optax", count, frozenset(_counts(optax_state)))
    return _convert(optax_state, tx.init(params), ctx, "state")


def state_to_optax(state: OptState, optax_tx: Any, params: Params, *, count: int | None = None) -> OptState:
    """The state of `optax_tx` for `params` that holds gradtx's `state` (of the equal gradtx transformation).

    The target layout is `optax_tx.init(params)`; `count` as in `state_from_optax` (optax's
    schedule states, where gradtx keeps none).

    >>> import jax.numpy as jnp, optax, gradtx
    >>> params = {"w": jnp.ones(3, jnp.float32)}
    >>> state = gradtx.rmsprop(0.1).init(params)
    >>> gradtx.state_to_optax(state, optax.rmsprop(0.1), params)[0]
    ScaleByRmsState(nu={'w': Array([0., 0., 0.], dtype=float32)})
    """
    with jax.numpy_dtype_promotion("standard"):  # optax's init relies on implicit promotion
        template = optax_tx.init(params)
    ctx = _Context("state_to_optax", count, frozenset(_counts(state)))
    return _convert(state, template, ctx, "state")


# ---------------------------------------------------------------------------------------------------
# Params that grow or shrink


class RemapReport(NamedTuple):
    """What `remap_state` did, leaf by leaf (key paths as `jax.tree_util.keystr` gives them).

    kept: in both params with the same shape and dtype, whose state was carried over; added: only
    in the new params, with fresh state (init's); dropped: only in the old params, whose state is
    gone; reshaped: in both with another shape or dtype, with fresh state.
    """

    kept: tuple[str, ...]
    added: tuple[str, ...]
    dropped: tuple[str, ...]
    reshaped: tuple[str, ...]

    def __str__(self) -> str:
        rows = [f"{len(self.kept)} kept"]
        rows += [f"{name}: {', '.join(paths)}" for name, paths in zip(self._fields[1:], self[1:], strict=True) if paths]
        return "; ".join(rows)


def _leaves_by_path(params: Params) -> dict[Any, Any]:
    return dict(jax.tree_util.tree_flatten_with_path(tree.trainable(params))[0])


def _params_shaped(node: Any, params: Params) -> list[Any] | None:
    """node's parts, one per leaf of params, where node has the params' structure (its leaves arrays or
    MaskedNodes: a moment, a factored statistic); None where it does not."""
    structure: Any = jax.tree.structure(tree.trainable(params))
    if structure.num_leaves == 0 or (_is_namedtuple(node) and type(node).__name__.endswith("State")):
        return None
    try:
        parts = structure.flatten_up_to(node)
    except (ValueError, TypeError):
        return None
    if structure.num_nodes == 1:  # params that are one array: anything flattens up to it, a count too
        return parts if np.shape(parts[0]) == np.shape(jax.tree.leaves(params)[0]) else None
    ok = all(hasattr(p, "shape") or isinstance(p, MaskedNode) for p in parts)
    return parts if ok else None


def remap_state(tx: Any, state: OptState, old_params: Params, new_params: Params) -> tuple[OptState, RemapReport]:
    """The state of `tx` for `new_params`, carried over from `state` (for `old_params`) leaf by leaf.

        new state's leaf at path p = old state's leaf at p    where p has the same shape and dtype in both
                                   = init's leaf at p         elsewhere (a new or reshaped leaf)

    Step counts, keys and other scalars are the old state's. So a new leaf's moments start from
    zero under the old count: its bias correction is that of a late step (Adam's first updates of
    it are smaller than a fresh Adam's, by 1 - b1 at most), as in any warm restart. Returns the
    state and a `RemapReport` of the leaves kept, added, dropped and reshaped. `tx`'s masks and
    partition labels are applied to `new_params` (a function of the params is called on them).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.adam(1e-3)
    >>> old = {"a": jnp.ones(2), "b": jnp.ones(3)}
    >>> new = {"a": jnp.ones(2), "c": jnp.ones(4)}
    >>> state, report = gradtx.remap_state(tx, tx.init(old), old, new)
    >>> print(report)
    1 kept; added: ['c']; dropped: ['b']
    """
    old_leaves, new_leaves = _leaves_by_path(old_params), _leaves_by_path(new_params)

    def same(path: Any) -> bool:
        a, b = old_leaves.get(path), new_leaves.get(path)
        if a is None or b is None:
            return False
        return np.shape(a) == np.shape(b) and jnp.result_type(a) == jnp.result_type(b)

    def walk(fresh: Any, old: Any, where: str) -> Any:
        parts = _params_shaped(fresh, new_params)
        if parts is not None:
            old_parts = _params_shaped(old, old_params)
            if old_parts is None:
                raise ValueError(f"remap_state: {where} has the new params' structure, not the old params' in state")
            by_path = dict(zip(old_leaves, old_parts, strict=True))
            chosen = [
                by_path[p] if same(p) and hasattr(by_path[p], "shape") and hasattr(f, "shape") else f
                for p, f in zip(new_leaves, parts, strict=True)
            ]
            structure: Any = jax.tree.structure(tree.trainable(new_params))
            return structure.unflatten(chosen)
        if _is_namedtuple(fresh) or isinstance(fresh, tuple | list):
            if type(old) is not type(fresh) or len(old) != len(fresh):
                raise ValueError(f"remap_state: {where} of state is not what tx.init builds: was it built by tx?")
            out = [walk(f, o, f"{where}[{i}]") for i, (f, o) in enumerate(zip(fresh, old, strict=True))]
            return type(fresh)(*out) if _is_namedtuple(fresh) else type(fresh)(out)
        if isinstance(fresh, dict):
            if not isinstance(old, dict) or set(old) != set(fresh):
                raise ValueError(f"remap_state: {where} of state is not what tx.init builds: was it built by tx?")
            return type(fresh)((k, walk(v, old[k], f"{where}[{k!r}]")) for k, v in fresh.items())
        return old  # a count, a key, a scalar: carried over

    new_state = walk(tx.init(new_params), state, "state")
    keystr = jax.tree_util.keystr
    report = RemapReport(
        kept=tuple(keystr(p) for p in new_leaves if same(p)),
        added=tuple(keystr(p) for p in new_leaves if p not in old_leaves),
        dropped=tuple(keystr(p) for p in old_leaves if p not in new_leaves),
        reshaped=tuple(keystr(p) for p in new_leaves if p in old_leaves and not same(p)),
    )
    return new_state, report
