"""Walking a transformation through its hyperparameters: the stages nested in it, the params each
stage sees, the builder that made it and the update equation its docstring gives.

    children(tx)            the transformations nested in tx (chain's members, masked's inner, ...)
    child_params(tx, p)     the params each of them sees (a masked one: the leaves masked in)
    stages(tx, p)           tx and every stage nested in it, depth-first, with the params it sees
    equation(builder)       the builder docstring's first indented block after its first paragraph

`tx.hyperparams` (the builder's name and arguments) is read, never the repr: every argument that is
itself a transformation is a nested stage. A transformation without gradtx hyperparameters (an optax
one) has none: it is opaque. Shared by `gradtx.describe` and `gradtx.lint`.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gradtx.base import Bound, Hyperparams
from gradtx.combine import MaskedNode, is_function

__all__ = [
    "OPAQUE", "builder_function", "child_params", "children", "equation", "hyperparams_of",
    "holds_transformation", "is_transformation", "short_repr", "stages",
]  # fmt: skip

OPAQUE = "opaque optax transformation"
INJECTORS = ("inject_hyperparams", "inject_stateful_hyperparams")  # hold a builder, not a transformation


# ---------------------------------------------------------------------------------------------------
# Walking a transformation through its hyperparameters


def is_transformation(x: Any) -> bool:
    return callable(getattr(x, "init", None)) and callable(getattr(x, "update", None)) and not isinstance(x, type)


def hyperparams_of(tx: Any) -> Hyperparams | None:
    hp = getattr(tx, "hyperparams", None)
    return hp if isinstance(hp, Hyperparams) else None


def children(tx: Any) -> list[tuple[str, Any]]:
    """The transformations nested in `tx`, each with its label (a chain's index, a partition's label).

    Every argument that is a transformation is a child, as is every transformation in a tuple or a
    dict argument (named_chain's pairs, partition's transforms). `inject_hyperparams(builder)(...)`
    holds a builder, not a transformation: its child is the builder called with the arguments.
    """
    hp = hyperparams_of(tx)
    if hp is None:
        return []
    if hp.builder in INJECTORS and hp.args and isinstance(hp.args[0], Bound):
        factory = hp.args[0].hp.args[0]
        return [("inner", factory(**hp.arguments))]
    out: list[tuple[str, Any]] = []

    def visit(label: str, value: Any) -> None:
        if is_transformation(value):
            out.append((label, value))
        elif isinstance(value, tuple) and not hasattr(value, "_fields"):
            if len(value) == 2 and isinstance(value[0], str) and is_transformation(value[1]):
                out.append((value[0], value[1]))  # named_chain's (name, transformation)
            else:
                for i, v in enumerate(value):
                    visit(f"{label}[{i}]" if label else str(i), v)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                visit(str(k), v)

    for i, a in enumerate(hp.args):
        visit(str(i) if len(hp.args) > 1 or hp.builder in ("chain", "named_chain") else "inner", a)
    for k, v in hp.kwargs.items():
        visit("" if isinstance(v, Mapping) else k, v)  # a dict's own keys label its members
    return out


def _hide(spec: Any, params: Any) -> Any:
    """`params` with each subtree whose mask leaf is False replaced by `MaskedNode()`."""
    return jax.tree.map(lambda on, sub: sub if on else MaskedNode(), spec, params)


def child_params(tx: Any, params: Any) -> list[Any]:
    """The params each child of `tx` sees: a masked child sees the leaves masked in, a partition's
    transformation those with its label (the others are `MaskedNode()`), any other child all of them."""
    hp = hyperparams_of(tx)
    kids = children(tx)
    if hp is None or params is None:
        return [params] * len(kids)
    if hp.builder == "masked":
        mask = hp.mask(params) if is_function(hp.mask) else hp.mask
        return [_hide(mask, params)]
    if hp.builder in ("partition", "multi_transform"):
        labels = hp.param_labels(params) if is_function(hp.param_labels) else hp.param_labels
        # hp.transforms's keys, as they are (its members' labels in `children` are their str)
        return [_hide(jax.tree.map(lambda x, lab=label: x == lab, labels), params) for label in hp.transforms]
    return [params] * len(kids)


def short_repr(tx: Any) -> str:
    """The builder and its own arguments (nested transformations shown as `...`)."""
    hp = hyperparams_of(tx)
    if hp is None:
        return OPAQUE
    shown = [_show(a) for a in hp.args if not holds_transformation(a)]
    shown += [f"{k}={_show(v)}" for k, v in hp.kwargs.items() if v is not None and not holds_transformation(v)]
    if hp.builder in INJECTORS:
        shown = [f"{k}={_show(v)}" for k, v in hp.arguments.items() if v is not None]
        return f"{hp.builder}(...)({', '.join(shown)})"
    if any(holds_transformation(v) for v in (*hp.args, *hp.kwargs.values())):
        shown.insert(0, "...")
    return f"{hp.builder}({', '.join(shown)})"


def holds_transformation(v: Any) -> bool:
    if is_transformation(v):
        return True
    if isinstance(v, Mapping):
        return any(map(holds_transformation, v.values()))
    if isinstance(v, tuple) and not hasattr(v, "_fields"):
        return any(map(holds_transformation, v))
    return isinstance(v, Bound) and v.hp.builder in INJECTORS


def _show(v: Any) -> str:
    if isinstance(v, np.dtype):
        return f"jnp.{v.name}"
    if isinstance(v, jax.Array | np.ndarray):
        return f"<array {v.dtype}{list(v.shape)}>"
    if callable(v) and not isinstance(v, Bound):
        return getattr(v, "__qualname__", repr(v))
    return repr(v)


# ---------------------------------------------------------------------------------------------------
# Equations from docstrings


def builder_function(tx: Any) -> Any:
    """The public function (or class) that built `tx`, found by name in the module of its init."""
    hp = hyperparams_of(tx)
    if hp is None:
        return None
    modules = [getattr(getattr(tx.init, "fn", None), "__module__", None), "gradtx"]
    for name in modules:
        if name is None:
            continue
        fn = getattr(importlib.import_module(name), hp.builder, None)
        if fn is not None:
            return fn
    return None


def equation(fn: Any) -> tuple[str, str | None]:
    """(the docstring's summary line, its first indented block after the first paragraph, or None).

    Where the builder's docstring has no such block, its module's docstring may list the builder
    with its equation on one line (`scale(s):   u <- s g`): that line is taken; failing that, a
    summary that is itself an equation (`u <- sign(g) (signSGD; ...)`) is.
    """
    summary, block = _equation_block(fn)
    if block is None:
        name = getattr(fn, "__name__", "")
        module = inspect.getmodule(fn)
        for line in inspect.cleandoc(getattr(module, "__doc__", None) or "").splitlines():
            text = line.strip()
            if name and text.startswith(f"{name}(") and "  " in text:
                return summary, text.split("  ", 1)[1].strip()
        if re.match(r"^\w[\w^]*\s*(<-|=)\s", summary):
            return summary, summary
    return summary, block


def _equation_block(fn: Any) -> tuple[str, str | None]:
    doc = inspect.cleandoc(getattr(fn, "__doc__", None) or "")
    lines = doc.splitlines()
    summary_end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    summary = " ".join(line.strip() for line in lines[:summary_end])
    block: list[str] = []
    for line in lines[summary_end:]:
        if line.startswith((" ", "\t")) and line.strip() and not line.lstrip().startswith(">>>"):
            block.append(line)
        elif block:
            break
    if not block:
        return summary, None
    indent = min(len(line) - len(line.lstrip()) for line in block)
    return summary, "\n".join(line[indent:].rstrip() for line in block)


def stages(tx: Any, params: Any = None, path: str = "", depth: int = 0) -> list[tuple[str, int, Any, Any]]:
    """(path, depth, transformation, the params it sees) for `tx` and every stage nested in it, depth-first."""
    out = [(path, depth, tx, params)]  # the root's path is ""
    for (label, child), view in zip(children(tx), child_params(tx, params), strict=True):
        out += stages(child, view, f"{path}/{label}" if path else label, depth + 1)
    return out
