"""Readable chains: what each stage of a transformation does, keeps and costs.

    describe(tx, params)     each stage: its hyperparameters, its update equation, the state it keeps
                             and its bytes for these params, XLA's flops and bytes accessed
    state_nbytes(state)      the bytes of a state: per stage, per leaf, per dtype, and as a multiple
                             of the params' bytes ("scale_by_adam: 2.0 x params")

A transformation is walked through its hyperparameters (`gradtx.walk`), never through its repr:
every argument that is itself a transformation is a stage nested in it (chain's members, masked's
inner, partition's transforms, the inner optimizer of a wrapper). A stage's equation is its
builder's docstring's first indented block after the first paragraph, so a new builder is
described without an edit here. A transformation without gradtx hyperparameters (an optax one) is an "opaque optax
transformation": its state and cost are still measured, its insides are not shown.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.combine import MaskedNode
from gradtx.walk import (
    OPAQUE,
    builder_function,
    equation,
    holds_transformation,
    hyperparams_of,
    is_transformation,
    short_repr,
    stages,
)

__all__ = ["Description", "Stage", "StateBytes", "describe", "state_nbytes"]

# ---------------------------------------------------------------------------------------------------
# Bytes


def _abstract(params: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), params)


def leaf_nbytes(x: Any) -> int:
    dtype = jnp.result_type(x) if not hasattr(x, "dtype") else x.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        shape = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(jnp.shape(x), dtype))
        return math.prod(shape.shape) * shape.dtype.itemsize
    return math.prod(jnp.shape(x)) * np.dtype(dtype).itemsize


def tree_nbytes(t: Any) -> int:
    return sum(leaf_nbytes(x) for x in jax.tree.leaves(t))


def params_nbytes(params: Any) -> int:
    """The bytes of the params' floating leaves (integer and boolean leaves get no state)."""
    return sum(leaf_nbytes(x) for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.inexact))


def _dtype_name(x: Any) -> str:
    return str(x.dtype)


@dataclasses.dataclass(frozen=True)
class StateBytes:
    """The bytes of an optimizer state: `total`, `by_stage`, `by_leaf` (key path -> bytes),
    `by_dtype`, and `params` (the bytes of the params' floating leaves, 0 if not given)."""

    total: int
    by_stage: dict[str, int]
    by_leaf: dict[str, int]
    by_dtype: dict[str, int]
    params: int = 0
    name: str = "state"

    def multiple(self, nbytes: int | None = None) -> float:
        """`nbytes` (default: the total) as a multiple of the params' bytes (nan without params)."""
        nbytes = self.total if nbytes is None else nbytes
        return nbytes / self.params if self.params else float("nan")

    def __str__(self) -> str:
        head = f"{self.name}: {self.total:,} bytes"
        if self.params:
            head += f" = {self.multiple():.1f} x params ({self.params:,} bytes)"
        lines = [head, "  by stage:"]
        width = max(map(len, self.by_stage), default=0)
        for stage, n in self.by_stage.items():
            share = f"  {self.multiple(n):.1f} x params" if self.params else ""
            lines.append(f"    {stage:<{width}}  {n:>12,}{share}")
        lines.append("  by dtype: " + ", ".join(f"{d} {n:,}" for d, n in self.by_dtype.items()))
        width = max(map(len, self.by_leaf), default=0)
        lines.append("  by leaf:")
        lines += [f"    {path:<{width}}  {n:>12,}" for path, n in self.by_leaf.items()]
        return "\n".join(lines)


def _stage_of(path: tuple, state: Any) -> tuple[tuple, str]:
    """The key path of the deepest state NamedTuple above a leaf, and its type name."""
    node, best, name = state, (), type(state).__name__ if hasattr(state, "_fields") else ""
    for i, key in enumerate(path):
        node = _child(node, key)
        if hasattr(node, "_fields") and i < len(path) - 1:
            best, name = path[: i + 1], type(node).__name__
    return best, name


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return getattr(node, key.name)
    if isinstance(key, jax.tree_util.SequenceKey):
        return node[key.idx]
    if isinstance(key, jax.tree_util.DictKey):
        return node[key.key]
    return None


def state_nbytes(state: Any, params: Any = None) -> StateBytes:
    """The bytes a state keeps: per stage, per leaf key path, per dtype, and the multiple of the params.

        bytes(leaf) = size x itemsize;   multiple = bytes(state) / bytes(params' floating leaves)

    `state` is a state (arrays or `jax.ShapeDtypeStruct`s, e.g. from `jax.eval_shape(tx.init,
    params)`) or a transformation, whose state for `params` is then computed without allocating.
    A stage is a state NamedTuple (`ScaleByAdamState`, ...): each leaf counts for the deepest one
    above it, so a wrapper's own counters count for the wrapper and its inner state for the inner
    stages. `params` (optional for a state) gives the multiple. A PRNG key counts its key data.

    >>> import gradtx, jax.numpy as jnp
    >>> params = {"w": jnp.zeros((256, 256), jnp.float32), "b": jnp.zeros(256, jnp.float32)}
    >>> print(gradtx.state_nbytes(gradtx.adam(1e-3), params).by_stage)
    {'[0] ScaleByAdamState': 526340, '[1] EmptyState': 0}
    >>> round(gradtx.state_nbytes(gradtx.adam(1e-3), params).multiple(), 3)
    2.0
    """
    name = "state"
    if is_transformation(state):
        if params is None:
            raise TypeError("state_nbytes: to measure a transformation's state, pass the params too")
        name = short_repr(state)
        state = jax.eval_shape(state.init, _abstract(params))
    by_stage: dict[str, int] = {}
    by_leaf: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    # Stages in the order they appear, empty ones (EmptyState) included.
    for path, node in _state_nodes(state):
        by_stage.setdefault(f"{jax.tree_util.keystr(path)} {type(node).__name__}".strip(), 0)
    for path, leaf in leaves:
        n = leaf_nbytes(leaf)
        stage_path, stage_name = _stage_of(path, state)
        key = f"{jax.tree_util.keystr(stage_path)} {stage_name}".strip()
        by_stage[key] = by_stage.get(key, 0) + n
        by_leaf[jax.tree_util.keystr(path) or "<root>"] = n
        by_dtype[_dtype_name(leaf)] = by_dtype.get(_dtype_name(leaf), 0) + n
    total = sum(by_leaf.values())
    return StateBytes(total, by_stage, by_leaf, by_dtype, 0 if params is None else params_nbytes(params), name)


def _state_nodes(state: Any) -> list[tuple[tuple, Any]]:
    """Every state NamedTuple in `state` with its key path, outermost first (MaskedNode left out)."""
    out: list[tuple[tuple, Any]] = []

    def visit(path: tuple, node: Any) -> None:
        if isinstance(node, MaskedNode):
            return
        if hasattr(node, "_fields"):
            out.append((path, node))
            for f in node._fields:
                visit((*path, jax.tree_util.GetAttrKey(f)), getattr(node, f))
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                visit((*path, jax.tree_util.SequenceKey(i)), v)
        elif isinstance(node, dict):
            for k in node:
                visit((*path, jax.tree_util.DictKey(k)), node[k])

    visit((), state)
    return out


# ---------------------------------------------------------------------------------------------------
# describe


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a described transformation (see `describe`)."""

    path: str  # where it sits: "" (the root), "0", "0/inner", "1/adam/0", ...
    depth: int
    name: str  # the builder's name, or OPAQUE
    call: str  # the builder with its own arguments, nested transformations shown as ...
    hyperparams: dict[str, Any]
    summary: str
    equation: str | None
    state: dict[str, str]  # the state's own fields: name -> "dtype[shape] x n leaves"
    state_bytes: int  # its own state (a wrapper's inner states count for the inner stages)
    total_state_bytes: int  # its state, nested stages included
    flops: float | None  # XLA's estimate for this stage's update alone (nested stages included)
    bytes_accessed: float | None
    cost_error: str | None = None
    tx: Any = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Description:
    """`describe`'s result: `stages` in order (depth-first), the params' bytes, and lint's warnings."""

    tx: Any
    stages: tuple[Stage, ...]
    params_bytes: int
    n_leaves: int
    warnings: tuple[Any, ...] = ()

    @property
    def state_bytes(self) -> int:
        return self.stages[0].total_state_bytes if self.stages else 0

    def __str__(self) -> str:
        top = self.stages[0] if self.stages else None
        lines = [
            f"{self.tx!r}",
            f"on {self.n_leaves} float leaves ({self.params_bytes:,} bytes): state {self.state_bytes:,} bytes"
            f" ({self._x(self.state_bytes)} x params)",
        ]
        if top is not None and top.flops is not None:
            lines[1] += f"; one update {top.flops:,.0f} flops, {top.bytes_accessed:,.0f} bytes accessed"
        for s in self.stages:
            pad = "    " * s.depth
            facts = []
            if s.state:
                facts.append(", ".join(f"{k} {v}" for k, v in s.state.items()))
            if s.state_bytes:
                facts.append(f"{s.state_bytes:,} bytes ({self._x(s.state_bytes)} x params)")
            if s.flops is not None:
                facts.append(f"XLA: {s.flops:,.0f} flops, {s.bytes_accessed:,.0f} bytes accessed")
            elif s.cost_error:
                facts.append(f"cost not measured: {s.cost_error}")
            where = f"[{s.path}] " if s.depth else ""
            lines.append(f"{pad}{where}{s.call}")
            text = s.equation if s.equation else s.summary
            lines += [f"{pad}  | {line}" for line in text.splitlines()]
            if facts:
                lines.append(f"{pad}  state: " + "; ".join(facts) if s.state else f"{pad}  " + "; ".join(facts))
        if self.warnings:
            lines.append("lint:")
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def _x(self, n: int) -> str:
        return f"{n / self.params_bytes:.1f}" if self.params_bytes else "nan"


def _same(a: Any, b: Any) -> bool:
    structure: Any = jax.tree.structure(a)
    same_structure: bool = structure == jax.tree.structure(b)
    return same_structure and all(
        (x.shape, x.dtype) == (y.shape, y.dtype) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _fields(state: Any, inner: list[Any]) -> dict[str, str]:
    """A state's own fields, each as dtype[shape]: not those holding a nested stage's state (the
    first field equal to each is its state; a copy of it, as rollback keeps, is the stage's own)."""
    if not hasattr(state, "_fields"):
        return {}
    out = {}
    unclaimed = list(inner)
    for f in state._fields:
        value = getattr(state, f)
        match = next((k for k, s in enumerate(unclaimed) if _same(value, s)), None)
        if match is not None:
            unclaimed.pop(match)
            continue
        leaves = jax.tree.leaves(value)
        if not leaves:
            continue
        if len(leaves) == 1 and not isinstance(value, dict | list | tuple):
            out[f] = f"{leaves[0].dtype}{list(leaves[0].shape)}"
        else:
            dtypes = sorted({str(x.dtype) for x in leaves})
            out[f] = f"{'/'.join(dtypes)} x {len(leaves)} leaves"
    return out


def _cost(tx: Any, params: Any, state: Any, extra_args: dict) -> tuple[float | None, float | None, str | None]:
    pair = getattr(importlib.import_module("gradtx"), "LookaheadParams", None)
    hp = hyperparams_of(tx)
    p = pair.init_synced(params) if hp is not None and hp.builder == "lookahead" and pair else params

    def update(g: Any, s: Any, p: Any) -> Any:
        return tx.update(g, s, p, **extra_args)

    try:
        compiled = jax.jit(update).lower(params, state, p).compile()
        cost = compiled.cost_analysis()
    except Exception as e:  # reported, not raised: describing must not fail on one stage
        return None, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    cost = cost or {}
    return float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)), None


def describe(tx: Any, params: Any, *, costs: bool = True, extra_args: dict | None = None) -> Description:
    """Each stage of `tx` on `params`: hyperparameters, update equation, state and its bytes, cost.

        stage k:  builder(arguments)
                  its equation (from the builder's docstring)
                  state: field dtype[shape] ... = bytes (multiple of the params' bytes)
                  XLA's flops and bytes accessed for its update alone, compiled on these params

    `params` may be arrays or `jax.ShapeDtypeStruct`s: nothing is allocated, and each stage's
    update is compiled (not run) on the params it sees (a masked stage on the leaves masked in).
    `costs=False` skips the compilations (one per stage). `extra_args` are passed to each
    update (e.g. `{"loss": jnp.float32(0)}` for `rollback`). The result prints as a report and
    holds the numbers (`Description.stages`); `lint`'s warnings are at its end.

    >>> import gradtx, jax.numpy as jnp
    >>> d = gradtx.describe(gradtx.adam(1e-3), {"w": jnp.zeros((100, 10), jnp.float32)}, costs=False)
    >>> [(s.name, s.state_bytes) for s in d.stages]
    [('chain', 0), ('scale_by_adam', 8004), ('scale_by_learning_rate', 0)]
    >>> print(d.stages[1].equation)
    m <- b1 m + (1 - b1) g
    v <- b2 v + (1 - b2) g^2
    m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
    u  = m^ / (sqrt(v^ + eps_root) + eps)
    """
    from gradtx.lint import lint  # lint walks the same stages

    extra_args = dict(extra_args or {})
    abstract = _abstract(params)
    walked = stages(tx, abstract)
    states = [jax.eval_shape(t.init, view) for _, _, t, view in walked]
    out = []
    for i, (path, depth, t, view) in enumerate(walked):
        nested = [states[j] for j in range(i + 1, len(walked)) if walked[j][1] == depth + 1 and _under(walked, i, j)]
        total = tree_nbytes(states[i])
        own = total - sum(tree_nbytes(s) for s in nested)
        hp = hyperparams_of(t)
        fn = builder_function(t)
        summary, eq = equation(fn) if fn is not None else (OPAQUE if hp is None else hp.builder, None)
        flops = accessed = error = None
        if costs:
            flops, accessed, error = _cost(t, view, states[i], extra_args)
        kwargs = {} if hp is None else {k: v for k, v in hp.kwargs.items() if not holds_transformation(v)}
        out.append(
            Stage(
                path=path, depth=depth, name=OPAQUE if hp is None else hp.builder, call=short_repr(t),
                hyperparams=kwargs, summary=summary, equation=eq,
                state=_fields(states[i], nested) if hp is not None else {"(opaque)": f"{tree_nbytes(states[i])} B"},
                state_bytes=own, total_state_bytes=total, flops=flops, bytes_accessed=accessed,
                cost_error=error, tx=t,
            )
        )  # fmt: skip
    n_leaves = sum(1 for x in jax.tree.leaves(abstract) if jnp.issubdtype(x.dtype, jnp.inexact))
    return Description(tx, tuple(out), params_nbytes(abstract), n_leaves, tuple(lint(tx)))


def _under(walked: list, i: int, j: int) -> bool:
    """Whether stage j is nested in stage i (it follows i before any stage at i's depth or above)."""
    depth = walked[i][1]
    return all(walked[k][1] > depth for k in range(i + 1, j + 1))
