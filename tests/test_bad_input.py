"""Bad input, for every public builder: a clear error, or a value that works. Never silence.

Two fuzzers, both driven by the registry (so an entry added to gradtx is held to them by being
added to tests/registry.py, which tests/test_registry.py requires):

1. Hyperparameters. Every builder is called as its registry case calls it, with one numeric
   argument (found from the signature: a number now, or annotated as one) replaced by each of NaN,
   inf, -inf, -1, a string, a list, an array of shape (3,), None (unless None is the argument's
   documented default) and the values just outside the range its error states. Each attempt must be
   either a ValueError/TypeError whose message starts with the name of the builder the user called
   and names the argument, or an accepted value with which the built object works: two updates (a
   schedule: four counts) with finite values of the right shapes and dtypes, and the state's
   structure kept.
2. Update trees. Every transformation of the registry gets gradients with a missing key, an extra
   key, a wrong shape, integer leaves for float params, and a state built from params of other
   shapes or another tree: each must fail when traced, with the key path in the message. Updates
   without params either work or say which transformation needs them. NaN gradients give NaN
   updates, and a state they poisoned keeps later updates NaN (only the documented skips differ).

Accepted values run op by op (`jax.disable_jit`), so no attempt compiles; the tree fuzzer traces
each transformation a few times and compiles it once.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.registry import EXTRA_ARGS, OWN_PARAMS, PER_EXAMPLE, SCHEDULES, TRANSFORMATION_CASES, Case, resolve

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32).reshape(2, 3), "b": jnp.full((3,), 0.5, jnp.float32)}
OTHER_SHAPES = {"w": jnp.ones((4, 5), jnp.float32), "b": jnp.ones((5,), jnp.float32)}
GRADS = [
    {
        "w": jnp.asarray([[0.3, -0.2, 0.1], [0.5, 0.4, -0.6]], jnp.float32),
        "b": jnp.asarray([0.2, -0.1, 0.3], jnp.float32),
    },
    {
        "w": jnp.asarray([[-0.1, 0.4, 0.2], [0.1, -0.3, 0.5]], jnp.float32),
        "b": jnp.asarray([0.1, 0.2, -0.4], jnp.float32),
    },
]
BAD: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "-1": -1,
    "string": "0.1",
    "list": [0.1],
    "array(3)": np.ones(3),
    "None": None,
}
RANGE = re.compile(r"must be (?:an integer |a number )?in ([\[(])(-?[\d.e+-]+|-inf), (-?[\d.e+-]+|inf)([\])])")
# Entries whose update is built to ignore gradients, or to skip non-finite ones: why NaN is not seen.
NAN_EXEMPT = {
    "set_to_zero": "its updates are zero by design: the leaves it is given do not move",
    "multi_transform": "the registry's case freezes the biases with set_to_zero",
    "apply_if_finite": "it skips non-finite steps (zero updates, the state kept): its purpose, counted in its state",
    "MultiSteps": "it emits every k = 3 gradients; tests/test_wrappers.py checks the NaN comes out at the k-th",
    "zero_nans": "it turns NaN into 0: its documented purpose, recorded in state.found_nan",
    "freeze": "the frozen leaves' updates are zero by design (the registry's case freezes the biases)",
    "selective_transform": "the frozen leaves' updates are zero by design (the registry's case freezes the biases)",
    # Their state is a record of the updates, never read back: a NaN shows there, later updates are later gradients.
    "snapshot": "its state records a measurement and is never read back (tests/test_monitor.py)",
    "monitor": "its state records measurements and is never read back (tests/test_monitor.py)",
    "measure_with_ema": "its case is a monitor: the state records an EMA and is never read back",
    "hutchinson_estimator_diag_hessian": "its estimate z * (H z) reads obj_fn and the params, not the gradients"
    " (Sophia's momentum carries their NaN: the sophia cases are not exempt)",
    # issue 10 (optim)
    "asgd": "its state is the average of the iterates, which its updates do not read: a NaN stays in the"
    " average (asgd_averaged_params) once averaging has begun, and in the params it was applied to",
    "presets.torch.ASGD": "a chain of asgd: its state is the average of the iterates, which its updates do not read",
    # The NaN step is NaN (and so are the params it is applied to); the next pair, made of it, fails
    # the curvature test <y, s> > min_curvature and is skipped, as torch.optim.LBFGS skips it.
    "safeguarded_lbfgs": "a pair of NaN curvature is skipped (torch's test <y, s> > 1e-10), after a NaN step",
    "presets.torch.LBFGS": "a chain of safeguarded_lbfgs: a pair of NaN curvature is skipped, after a NaN step",
    # Polyak averaging passes the updates through (NaN gradients, NaN updates) and keeps the NaN in
    # the average, which averaged_params returns; in a run the params themselves are NaN from then on.
    # The average never enters a later update. tests/transforms/test_averaging.py checks both.
    "ema_params": "it passes the updates through; the NaN stays in the average (averaged_params shows it)",
    "swa_params": "it passes the updates through; the NaN stays in the average (averaged_params shows it)",
}


# ---------------------------------------------------------------------------------------------------
# How each registry case calls its builder


class _Recorder:
    """Stands for the gradtx module in a registry case: records every call of a public builder (a
    preset's as "presets.torch.Adam": the presets' modules are recorded through too)."""

    def __init__(self, module: Any = gradtx, prefix: str = "", calls: list | None = None) -> None:
        self.module, self.prefix = module, prefix
        self.calls: list[tuple[str, tuple, dict]] = [] if calls is None else calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.module, name)
        if isinstance(target, type(gradtx)) and target.__name__.startswith("gradtx.presets"):
            return _Recorder(target, f"{self.prefix}{name}.", self.calls)
        name = f"{self.prefix}{name}"
        if not callable(target) or (isinstance(target, type) and name != "MultiSteps"):
            return target

        @functools.wraps(target)
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return target(*args, **kwargs)

        return call


def _base_call(case: Case) -> tuple[tuple, dict]:
    recorder = _Recorder()
    case.make(recorder)
    calls = [(args, kwargs) for name, args, kwargs in recorder.calls if name == case.name]
    assert calls, f"{case.id}: the registry case never calls gradtx.{case.name}"
    return calls[-1]  # the outermost call is made last


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_arguments(fn: Any, bound: inspect.BoundArguments) -> list[str]:
    """Arguments whose value is a number, or that are annotated as a number (found from the signature)."""
    names = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        annotation = str(param.annotation)
        value = bound.arguments.get(name, param.default)
        annotated = re.search(r"\b(float|int|Scalar|ScalarOrSchedule)\b", annotation) and "bool" not in annotation
        if _is_number(value) or (annotated and not callable(value)):
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------------
# 1. Hyperparameters


def _runs(built: Any, case: Case) -> str | None:
    """Why an accepted object does not work (None if it does): non-finite or misshapen output."""
    if case in SCHEDULES:
        for k in (0, 1, 10, 1000):
            value = jnp.asarray(built(k))
            if value.shape != () or not bool(jnp.isfinite(value)):
                return f"schedule value {value} at count {k}"
        return None
    tx = built.gradient_transformation() if isinstance(built, gradtx.MultiSteps) else built
    params = gradtx.LookaheadParams.init_synced(PARAMS) if case in OWN_PARAMS else PARAMS
    with jax.disable_jit():
        state = tx.init(params)
        structure = jax.tree.structure(state)
        for g in GRADS:
            # A per-example entry (DP-SGD) reads a batch of 4 per-example gradients, and returns one update.
            given = jax.tree.map(lambda x: jnp.stack([x, -x, 2 * x, x / 2]), g) if case in PER_EXAMPLE else g
            updates, state = tx.update(given, state, params, **case.extra_args_for(params, g))
            for leaf in jax.tree.leaves((updates, state)):
                if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(leaf))):
                    return "non-finite updates or state"
            shapes = jax.tree.map(lambda u: (u.shape, u.dtype), updates)
            if case not in OWN_PARAMS and shapes != jax.tree.map(lambda x: (x.shape, x.dtype), g):
                return f"updates of other shapes or dtypes: {shapes}"
            if jax.tree.structure(state) != structure:
                return "the state changed structure"
    return None


def _just_outside(message: str) -> list[Any]:
    """The values just outside the range an error message states (`must be in [0, 1)` -> -tiny, 1.0)."""
    match = RANGE.search(message)
    if not match:
        return []
    lo_closed, lo, hi, hi_closed = (
        match.group(1) == "[",
        float(match.group(2)),
        float(match.group(3)),
        match.group(4) == "]",
    )
    integer = "integer" in message[: match.end()]
    out: list[Any] = []
    if math.isfinite(lo):
        below = int(lo) - 1 if integer else lo - max(1e-9, 1e-9 * abs(lo))
        out.append(below if lo_closed else (int(lo) if integer else lo))
    if math.isfinite(hi):
        above = int(hi) + 1 if integer else hi + max(1e-9, 1e-9 * abs(hi))
        out.append(above if hi_closed else (int(hi) if integer else hi))
    return out


def _attempt(
    called: str, case: Case, fn: Any, args: tuple, kwargs: dict, name: str, value: Any
) -> tuple[str, str | None, str]:
    """('error' | 'accepted', a failure or None, the error's message) for `fn` called with `name=value`.

    `called` is what the user called (its name must open the error), `case` says how to run it.
    """
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.arguments[name] = value
    try:
        built = fn(*bound.args, **bound.kwargs)
    except (ValueError, TypeError) as e:
        message = str(e)
        if not message.startswith(f"{called}: ") and not message.startswith(f"{called}("):
            return "error", f"{called}({name}={value!r}): the error does not start with {called!r}: {message}", message
        if not re.search(rf"\b{re.escape(name)}\b", message):
            return "error", f"{called}({name}={value!r}): the error does not name {name!r}: {message}", message
        return "error", None, message
    except Exception as e:
        return "error", f"{called}({name}={value!r}) raised {type(e).__name__}: {e}", str(e)
    problem = _runs(built, case)
    return "accepted", None if problem is None else f"{called}({name}={value!r}) was accepted but: {problem}", ""


BUILDER_CASES = {}
for _case in TRANSFORMATION_CASES + SCHEDULES + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE:
    BUILDER_CASES.setdefault(_case.name, _case)  # one case a builder: its first, the plain one
# A builder wrapped by inject_hyperparams is called with the builder's own arguments: its errors
# must name what the user called, `inject_hyperparams(sgd)`, and the argument.
INJECTED = {f"inject_hyperparams({n})": n for n in ("sgd", "adam", "rmsprop", "adafactor")}
COUNTS = {"builders": 0, "arguments": 0, "attempts": 0, "errors": 0, "accepted": 0}


def _builder(name: str) -> tuple[Any, Case, tuple, dict]:
    """(the callable, the case that runs what it builds, the registry's arguments) for a fuzzed name."""
    if name in INJECTED:
        inner = BUILDER_CASES[INJECTED[name]]
        args, kwargs = _base_call(inner)
        injected = gradtx.inject_hyperparams(getattr(gradtx, INJECTED[name]))
        return injected, Case(name, lambda m: None), args, kwargs
    case = BUILDER_CASES[name]
    return resolve(name), case, *_base_call(case)


@pytest.mark.parametrize("name", sorted(BUILDER_CASES) + sorted(INJECTED))
def test_every_bad_hyperparameter_gets_a_clear_error_or_works(name):
    fn, case, args, kwargs = _builder(name)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    signature = inspect.signature(fn)
    defaults = {k: p.default for k, p in signature.parameters.items()}
    failures = []
    arguments = _numeric_arguments(fn, bound)
    for argument in arguments:
        values = dict(BAD)
        if defaults.get(argument, inspect.Parameter.empty) is None:
            values.pop("None")  # None is this argument's documented default
        messages = []
        for label, value in values.items():
            outcome, failure, message = _attempt(name, case, fn, args, kwargs, argument, value)
            messages.append(message)
            COUNTS["attempts"] += 1
            COUNTS["errors" if outcome == "error" else "accepted"] += 1
            if failure:
                failures.append(f"[{label}] {failure}")
        ranges = [edges for edges in map(_just_outside, messages) if edges]
        for value in ranges[0] if ranges else []:
            outcome, failure, _ = _attempt(name, case, fn, args, kwargs, argument, value)
            COUNTS["attempts"] += 1
            COUNTS["errors" if outcome == "error" else "accepted"] += 1
            if failure:
                failures.append(f"[just outside: {value!r}] {failure}")
    COUNTS["builders"] += 1
    COUNTS["arguments"] += len(arguments)
    assert not failures, "\n".join(failures)


def test_the_fuzzer_sees_every_public_builder():
    public = {n for n in gradtx.__all__ if callable(getattr(gradtx, n))}
    from tests.registry import NOT_BUILDERS

    assert public - NOT_BUILDERS - set(BUILDER_CASES) == set()


def test_the_range_parser_finds_the_edges():
    assert _just_outside("adam: b1 must be in [0, 1), got -1") == [-1e-9, 1.0]
    assert _just_outside("x: n must be an integer in [1, inf), got -1") == [0]
    assert _just_outside("x: eps must be in (0, inf), got -1") == [0.0]


# ---------------------------------------------------------------------------------------------------
# 2. Update trees


TREE_CASES = list(TRANSFORMATION_CASES + EXTRA_ARGS)


def _update(tx: Any, case: Case, grads: Any, state: Any, params: Any) -> Any:
    return jax.jit(lambda g, s, p: tx.update(g, s, p, **case.extra_args_for(p, g)))(grads, state, params)


BAD_TREES = {
    "missing key": ({"w": GRADS[0]["w"]}, "['b']"),
    "extra key": ({**GRADS[0], "c": jnp.ones(2, jnp.float32)}, "['c']"),
    "wrong shape": ({**GRADS[0], "w": jnp.ones((3, 2), jnp.float32)}, "['w']"),
    "integer gradients": ({**GRADS[0], "w": jnp.ones((2, 3), jnp.int32)}, "['w']"),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TREE_CASES])
def test_bad_update_trees_fail_at_trace_time_with_the_key_path(case):
    tx = case.build()
    state = tx.init(PARAMS)
    for label, (grads, path) in BAD_TREES.items():
        with pytest.raises((ValueError, TypeError)) as info:
            _update(tx, case, grads, state, PARAMS)
        assert path in str(info.value), f"{label}: {info.value}"
    # A state built from other params: of other shapes, or of another tree.
    for other, path in ((OTHER_SHAPES, "['"), ({"w": PARAMS["w"]}, "['b']")):
        foreign = tx.init(other)
        if jax.tree.map(jnp.shape, foreign) == jax.tree.map(jnp.shape, state):
            continue  # nothing in its state depends on the params (counts, keys): nothing to mismatch
        with pytest.raises((ValueError, TypeError)) as info:
            _update(tx, case, GRADS[0], foreign, PARAMS)
        assert path in str(info.value), f"state from {jax.tree.map(jnp.shape, other)}: {info.value}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TREE_CASES])
def test_updates_without_params_work_or_name_who_needs_them(case):
    tx = case.build()
    try:
        updates, _ = tx.update(GRADS[0], tx.init(PARAMS), None, **case.extra_args_for(None, GRADS[0]))
    except ValueError as e:
        assert "update needs params, got None" in str(e) and str(e).split(":")[0] in str(e)
        return
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TREE_CASES])
def test_nan_gradients_give_nan_updates_and_stay_visible(case):
    if case.name in NAN_EXEMPT:
        pytest.skip(NAN_EXEMPT[case.name])
    tx = case.build()
    state = tx.init(PARAMS)
    nan = jax.tree.map(lambda g: jnp.full_like(g, jnp.nan), GRADS[0])
    updates, state = tx.update(nan, state, PARAMS, **case.extra_args_for(PARAMS, nan))
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        assert bool(jnp.any(jnp.isnan(u))), (
            f"NaN gradients gave updates without NaN at {jax.tree_util.keystr(path)}: {u}"
        )
    poisoned = any(bool(jnp.any(jnp.isnan(x))) for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact))
    updates, _ = tx.update(GRADS[1], state, PARAMS, **case.extra_args_for(PARAMS, GRADS[1]))
    if poisoned:
        assert not all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), (
            "the state holds NaN, yet the next updates are finite: the NaN was hidden"
        )
