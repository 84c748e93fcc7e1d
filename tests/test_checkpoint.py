"""Nothing is lost: checkpoints of every registry entry restore exactly and resume bit for bit.

For every transformation and optimizer in the registry, a run of STEPS jitted steps is checkpointed
at step RESUME_AT (params and state together) through pickle, flax's msgpack (`to_bytes` /
`from_bytes`, against an abstract and against a concrete target) and orbax's StandardCheckpointer
(against `gradtx.abstract_state`). The restored tree must be the saved one bit for bit: the same tree
structure (NamedTuple node types, None leaves and all), the same leaf dtypes and shapes, the same
bytes. The run resumed from it must end bit-identical to the run that never stopped, in the same
compiled step (a restored state that retraced would have changed type). Finally the transformation
itself, pickled with the checkpoint, compiles a new step that continues the run bit for bit.

The params hold float32 leaves, a bfloat16 leaf, an int32 leaf (no state, no update) and a None
leaf; the gradients are deterministic: the gradient of |p|^2 / 2 plus `pseudo_gradients` noise.
Compilation is most of the time, so each entry is one test that compiles its step once (and once
more from the unpickled transformation) and reports every failing format by name.
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import gradtx
from gradtx.testing import pseudo_gradients
from tests.registry import EXTRA_ARGS, OPTIMIZERS, TRANSFORMATION_CASES, Case

# EXTRA_ARGS entries get their keyword arguments (`Case.extra_args_for`) in every step.
CASES = [pytest.param(c, id=c.id) for c in TRANSFORMATION_CASES + EXTRA_ARGS]

PARAMS = {
    "w": jnp.linspace(-1, 1, 12, dtype=jnp.float32).reshape(3, 4),
    "b": jnp.linspace(0.5, -0.5, 4, dtype=jnp.float32),  # 'b': the leaf registry.decay_mask leaves out
    "h": jnp.linspace(-2, 2, 6, dtype=jnp.float32).reshape(2, 3).astype(jnp.bfloat16),
    "n": jnp.arange(3, dtype=jnp.int32),
    "z": None,
}
STEPS, RESUME_AT = 5, 2
NOISE = [pseudo_gradients(PARAMS, k) for k in range(STEPS)]  # int32 noise for "n": it must pass through


# ---------------------------------------------------------------------------------------------------
# Exact comparison


def assert_trees_bit_identical(actual: Any, expected: Any, what: str) -> None:
    """Same tree structure (node types included), and leaf by leaf an array of the same dtype, shape and bytes."""
    s_actual, s_expected = jax.tree.structure(actual), jax.tree.structure(expected)
    assert s_actual == s_expected, f"{what}: tree structure changed\n  got:      {s_actual}\n  expected: {s_expected}"
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        at = f"{what}{jax.tree_util.keystr(path)}"
        assert isinstance(a, np.ndarray | jax.Array), f"{at}: restored as {type(a).__name__}, not an array"
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{at}: got {a.dtype}{a.shape}, expected {b.dtype}{b.shape}"
        assert jax.typeof(a).weak_type == jax.typeof(b).weak_type, f"{at}: weak type changed"
        a_np, b_np = np.asarray(a), np.asarray(b)
        assert a_np.tobytes() == b_np.tobytes(), f"{at}: values differ\n  got:      {a_np}\n  expected: {b_np}"


class _Pair(NamedTuple):
    mu: Any
    nu: Any


class _OtherPair(NamedTuple):
    mu: Any
    nu: Any


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: tuple(t),  # a NamedTuple node restored as a plain tuple
        lambda t: _OtherPair(*t),  # ... or as another NamedTuple with the same fields
        lambda t: _Pair(t.mu.astype(jnp.float64), t.nu),  # a dtype change with equal values
        lambda t: _Pair(jnp.nextafter(t.mu, jnp.float32(2)), t.nu),  # one ulp
        lambda t: _Pair(-t.mu * 0, t.nu),  # -0.0 == 0.0 for allclose and array_equal, not in bytes
        lambda t: _Pair(t.mu, {"a": t.nu["a"], "none": jnp.zeros(2, jnp.int32)}),  # a None leaf filled in
        lambda t: _Pair(t.mu, {"a": float(t.nu["a"]), "none": None}),  # an array restored as a Python number
    ],
    ids=["namedtuple-to-tuple", "namedtuple-type", "dtype", "ulp", "signed-zero", "none-leaf", "python-scalar"],
)
def test_the_comparison_catches_what_a_checkpoint_could_lose(mutate):
    tree = _Pair(jnp.zeros(3, jnp.float32), {"a": jnp.asarray(7, jnp.int32), "none": None})
    assert_trees_bit_identical(tree, tree, "state")
    with pytest.raises(AssertionError):
        assert_trees_bit_identical(mutate(tree), tree, "state")


# ---------------------------------------------------------------------------------------------------
# The run


def jitted_step(tx: Any, traces: list, case: Case | None = None) -> Any:
    """A freshly jitted training step of `tx` (a new function, so a new trace); `traces` counts its traces."""

    def step(params: Any, state: Any, noise: Any) -> tuple[Any, Any]:
        traces.append(None)
        grads = jax.tree.map(lambda p, e: p + e if gradtx.tree.is_inexact(p) else e, params, noise)
        extra_args = {} if case is None else case.extra_args_for(params, grads)
        updates, state = tx.update(grads, state, params, **extra_args)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step)


def run(step: Any, params: Any, state: Any, start: int, stop: int) -> tuple[Any, Any]:
    for k in range(start, stop):
        params, state = step(params, state, NOISE[k])
    return params, state


# ---------------------------------------------------------------------------------------------------
# Checkpoint formats: each saves (params, state) and restores it into fresh objects, as a restarted job does


def abstract_target(tx: Any) -> dict:
    state = gradtx.abstract_state(tx, PARAMS)
    # The restore target must be what eval_shape of init gives: the same nodes, shapes and dtypes.
    expected = jax.eval_shape(tx.init, PARAMS)
    assert jax.tree.structure(state) == jax.tree.structure(expected), "abstract_state differs from eval_shape(init)"
    for a, e in zip(jax.tree.leaves(state), jax.tree.leaves(expected), strict=True):
        assert isinstance(a, jax.ShapeDtypeStruct) and (a.shape, a.dtype) == (e.shape, e.dtype)
    return {"params": jax.eval_shape(lambda: PARAMS), "state": state}


def via_pickle(tree: Any, tx: Any, directory: Any) -> Any:
    return pickle.loads(pickle.dumps(tree))


def via_msgpack_abstract(tree: Any, tx: Any, directory: Any) -> Any:
    # flax's from_bytes takes its structure from the target and leaves unregistered leaves (here
    # ShapeDtypeStructs) to the stored arrays: an abstract target works, but nothing checks shapes or
    # dtypes against it, so the comparison does.
    return serialization.from_bytes(abstract_target(tx), serialization.to_bytes(tree))


def via_msgpack_init(tree: Any, tx: Any, directory: Any) -> Any:
    # The concrete target of flax's documentation: freshly initialized params and state (zeros).
    target = {"params": jax.tree.map(jnp.zeros_like, PARAMS), "state": tx.init(PARAMS)}
    return serialization.from_bytes(target, serialization.to_bytes(tree))


def via_orbax(tree: Any, tx: Any, directory: Any) -> Any:
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "checkpoint", tree)
        checkpointer.wait_until_finished()
        return checkpointer.restore(directory / "checkpoint", abstract_target(tx))


FORMATS = {
    "pickle": via_pickle,
    "msgpack-abstract-target": via_msgpack_abstract,
    "msgpack-init-target": via_msgpack_init,
    "orbax": via_orbax,
}
# orbax restores arrays committed to a device, and a jitted step compiles once more for committed
# inputs (about 0.2 s an entry, a third of this file's time): the run is resumed from orbax's arrays
# for the optimizers only. For every other entry orbax's restore is still checked bit for bit
# against the saved tree, which the other formats resume from.
RESUME_FROM_ORBAX = frozenset(c.id for c in OPTIMIZERS)
# Entries that never move the params, so that resuming their run could not show anything lost.
NO_RUN = {
    "set_to_zero": "its updates are zero and its state empty; the multi_transform entry freezes biases with"
    " it while the other params move",
}


# One test per entry, so that each entry's step is compiled once (compilation is most of the time):
# every way of resuming is tried and every failure is reported, each under its name.
@pytest.mark.parametrize("case", CASES)
def test_checkpoints_restore_exactly_and_resume_bit_identically(case, tmp_path):
    if case.id in NO_RUN:
        pytest.skip(NO_RUN[case.id])
    tx, traces = case.build(), []
    step = jitted_step(tx, traces, case)
    at_resume = run(step, PARAMS, tx.init(PARAMS), 0, RESUME_AT)
    straight = run(step, *at_resume, RESUME_AT, STEPS)  # the run that never stops
    assert not np.array_equal(np.asarray(straight[0]["w"]), np.asarray(PARAMS["w"])), "the run must move the params"
    np.testing.assert_array_equal(np.asarray(straight[0]["n"]), np.asarray(PARAMS["n"]))  # int leaves never move
    saved = {"params": at_resume[0], "state": at_resume[1]}

    failures = {}
    for name, checkpoint in FORMATS.items():
        try:
            (tmp_path / name).mkdir()
            restored = checkpoint(saved, case.build(), tmp_path / name)  # a fresh tx, as a restarted job has
            assert_trees_bit_identical(restored, saved, "restored")
            if name == "orbax" and case.id not in RESUME_FROM_ORBAX:
                continue
            resumed = run(step, restored["params"], restored["state"], RESUME_AT, STEPS)
            assert len(traces) == 1, "the restored checkpoint retraced the step: its types changed"
            assert_trees_bit_identical(resumed, straight, "resumed vs straight (params, state)")
        except Exception as e:
            failures[name] = e
            traces[1:] = []

    # The transformation pickled with the checkpoint: its own freshly compiled step continues the run.
    try:
        tx_, params, state = pickle.loads(pickle.dumps((tx, *at_resume)))
        traces_ = []
        resumed = run(jitted_step(tx_, traces_, case), params, state, RESUME_AT, STEPS)
        assert len(traces_) == 1
        assert_trees_bit_identical(resumed, straight, "resumed by the unpickled transformation vs straight")
    except Exception as e:
        failures["pickled transformation"] = e

    assert not failures, "\n".join(f"{name}: {type(e).__name__}: {e}" for name, e in failures.items())
