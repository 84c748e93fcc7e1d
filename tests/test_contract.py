"""DESIGN.md's contract, checked for every registry entry.

jit, vmap over params and over hyperparameters, float32/bfloat16 params keep their dtype,
odd trees (None, 0-d, zero-size, list, tuple, empty, bare array), state structure and dtypes fixed,
no retrace after the first step, equal transformations share one compiled step, pickling, repr.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import (
    assert_trees_all_close,
    assert_trees_same_structure_and_dtypes,
    check_transformation,
    pseudo_gradients,
)
from tests import registry
from tests.registry import EXTRA_ARGS, SCHEDULES, TRANSFORMATION_CASES

# EXTRA_ARGS cases need keyword arguments in every update (rollback: the loss; lbfgs and the line searches:
# value, grad, value_fn): each test passes `case.extra_args_for(params, grads)`.
CASES = [pytest.param(c, id=c.id) for c in TRANSFORMATION_CASES + EXTRA_ARGS]
SWEEPS = [pytest.param(c, id=c.id) for c in TRANSFORMATION_CASES + EXTRA_ARGS if c.sweep is not None]
SCHEDULE_CASES = [pytest.param(c, id=c.id) for c in SCHEDULES]

# The namespace a repr is evaluated in: gradtx's public names, jnp, and the registry's functions.
NAMESPACE = {**{n: getattr(gradtx, n) for n in gradtx.__all__}, "jnp": jnp, **vars(registry)}


def odd_params(dtype) -> dict:
    """A model tree with the leaves users hit: matrix, vector, 0-d, None, zero-size, list, tuple, and
    the integer and boolean arrays of equinox and flax models."""
    return {
        "w": jnp.linspace(-1, 1, 12).reshape(3, 4).astype(dtype),
        "b": jnp.arange(4).astype(dtype) / 4,
        "list": [jnp.asarray(0.5, dtype), None],
        "tuple": (jnp.zeros((0, 3), dtype), jnp.arange(3, dtype=jnp.int32), jnp.asarray(True)),
    }


# float64 params are not run here: tests/test_dtypes.py holds every entry's float64 types and values
# (test_dtype_policy), tests/test_properties.py its float64 leaves jitted against eager on random
# trees, and the float64 reference tests its numbers. The contract runs where rounding bites.
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("case", CASES)
def test_contract(case, dtype):
    # Under jit XLA may keep bfloat16 intermediates in float32 (excess precision) where eager rounds
    # them; where terms cancel (g + mu t in Nesterov) that shows as an absolute difference.
    rtol, atol = (2e-2, 2e-2) if dtype == jnp.bfloat16 else (1e-5, 1e-6)
    check_transformation(
        case.build(), odd_params(dtype), rtol=rtol, atol=atol, rebuild=case.build, extra_args=case.extra_args
    )


def _is_rng_key(path: tuple) -> bool:
    # add_noise's rng_key; Sophia's Hutchinson estimator keeps optax's field name, key
    return any(isinstance(k, jax.tree_util.GetAttrKey) and k.name in ("rng_key", "key") for k in path)


def _is_codes(path: tuple) -> bool:
    """A quantized moment's uint8 codes (gradtx.QuantizedArray; tests/test_quantize.py checks them)."""
    return any(isinstance(k, jax.tree_util.GetAttrKey) and k.name == "codes" for k in path)


@pytest.mark.parametrize("case", CASES)
def test_integer_and_boolean_leaves_hold_no_state_and_pass_through(case):
    tx = case.build()
    params = {"w": jnp.ones(3, jnp.float32), "steps": jnp.arange(2, dtype=jnp.int32), "on": jnp.asarray(True)}
    state = tx.init(params)
    # Float moments and scalar counts only; a PRNG key (add_noise's rng_key, Hutchinson's key: uint32 key
    # data) is no param's state, and quantized codes are a float moment's.
    leaves = [
        leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state) if not (_is_rng_key(path) or _is_codes(path))
    ]
    assert all(jnp.issubdtype(leaf.dtype, jnp.inexact) or leaf.shape == () for leaf in leaves)
    for grads in (
        {"w": jnp.ones(3, jnp.float32), "steps": None, "on": None},  # equinox's filtered gradients
        {"w": jnp.ones(3, jnp.float32), "steps": params["steps"], "on": params["on"]},
    ):
        updates, _ = jax.jit(tx.update)(grads, state, params, **case.extra_args_for(params, grads))
        assert updates["steps"] is grads["steps"] or bool(jnp.all(updates["steps"] == grads["steps"]))
        new = gradtx.apply_updates(params, updates)
        assert new["steps"] is params["steps"] and new["on"] is params["on"]


@pytest.mark.parametrize("case", CASES)
def test_empty_tree_and_bare_array(case):
    tx = case.build()
    for params in ({}, [], jnp.linspace(0.5, 1.5, 5, dtype=jnp.float32)):
        state = tx.init(params)
        grads = pseudo_gradients(params, 0)
        updates, new_state = jax.jit(tx.update)(grads, state, params, **case.extra_args_for(params, grads))
        assert_trees_same_structure_and_dtypes(updates, params, "updates")
        assert_trees_same_structure_and_dtypes(new_state, state, "state")


@pytest.mark.parametrize("case", CASES)
def test_repr_rebuilds_an_equal_transformation(case):
    tx = case.build()
    assert eval(repr(tx), NAMESPACE) == tx
    assert tx.hyperparams is not None and repr(tx.hyperparams) == repr(tx)


@pytest.mark.parametrize("case", CASES)
def test_equal_transformations_share_one_compiled_step(case):
    traces = []

    def step(tx, grads, state, params):
        traces.append(None)
        return tx.update(grads, state, params, **case.extra_args_for(params, grads))

    jstep = jax.jit(step, static_argnums=0)
    params = odd_params(jnp.float32)
    grads = pseudo_gradients(params, 0)
    for _ in range(2):
        tx = case.build()  # a new object each time, equal by value
        jstep(tx, grads, tx.init(params), params)
    assert len(traces) == 1


@pytest.mark.parametrize("case", CASES)
def test_vmap_over_params_equals_a_loop(case):
    tx = case.build()
    batch = [odd_params(jnp.float32) for _ in range(3)]
    batch = [
        jax.tree.map(lambda x, k=k: x * (k + 1) if gradtx.tree.is_inexact(x) else x, p) for k, p in enumerate(batch)
    ]
    grads = [pseudo_gradients(p, k) for k, p in enumerate(batch)]

    def step(params, grads):
        return tx.update(grads, tx.init(params), params, **case.extra_args_for(params, grads))

    stacked = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    got = jax.jit(jax.vmap(step))(stacked(batch), stacked(grads))
    want = stacked([step(p, g) for p, g in zip(batch, grads, strict=True)])
    assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", SWEEPS)
def test_vmap_over_hyperparameters_equals_a_loop(case):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.float32).reshape(2, 3), "b": jnp.ones(3, jnp.float32)}

    def train(h):
        tx = case.sweep(gradtx, h)
        p, state = params, tx.init(params)
        for k in range(3):
            g = pseudo_gradients(params, k)
            updates, state = tx.update(g, state, p, **case.extra_args_for(p, g))
            p = gradtx.apply_updates(p, updates)
        return p

    values = jnp.asarray(case.sweep_values, jnp.float32)
    got = jax.jit(jax.vmap(train))(values)
    for i, h in enumerate(case.sweep_values):
        assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], got), train(h), rtol=1e-5, atol=1e-6)


def test_state_is_not_a_pytree_with_array_leaves():
    tx = gradtx.adam(1e-3)
    assert not any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(tx))


def test_update_accepts_and_ignores_extra_args():
    tx = gradtx.chain(gradtx.clip(1.0), gradtx.adam(1e-3))
    params = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    plain, _ = tx.update(params, state, params)
    extra, _ = tx.update(params, state, params, value=jnp.float32(1.0), grad=params)
    assert_trees_all_close(extra, plain)


@pytest.mark.parametrize("case", SCHEDULE_CASES)
def test_schedule_contract(case):
    sched = case.build()
    counts = jnp.arange(0, 80, dtype=jnp.int32)
    eager = np.array([float(sched(int(k))) for k in range(0, 80, 7)])
    jitted = jax.jit(jax.vmap(sched))(counts)
    assert jitted.shape == (80,) and bool(jnp.all(jnp.isfinite(jitted)))
    np.testing.assert_allclose(np.asarray(jitted)[::7], eager, rtol=1e-6)
    assert pickle.loads(pickle.dumps(sched)) == sched and hash(case.build()) == hash(sched)
    assert eval(repr(sched), NAMESPACE) == sched
    # A schedule drives a learning rate inside a float32 step without changing its dtype.
    tx = gradtx.scale_by_learning_rate(sched)
    params = {"w": jnp.ones(3, jnp.float32)}
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    assert updates["w"].dtype == jnp.float32
