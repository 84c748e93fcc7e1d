"""gradtx.make_step and the compiled eager update: fast paths that give the plain path's numbers.

- `make_step(tx, loss_fn)` equals `jax.value_and_grad` + `tx.update` + `apply_updates` written by
  hand, on trees with integer and None leaves and on packed params; it donates params and state.
- An update called outside jit runs compiled, once per transformation and tree structure, and equals
  the op-by-op update (`jax.disable_jit`) that it replaces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx import base
from gradtx.testing import assert_trees_all_close

TXS = {
    "sgd-momentum": gradtx.sgd(0.1, momentum=0.9),
    "adam": gradtx.adam(1e-2),
    "clip+adamw+schedule": gradtx.chain(
        gradtx.clip_by_global_norm(0.5), gradtx.adamw(gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10))
    ),
}


def model() -> dict:
    return {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float64).reshape(3, 4),
        "b": jnp.zeros(3, jnp.float64),
        "frozen": None,
        "n": jnp.asarray(2, jnp.int32),  # an integer leaf, as equinox and flax models carry
    }


def loss_fn(params, x, y):
    pred = jnp.tanh(x @ params["w"].T + params["b"]) * params["n"].astype(jnp.float64)
    return jnp.mean((pred - y) ** 2)


def batch(k: int):
    key = jax.random.key(k)
    x = jax.random.normal(key, (5, 4), jnp.float64)
    return x, jnp.sin(x[:, :3])


def by_hand(tx, params, state, x, y):
    trainable = gradtx.tree.trainable(params)
    value, grads = jax.value_and_grad(lambda p: loss_fn(gradtx.tree.with_frozen(p, params), x, y))(trainable)
    updates, state = tx.update(grads, state, params)
    return gradtx.apply_updates(params, updates), state, value


@pytest.mark.parametrize("name", list(TXS))
@pytest.mark.parametrize("packed", [False, True], ids=["tree", "packed"])
def test_make_step_equals_the_step_written_by_hand(name, packed):
    tx = TXS[name]
    step, reference = gradtx.make_step(tx, loss_fn), jax.jit(lambda *a: by_hand(tx, *a))
    params = model()
    expected_params, expected_state = params, tx.init(params)
    got_params = gradtx.pack(params) if packed else jax.tree.map(jnp.copy, params)
    got_state = tx.init(got_params)
    for k in range(6):
        x, y = batch(k)
        expected_params, expected_state, expected_loss = reference(expected_params, expected_state, x, y)
        got_params, got_state, got_loss = step(got_params, got_state, x, y)
        np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-12)
    got = gradtx.unpack(got_params)
    assert got["frozen"] is None and int(got["n"]) == 2
    # Packed: the same arithmetic; only the global norm's sum runs in another order.
    assert_trees_all_close(got, expected_params, rtol=1e-12 if packed else 0, atol=0, what="params")


def test_make_step_donates_params_and_state_unless_asked_not_to():
    tx = gradtx.adam(1e-2)
    x, y = batch(0)
    params = model()
    state = tx.init(params)
    new_params, _, _ = gradtx.make_step(tx, loss_fn)(params, state, x, y)
    assert params["w"].is_deleted() and state[0].mu["w"].is_deleted()
    assert not new_params["w"].is_deleted()
    kept = model()
    gradtx.make_step(tx, loss_fn, donate=False)(kept, tx.init(kept), x, y)
    assert not kept["w"].is_deleted()


def test_make_step_with_aux_and_without_a_loss():
    tx = gradtx.sgd(0.1)
    x, y = batch(1)
    params = model()
    step = gradtx.make_step(tx, lambda p, x, y: (loss_fn(p, x, y), {"y_mean": jnp.mean(y)}), has_aux=True)
    _, _, (loss, aux) = step(model(), tx.init(params), x, y)
    np.testing.assert_allclose(loss, loss_fn(params, x, y), rtol=1e-12)
    np.testing.assert_allclose(aux["y_mean"], jnp.mean(y), rtol=1e-12)
    grads = {"w": jnp.ones((3, 4), jnp.float64), "b": jnp.ones(3, jnp.float64), "frozen": None, "n": None}
    new_params, _ = gradtx.make_step(tx)(model(), tx.init(params), grads)
    np.testing.assert_allclose(new_params["w"], params["w"] - 0.1, rtol=1e-12)
    assert int(new_params["n"]) == 2


def test_make_step_takes_an_optax_transformation_and_rejects_other_things():
    params = {"w": jnp.ones(3, jnp.float32)}
    with jax.numpy_dtype_promotion("standard"):
        tx = optax.adam(1e-2)
        new, _, _ = gradtx.make_step(tx, lambda p: jnp.sum(p["w"] ** 2))(params, tx.init(params))
    assert new["w"].shape == (3,)
    with pytest.raises(TypeError, match=r"make_step: tx must be a gradient transformation .* got 'adam'"):
        gradtx.make_step("adam")
    with pytest.raises(TypeError, match="make_step: loss_fn must be callable or None, got 3"):
        gradtx.make_step(gradtx.sgd(0.1), 3)


# ---------------------------------------------------------------------------------------------------
# The compiled eager update


TRACES: list[None] = []


def counting(updates, params):
    TRACES.append(None)  # runs once per trace: op by op, once per call
    return jax.tree.map(lambda u: -0.5 * u, updates)


def test_an_eager_update_compiles_once_per_transformation_and_structure():
    TRACES.clear()
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    for _ in range(3):  # new, equal transformations: one compiled update
        tx = gradtx.chain(gradtx.stateless(counting), gradtx.scale(2.0))
        updates, _ = tx.update(params, tx.init(params), params)
    assert len(TRACES) == 1
    np.testing.assert_array_equal(updates["w"], -jnp.ones((2, 2)))
    tx.update({"w": jnp.ones(3)}, tx.init({"w": jnp.ones(3)}))  # another structure: compiled again
    assert len(TRACES) == 2
    with jax.disable_jit():  # op by op: the function runs at every call
        for _ in range(2):
            tx.update(params, tx.init(params), params)
    assert len(TRACES) == 4


def test_an_eager_update_equals_the_op_by_op_update():
    params = model()
    for name, tx in TXS.items():
        grads = jax.tree.map(lambda p: None if p is None else jnp.cos(p) if p.dtype == jnp.float64 else None, params)
        state_c = state_o = tx.init(params)
        for _ in range(4):
            u_c, state_c = tx.update(grads, state_c, params)  # compiled
            with jax.disable_jit():
                u_o, state_o = tx.update(grads, state_o, params)
            assert_trees_all_close((u_c, state_c), (u_o, state_o), rtol=1e-13, atol=1e-15, what=name)
        assert u_c["n"] is None and u_c["frozen"] is None


def test_eager_updates_with_arguments_jit_cannot_take_run_op_by_op():
    tx = gradtx.scale(0.5)
    updates, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}), None, note="a string")
    np.testing.assert_array_equal(updates["w"], 0.5 * jnp.ones(2))
    assert not base._is_eager_call(({}, (), None, {}))  # nothing to compile
    assert not base._is_eager_call(({"w": jnp.ones(2)}, "text"))


def test_apply_updates_called_eagerly_hands_integer_leaves_back_as_they_are():
    params = model()
    new = gradtx.apply_updates(params, {"w": jnp.ones((3, 4)), "b": None, "frozen": None, "n": None})
    assert new["n"] is params["n"] and new["frozen"] is None
    np.testing.assert_array_equal(new["b"], params["b"])
    np.testing.assert_array_equal(new["w"], params["w"] + 1)


@pytest.mark.parametrize("name", list(TXS))
def test_a_donated_step_keeps_no_second_copy_of_params_or_state(name):
    """XLA's plan for make_step's step: every output reuses a donated input, and the scratch memory
    is far below one copy of the params (a step that kept one would need 4 bytes a parameter)."""
    tx = TXS[name]
    params = {"w": jnp.zeros((256, 1024), jnp.float32), "b": jnp.zeros(1024, jnp.float32)}
    grads = jax.tree.map(jnp.ones_like, params)
    compiled = gradtx.make_step(tx).lower(params, tx.init(params), grads).compile()
    memory = compiled.memory_analysis()
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    assert memory.output_size_in_bytes - memory.alias_size_in_bytes < 1024  # a few step counts at most
    assert memory.temp_size_in_bytes < param_bytes / 16
