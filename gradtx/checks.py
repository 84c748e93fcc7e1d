"""Checks: what every builder validates when it is built, and what every update checks when traced.

Build time (`check` and its ranges): a concrete hyperparameter outside its range, of the wrong type,
or a schedule where a number is required raises at once, naming the function, the argument, the
range and the value. A tracer is not checked (it cannot be).

Trace time (`check_matching_trees`): gradients that do not match the params or the state raise
before any arithmetic, naming the transformation, the key path and what differs. It runs while
tracing and costs nothing in the compiled step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree

PyTree = Any
Params = PyTree  # the names of gradtx.base, which imports this module
Updates = PyTree
OptState = PyTree

# ---------------------------------------------------------------------------------------------------
# Values


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def normalize(value: Any) -> Any:
    """Concrete scalars become Python numbers; dtypes become np.dtype; the rest is kept.

    Python numbers are weakly typed in JAX, so a hyperparameter never changes the dtype of the
    updates, and a float64 b2=0.999 is never rounded by being stored as float32 or bfloat16.
    """
    if isinstance(value, np.generic) or (
        isinstance(value, np.ndarray | jax.Array) and not is_tracer(value) and value.ndim == 0
    ):
        return value.item()
    if isinstance(value, bool | int | float | complex | str) or value is None:
        return value
    if (isinstance(value, type) and issubclass(value, np.generic)) or isinstance(value, np.dtype):
        return np.dtype(value)
    if isinstance(value, list):
        return tuple(normalize(v) for v in value)
    if isinstance(value, tuple):
        return type(value)(*map(normalize, value)) if hasattr(value, "_fields") else tuple(map(normalize, value))
    return value


# ---------------------------------------------------------------------------------------------------
# Errors that say which function and which argument


class ArgumentError(Exception):
    """What every build-time error of gradtx carries: the builder the user called, the argument
    and what is wrong with it. The message reads `"<builder>: <argument> <detail>"`."""

    def __init__(self, builder: str, argument: str | None, detail: str):
        self.builder, self.argument, self.detail = builder, argument, detail
        super().__init__(f"{builder}: {argument} {detail}" if argument else f"{builder}: {detail}")

    def renamed(self, builder: str, argument: str | None) -> ArgumentError:
        """The same error, reported as one of `builder`'s argument `argument`."""
        return type(self)(builder, argument, self.detail)


class ArgumentValueError(ArgumentError, ValueError):
    """A value outside its range (NaN included)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A value of the wrong kind: a string, an array, a schedule where a number is required, None."""


@contextlib.contextmanager
def arguments_of(builder: str, renames: Mapping[str, str] | None = None) -> Iterator[None]:
    """Reports the errors of the blocks built inside the `with` as errors of `builder`.

    An optimizer builds its members inside it, so that `sgd(0.1, momentum=1.5)` says
    `sgd: momentum must be in [0, 1], got 1.5`, not `trace: decay ...`. `renames` maps a
    member's argument to the optimizer's: `{"trace.decay": "momentum"}` for one member, or
    `{"epsilon": "eps"}` for every member; an argument not named keeps its name.
    """
    try:
        yield
    except ArgumentError as e:
        if e.builder == builder:
            raise
        renames = renames or {}
        argument = e.argument and renames.get(f"{e.builder}.{e.argument}", renames.get(e.argument, e.argument))
        raise e.renamed(builder, argument) from None


# ---------------------------------------------------------------------------------------------------
# Validation (build time; tracers pass unchecked because they cannot be checked)


def _interval(spec: str) -> tuple[float, float, bool, bool]:
    lo, hi = (part.strip() for part in spec[1:-1].split(","))
    return float(lo), float(hi), spec[0] == "[", spec[-1] == "]"


# A range is an interval, optionally with these words around it. Appended: " or schedule" (the
# argument may also be a schedule count -> value) and " or None" (None is allowed, and the
# builder's docstring says what it means). Prefixed: "integer " (a count: 2.5 is refused).
SCHEDULE = " or schedule"
OR_NONE = " or None"
INTEGER = "integer "

# The ranges every builder checks against, named once.
# Averages exclude 1: an EMA with decay 1 never moves and its debiasing divides by 0. Heavy-ball
# momentum mu = 1 is a plain running sum (gradient accumulation) and is allowed; mu > 1 makes the
# trace grow like mu^k, which is always a bug (e.g. momentum=9 for 0.9), and torch.optim rejects mu < 0.
UNIT = "[0, 1)"
MOMENTUM = "[0, 1]"
NONNEG = "[0, inf)"
POSITIVE = "(0, inf)"
REAL = "(-inf, inf)"  # any finite number: an infinite step size or scale is never meant
FRACTION = "[0, 1]"
COUNT = INTEGER + "[0, inf)"
POSITIVE_COUNT = INTEGER + "[1, inf)"
LEARNING_RATE = "[0, inf)" + SCHEDULE  # a negative rate would ascend the loss (scale_by_learning_rate can)


def check(builder: str, **ranges: tuple[Any, str]) -> None:
    """Validates concrete hyperparameters: `check("adam", b1=(b1, "[0, 1)"), eps=(eps, "[0, inf)"))`.

    Raises `ArgumentValueError("adam: b1 must be in [0, 1), got 1.5")` (a ValueError) for a number
    outside its range or NaN, and `ArgumentTypeError` (a TypeError) for a string, a list, an array,
    None (unless the range ends in " or None"), a fraction where an "integer " is required, or a
    callable where the range does not end in " or schedule" (a callable where it does is checked
    to map a step count to a scalar). A tracer is not checked: it cannot be.
    """
    for name, (value, spec) in ranges.items():
        value = normalize(value)
        if is_tracer(value):
            continue
        spec, takes_none = spec.removesuffix(OR_NONE), spec.endswith(OR_NONE)
        spec, takes_schedule = spec.removesuffix(SCHEDULE), spec.endswith(SCHEDULE)
        spec, integer = spec.removeprefix(INTEGER), spec.startswith(INTEGER)
        kind = "an integer" if integer else "a number"
        if value is None:
            if takes_none:
                continue
            raise ArgumentTypeError(
                builder, name, f"must be {kind} in {spec}{SCHEDULE if takes_schedule else ''}, got None"
            )
        if callable(value):
            if not takes_schedule:
                raise ArgumentTypeError(builder, name, f"must be {kind} in {spec}, not a schedule: got {value!r}")
            check_schedule(builder, name, value)
            continue
        if isinstance(value, jax.Array | np.ndarray):
            raise ArgumentTypeError(builder, name, f"must be a scalar, got an array of shape {value.shape}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgumentTypeError(builder, name, f"must be a real number, got {value!r}")
        if integer and not isinstance(value, int):
            raise ArgumentTypeError(builder, name, f"must be an integer in {spec}, got {value!r}")
        lo, hi, lo_closed, hi_closed = _interval(spec)
        inside = (lo <= value if lo_closed else lo < value) and (value <= hi if hi_closed else value < hi)
        if not inside or math.isnan(value):
            raise ArgumentValueError(builder, name, f"must be in {spec}, got {value!r}")


def check_schedule(builder: str, name: str, fn: Callable[..., Any]) -> None:
    """A schedule must map an int32 count to a scalar: checked by tracing it, shapes only."""
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:
        raise ArgumentTypeError(
            builder, name,
            "is callable, so it must be a schedule count -> scalar, but calling it on an int32 count"
            f" failed: {type(e).__name__}: {e}",
        ) from e  # fmt: skip
    if getattr(out, "shape", None) != ():
        raise ArgumentTypeError(
            builder, name, f"must be a schedule returning a scalar, got {getattr(out, 'shape', out)}"
        )
    if not jnp.issubdtype(out.dtype, jnp.number):
        raise ArgumentTypeError(builder, name, f"must be a schedule returning a number, got a {out.dtype} scalar")


def is_zero(value: Any) -> bool:
    """True for a concrete number equal to 0 (not for a schedule or a tracer): an option that is off."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def check_dtype(builder: str, name: str, dtype: Any) -> np.dtype | None:
    """Normalizes a dtype argument (None, a string, a NumPy or JAX dtype) or names what is wrong."""
    if dtype is None:
        return None
    try:
        out = np.dtype(jnp.dtype(dtype))
    except TypeError as e:
        raise ArgumentTypeError(builder, name, f"must be a dtype or None, got {dtype!r}") from e
    if not jnp.issubdtype(out, jnp.inexact):
        raise ArgumentTypeError(builder, name, f"must be a floating or complex dtype, got {out}")
    return out


def check_flag(builder: str, name: str, value: Any) -> bool:
    """A switch (`nesterov`, `staircase`, ...) must be True or False, not a number or a string."""
    if not isinstance(value, bool | np.bool_):
        raise ArgumentTypeError(builder, name, f"must be True or False, got {value!r}")
    return bool(value)


def first_moment_dtype(builder: str, mu_dtype: Any, accumulator_dtype: Any) -> Any:
    """Resolves optax's `mu_dtype` and gradtx's `accumulator_dtype`, which mean the same."""
    if mu_dtype is not None and accumulator_dtype is not None:
        raise ArgumentTypeError(builder, None, "pass accumulator_dtype or its alias mu_dtype, not both")
    return check_dtype(builder, "accumulator_dtype", accumulator_dtype if mu_dtype is None else mu_dtype)


def require_params(builder: str, params: Params | None) -> Params:
    """Transformations that read params (weight decay, ...) call this first."""
    if params is None:
        raise ValueError(f"{builder}: update needs params, got None. Call tx.update(grads, state, params).")
    return params


# ---------------------------------------------------------------------------------------------------
# Trace time: the gradients against the params and the state


def _is_none(x: Any) -> bool:
    return x is None


def _mismatch(g: Any, other: Any, name: str, is_params: bool) -> str | None:
    """Where the gradients `g` and the tree `other` differ (a key path, a None, a shape, a dtype), or None.

    Against params, shapes must match, a None gradient may stand for a leaf (a frozen param), and a
    float param needs a float gradient.
    """
    paths_g = dict(jax.tree_util.tree_flatten_with_path(g, is_leaf=_is_none)[0])
    paths_o = dict(jax.tree_util.tree_flatten_with_path(other, is_leaf=_is_none)[0])
    if not is_params:  # a state may hold a subtree per param (SM3's list of per-axis statistics)
        paths_o = _up_to(paths_o, paths_g.keys())
    for path in paths_g.keys() - paths_o.keys():
        return f"{jax.tree_util.keystr(path)} is in the gradients, not in {name}"
    for path in paths_o.keys() - paths_g.keys():
        return f"{jax.tree_util.keystr(path)} is in {name}, not in the gradients"
    for path, x in paths_g.items():
        y, at = paths_o[path], jax.tree_util.keystr(path)
        if (x is None and y is None) or (x is None and is_params):
            continue
        if x is None or y is None:
            kinds = ["None" if v is None else "an array" for v in (x, y)]
            return f"{at} is {kinds[0]} in the gradients, {kinds[1]} in {name}"
        if is_params and jnp.shape(x) != jnp.shape(y):
            return f"{at} has shape {jnp.shape(x)} in the gradients, {jnp.shape(y)} in {name}"
        if is_params and tree.is_inexact(y) and not tree.is_inexact(x):
            dtypes = f"{jnp.result_type(x)} in the gradients, {jnp.result_type(y)} in {name}"
            return f"{at} is {dtypes}: gradients must be floating"
    return None


def _up_to(paths: dict, prefixes: Any) -> dict:
    """`paths` with each path below one of `prefixes` (a gradient's leaf) cut back to that prefix."""
    out: dict = {}
    for path, leaf in paths.items():
        cut = next((q for q in prefixes if len(q) < len(path) and path[: len(q)] == q), path)
        out.setdefault(cut, leaf)
    return out


class PerLeaf:
    """The annotation of a state field that has the params' structure but leaves of other shapes.

    `v_row: PerLeaf` in Adafactor's state (a factored moment is smaller than its param), `nu:
    PerLeaf` in NovoGrad's (one number a leaf). Every other tree field of a state is checked, when
    an update is traced, to have the params' shapes leaf by leaf.
    """


def _is_per_leaf(annotation: Any) -> bool:
    # NamedTuple keeps a postponed annotation (`from __future__ import annotations`) as a ForwardRef.
    name = getattr(annotation, "__forward_arg__", annotation)
    return annotation is PerLeaf or (isinstance(name, str) and name.split(".")[-1] == "PerLeaf")


def _fields_to_check(state: OptState) -> list[tuple[str, Any, bool]]:
    """(field, tree, whether its leaves have the params' shapes) for a state NamedTuple's trees.

    init built every tree field of a state from the params, so each has their structure (or holds a
    subtree per param, as a preconditioner's matrices). Its leaves have the params' shapes unless
    the field is annotated `PerLeaf`. Array fields (counts, keys) are not trees of the params.
    """
    if not (isinstance(state, tuple) and hasattr(state, "_fields")):
        return []
    annotations = getattr(type(state), "__annotations__", {})
    fields = zip(state._fields, state, strict=True)
    return [(f, v, not _is_per_leaf(annotations.get(f))) for f, v in fields if not hasattr(v, "shape")]


def _state_mismatch(g: Updates, field: Any, name: str, same_shapes: bool) -> str | None:
    """Where the state's tree `field` does not fit the gradients: a key path and what differs, or None."""
    structure: Any = jax.tree.structure(g)
    try:
        parts = structure.flatten_up_to(field)
    except (ValueError, TypeError):
        return _mismatch(g, field, name, is_params=False) or "the tree structures differ"
    if not same_shapes:
        return None
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(g)[0], parts, strict=True):
        if hasattr(y, "shape") and jnp.shape(x) != jnp.shape(y):
            at = jax.tree_util.keystr(path)
            return f"{at} has shape {jnp.shape(x)} in the gradients, {jnp.shape(y)} in {name}"
    return None


def check_matching_trees(builder: str, updates: Updates, g: Updates, state: OptState, params: Params | None) -> None:
    """Trace-time check that the gradients match the params (structure, shapes, dtypes) and the state.

    `g` is `updates` less its non-float leaves. The state is checked field by field: each tree field
    of a state NamedTuple must have the gradients' structure and, unless its class says otherwise,
    their shapes (a state built from other params would otherwise fail inside the arithmetic, with
    an error that names no leaf, or worse, broadcast). Costs nothing when compiled.
    """
    if params is not None:
        structure: Any = jax.tree.structure(updates)
        leaves = zip(*map(jax.tree.leaves, (updates, params)), strict=False)
        if structure != jax.tree.structure(params) or not all(_same_leaf(x, y) for x, y in leaves):
            where = _mismatch(updates, params, "params", is_params=True)
            if where is not None:
                _raise_mismatch(builder, "params", where, "Pass gradients with the params' structure.", updates, params)
    for field, value, same_shapes in _fields_to_check(state):
        where = _state_mismatch(g, value, f"state.{field}", same_shapes)
        if where is not None:
            hint = "Was the state built by this transformation's init, from params of this structure and these shapes?"
            _raise_mismatch(builder, f"state.{field}", where, hint, g, value)


def _raise_mismatch(builder: str, what: str, where: str, hint: str, grads: Any, other: Any) -> None:
    raise ValueError(
        f"{builder}: the gradients do not match {what}: {where}. {hint}\n"
        f"  gradients: {jax.tree.structure(grads)}\n  {what}: {jax.tree.structure(other)}"
    )


def _same_leaf(x: Any, y: Any) -> bool:
    return jnp.shape(x) == jnp.shape(y) and (tree.is_inexact(x) or not tree.is_inexact(y))
