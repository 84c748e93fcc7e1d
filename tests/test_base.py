"""The protocol's building blocks: binding, equality, validation, counters, apply_updates."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx import base, checks


def test_transformation_is_a_two_field_namedtuple():
    tx = gradtx.scale(0.5)
    init, update = tx
    assert gradtx.GradientTransformation._fields == ("init", "update")
    assert (init, update) == (tx.init, tx.update)


def test_equal_and_hashable_by_value_across_number_kinds():
    # A NumPy or concrete JAX scalar is stored as the Python number it holds.
    a = gradtx.scale_by_adam(b1=0.9)
    assert a == gradtx.scale_by_adam(b1=np.float64(0.9)) == gradtx.scale_by_adam(b1=jnp.asarray(0.9, jnp.float64))
    assert hash(a) == hash(gradtx.scale_by_adam(b1=np.float64(0.9)))
    assert a != gradtx.scale_by_adam(b1=0.8)
    assert gradtx.scale(1) != gradtx.scale(1.0)  # int and float hyperparameters stay distinct
    assert len({gradtx.scale(0.5), gradtx.scale(0.5), gradtx.scale(0.25)}) == 2


def test_hyperparameters_are_inspectable_and_read_only():
    hp = gradtx.scale_by_adam(b2=0.99).hyperparams
    assert (hp.builder, hp.b1, hp.b2) == ("scale_by_adam", 0.9, 0.99)
    with pytest.raises(AttributeError, match="has no hyperparameter 'b3'"):
        _ = hp.b3
    with pytest.raises(AttributeError, match="read-only"):
        hp.b1 = 0.5


def test_repr_reads_as_code_and_omits_none():
    tx = gradtx.scale_by_adam(mu_dtype=jnp.bfloat16)
    assert repr(tx) == (
        "scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, accumulator_dtype=jnp.bfloat16, nesterov=False)"
    )
    assert repr(gradtx.identity()) == "identity()"


def test_arrays_and_tracers_as_hyperparameters_compare_by_identity():
    lr = jnp.ones(3)  # not a scalar: kept as the array it is
    assert base.Hyperparams("f", (), {"x": lr}) == base.Hyperparams("f", (), {"x": lr})
    assert base.Hyperparams("f", (), {"x": lr}) != base.Hyperparams("f", (), {"x": jnp.ones(3)})

    def build(h):
        tx = gradtx.scale(h)
        assert "<traced float32[]>" in repr(tx)
        return tx.update({"w": jnp.ones(2, jnp.float32)}, tx.init(None))[0]["w"]

    np.testing.assert_allclose(jax.vmap(build)(jnp.asarray([1.0, 2.0], jnp.float32)), [[1, 1], [2, 2]])


def test_pickle_round_trip_keeps_equality():
    tx = gradtx.chain(gradtx.clip(1.0), gradtx.scale_by_adam(b1=0.8), gradtx.scale(-0.1))
    clone = pickle.loads(pickle.dumps(tx))
    assert clone == tx and hash(clone) == hash(tx) and repr(clone) == repr(tx)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: gradtx.scale_by_adam(b1=1.5), "scale_by_adam: b1 must be in [0, 1), got 1.5"),
        (lambda: gradtx.scale_by_adam(b2=-0.1), "scale_by_adam: b2 must be in [0, 1), got -0.1"),
        (lambda: gradtx.scale_by_adam(eps=float("nan")), "scale_by_adam: eps must be in [0, inf), got nan"),
        (lambda: gradtx.scale_by_adam(b1="0.9"), "scale_by_adam: b1 must be a real number, got '0.9'"),
        (
            lambda: gradtx.scale_by_adam(b1=jnp.ones(2)),
            "scale_by_adam: b1 must be a scalar, got an array of shape",
        ),
        (
            lambda: gradtx.scale_by_adam(mu_dtype=jnp.int32),
            "scale_by_adam: accumulator_dtype must be a floating",
        ),
        (
            lambda: gradtx.scale_by_adam(mu_dtype="f16", accumulator_dtype="f32"),
            "pass accumulator_dtype or its alias",
        ),
        (
            lambda: gradtx.scale_by_learning_rate(lambda k: jnp.ones(3)),
            "must be a schedule returning a scalar",
        ),
        (lambda: gradtx.scale_by_learning_rate(lambda: 0.1), "calling it on an int32 count failed"),
        (
            lambda: gradtx.chain(gradtx.scale(1.0), "adam"),
            "chain: argument 1 must be a gradient transformation",
        ),
    ],
)
def test_build_time_validation_names_function_argument_range_and_value(build, message):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert message in str(info.value)


def test_tracers_are_not_validated():
    out = jax.vmap(lambda b1: gradtx.scale_by_adam(b1=b1).hyperparams.b1)(jnp.asarray([1.5, 2.0]))
    np.testing.assert_array_equal(out, [1.5, 2.0])


def test_step_counter_is_int32_and_saturates():
    top = np.iinfo(np.int32).max
    assert base.zero_count().dtype == jnp.int32
    assert int(base.next_count(jnp.asarray(top - 1, jnp.int32))) == top
    assert int(base.next_count(jnp.asarray(top, jnp.int32))) == top
    assert base.next_count(jnp.asarray(top, jnp.int32)).dtype == jnp.int32


def test_value_at_calls_schedules_and_passes_numbers():
    assert base.value_at(0.5, jnp.asarray(3)) == 0.5
    assert int(base.value_at(lambda k: k * 2, jnp.asarray(3))) == 6


def test_apply_updates_keeps_param_dtypes_and_none():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": None, "c": jnp.ones(2, jnp.float32)}
    updates = {"a": jnp.full(2, 0.5, jnp.float32), "b": None, "c": jnp.full(2, 0.25, jnp.float32)}
    new = gradtx.apply_updates(params, updates)
    assert new["a"].dtype == jnp.bfloat16 and new["b"] is None
    np.testing.assert_allclose(new["c"], [1.25, 1.25])


def test_incremental_update_is_a_polyak_average():
    new, old = {"w": jnp.asarray([2.0, 4.0], jnp.float32)}, {"w": jnp.asarray([0.0, 0.0], jnp.float32)}
    np.testing.assert_allclose(gradtx.incremental_update(new, old, 0.25)["w"], [0.5, 1.0])


def test_stateless_builders_pass_params():
    double = gradtx.stateless_with_tree_map(lambda g, p: g + p)
    out, _ = double.update({"w": jnp.ones(2)}, double.init(None), {"w": jnp.full(2, 2.0)})
    np.testing.assert_allclose(out["w"], [3.0, 3.0])


def test_require_params_names_the_builder():
    with pytest.raises(ValueError, match="add_decayed_weights: update needs params, got None"):
        checks.require_params("add_decayed_weights", None)


PARAMS = {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(2, jnp.float32)}


@pytest.mark.parametrize(
    ("grads", "params", "message"),
    [
        (
            {"a": jnp.ones(3, jnp.float32)},
            PARAMS,
            "chain: the gradients do not match params: ['b'] is in params, not in the gradients",
        ),
        (
            {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(4, jnp.float32)},
            PARAMS,
            "chain: the gradients do not match params: ['b'] has shape (4,) in the gradients, (2,) in params",
        ),
        (
            {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(2, jnp.int32)},
            PARAMS,
            "chain: the gradients do not match params: ['b'] is int32 in the gradients, float32 in params:"
            " gradients must be floating",
        ),
        (
            {"a": jnp.ones(3, jnp.float32)},
            None,
            "scale_by_adam: the gradients do not match state.mu: ['b'] is in state.mu, not in the gradients."
            " Was the state built by this transformation's init, from params of this structure?",
        ),
    ],
    ids=["missing-leaf", "shape", "integer-grads", "state"],
)
def test_mismatched_trees_name_the_transformation_and_the_key_path(grads, params, message):
    tx = gradtx.adam(0.1)
    with pytest.raises(ValueError) as info:
        jax.jit(tx.update)(grads, tx.init(PARAMS), params)
    assert message in str(info.value)
    assert "  gradients: PyTreeDef(" in str(info.value)  # both structures are shown


def test_abstract_state_is_the_shape_of_init_without_allocating():
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-3))
    params = {"w": jnp.ones((3, 2), jnp.bfloat16), "steps": jnp.arange(2, dtype=jnp.int32)}
    abstract = gradtx.abstract_state(tx, params)
    concrete = tx.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
    for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete), strict=True):
        assert isinstance(a, jax.ShapeDtypeStruct) and (a.shape, a.dtype) == (c.shape, c.dtype)
    with pytest.raises(TypeError, match="state_shardings: param_shardings must hold NamedShardings"):
        gradtx.state_shardings(tx, {"w": None})


NEEDS = "update needs params, got None. Call tx.update(grads, state, params)."


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: gradtx.add_decayed_weights(0.1), f"add_decayed_weights: {NEEDS}"),
        (lambda: gradtx.adamw(1e-3), f"add_decayed_weights: {NEEDS}"),  # the member that reads params
        (lambda: gradtx.masked(gradtx.adamw(1e-3), {"w": True, "b": False}), f"add_decayed_weights: {NEEDS}"),
        (lambda: gradtx.lamb(1e-3), f"add_decayed_weights: {NEEDS}"),
        (lambda: gradtx.lars(0.1), f"add_decayed_weights: {NEEDS}"),
        (lambda: gradtx.scale_by_trust_ratio(), f"scale_by_trust_ratio: {NEEDS}"),
        (lambda: gradtx.adafactor(1e-2), f"scale_by_param_block_rms: {NEEDS}"),
        (lambda: gradtx.novograd(1e-2, weight_decay=0.1), f"scale_by_novograd: {NEEDS}"),
        (lambda: gradtx.lookahead(gradtx.sgd(0.1), 2, 0.5), f"lookahead: {NEEDS}"),
    ],
    ids=["add_decayed_weights", "adamw", "masked", "lamb", "lars", "trust_ratio", "adafactor", "novograd", "lookahead"],
)
def test_update_without_params_names_the_member_that_needs_them(build, message):
    tx = build()
    params = {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.ones(2, jnp.float32)}
    state = tx.init(gradtx.LookaheadParams.init_synced(params) if "lookahead" in message else params)
    with pytest.raises(ValueError) as info:
        tx.update(params, state, None)
    assert str(info.value) == message


def test_packed_params_are_refused_by_transformations_that_need_the_leaves():
    params = gradtx.pack({"w": jnp.ones((3, 2), jnp.float32), "b": jnp.ones(2, jnp.float32)})
    tx = gradtx.lamb(1e-3)
    with pytest.raises(TypeError) as info:
        tx.update(params, tx.init(params), params)
    assert str(info.value).startswith(
        "scale_by_trust_ratio: the updates are gradtx.Packed, but scale_by_trust_ratio treats each leaf of the"
        " params tree as a block"
    )
