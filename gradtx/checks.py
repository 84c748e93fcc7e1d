"""Checks: what every builder validates when it is built, and what every update checks when traced.

Build time (`check` and its ranges): a concrete hyperparameter outside its range, of the wrong type,
or a schedule where a number is required raises at once, naming the function, the argument, the
range and the value. A tracer is not checked (it cannot be).

Trace time (`check_matching_trees`): gradients that do not match the params or the state raise
before any arithmetic, naming the transformation, the key path and what differs. It runs while
tracing and costs nothing in the compiled step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
# Validation (build time; tracers pass unchecked because they cannot be checked)


def _interval(spec: str) -> tuple[float, float, bool, bool]:
    lo, hi = (part.strip() for part in spec[1:-1].split(","))
    return float(lo), float(hi), spec[0] == "[", spec[-1] == "]"


SCHEDULE = " or schedule"  # appended to a range: the argument may also be a schedule

# The ranges every builder checks against, named once.
# Averages exclude 1: an EMA with decay 1 never moves and its debiasing divides by 0. Heavy-ball
# momentum mu = 1 is a plain running sum (gradient accumulation) and is allowed; mu > 1 makes the
# trace grow like mu^k, which is always a bug (e.g. momentum=9 for 0.9), and torch.optim rejects mu < 0.
UNIT = "[0, 1)"
MOMENTUM = "[0, 1]"
NONNEG = "[0, inf)"
POSITIVE = "(0, inf)"
LEARNING_RATE = "[0, inf)" + SCHEDULE  # a negative rate would ascend the loss (scale_by_learning_rate can)


def check(builder: str, **ranges: tuple[Any, str]) -> None:
    """Validates concrete hyperparameters: `check("adam", b1=(b1, "[0, 1)"), eps=(eps, "[0, inf)"))`.

    Raises `ValueError("adam: b1 must be in [0, 1), got 1.5")`. An argument whose range ends in
    " or schedule" (`"[0, 1]" + SCHEDULE`) may be a schedule, checked to map a step count to a
    scalar; any other is rejected when callable. A tracer is not checked (it cannot be).
    """
    for name, (value, spec) in ranges.items():
        value = normalize(value)
        if is_tracer(value) or value is None:
            continue
        spec, takes_schedule = spec.removesuffix(SCHEDULE), spec.endswith(SCHEDULE)
        if callable(value):
            if not takes_schedule:
                raise TypeError(f"{builder}: {name} must be a number in {spec}, not a schedule: got {value!r}")
            check_schedule(builder, name, value)
            continue
        if isinstance(value, jax.Array | np.ndarray):
            raise TypeError(f"{builder}: {name} must be a scalar, got an array of shape {value.shape}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{builder}: {name} must be a real number, got {value!r}")
        lo, hi, lo_closed, hi_closed = _interval(spec)
        inside = (lo <= value if lo_closed else lo < value) and (value <= hi if hi_closed else value < hi)
        if not inside or math.isnan(value):
            raise ValueError(f"{builder}: {name} must be in {spec}, got {value!r}")


def check_schedule(builder: str, name: str, fn: Callable[..., Any]) -> None:
    """A schedule must map an int32 count to a scalar: checked by tracing it, shapes only."""
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:
        raise TypeError(
            f"{builder}: {name} is callable, so it must be a schedule count -> scalar, but calling it"
            f" on an int32 count failed: {type(e).__name__}: {e}"
        ) from e
    if getattr(out, "shape", None) != ():
        raise TypeError(f"{builder}: {name} must be a schedule returning a scalar, got {getattr(out, 'shape', out)}")


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
        raise TypeError(f"{builder}: {name} must be a dtype or None, got {dtype!r}") from e
    if not jnp.issubdtype(out, jnp.inexact):
        raise TypeError(f"{builder}: {name} must be a floating or complex dtype, got {out}")
    return out


def first_moment_dtype(builder: str, mu_dtype: Any, accumulator_dtype: Any) -> Any:
    """Resolves optax's `mu_dtype` and gradtx's `accumulator_dtype`, which mean the same."""
    if mu_dtype is not None and accumulator_dtype is not None:
        raise TypeError(f"{builder}: pass accumulator_dtype or its alias mu_dtype, not both")
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


def check_matching_trees(builder: str, updates: Updates, g: Updates, state: OptState, params: Params | None) -> None:
    """Trace-time check that the gradients match the params (structure, shapes, dtypes) and the state.

    `g` is `updates` less its non-float leaves. The state fields checked are the trees of a state
    NamedTuple (moments, traces): init built them from the params, so they have the params'
    structure (not always their shapes: factored moments are smaller). Costs nothing when compiled.
    """
    checks = [] if params is None else [("params", updates, params, "Pass gradients with the params' structure.")]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        hint = "Was the state built by this transformation's init, from params of this structure?"
        checks += [
            (f"state.{f}", g, v, hint) for f, v in zip(state._fields, state, strict=True) if not hasattr(v, "shape")
        ]
    for what, grads, other, hint in checks:
        is_params = what == "params"
        structure: Any = jax.tree.structure(grads)
        if structure == jax.tree.structure(other) and (
            not is_params or all(_same_leaf(x, y) for x, y in zip(*map(jax.tree.leaves, (grads, other)), strict=True))
        ):
            continue
        where = _mismatch(grads, other, what, is_params)
        if where is not None:
            raise ValueError(
                f"{builder}: the gradients do not match {what}: {where}. {hint}\n"
                f"  gradients: {jax.tree.structure(grads)}\n  {what}: {jax.tree.structure(other)}"
            )


def _same_leaf(x: Any, y: Any) -> bool:
    return jnp.shape(x) == jnp.shape(y) and (tree.is_inexact(x) or not tree.is_inexact(y))
