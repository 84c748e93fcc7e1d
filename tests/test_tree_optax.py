"""gradtx.tree drops in for optax.tree: every name optax.tree has, its arguments, its numbers.

Signatures are compared with `inspect` (gradtx may add trailing optional arguments: `div`'s eps);
values against optax.tree on float64 trees; get/set/get_all_with_path/map_params against optax's on
real optimizer states (the same matches, the same key paths as `jax.tree_util.keystr` prints them).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx import tree

OPTAX_NAMES = sorted(n for n in dir(optax.tree) if not n.startswith("_") and callable(getattr(optax.tree, n)))
RNG = np.random.default_rng(0)


def _tree(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": [jnp.asarray(rng.normal(size=4)), jnp.asarray(0.5)]}


X, Y, Z = _tree(0), _tree(1), _tree(2)
C = {"z": jnp.asarray(RNG.normal(size=3) + 1j * RNG.normal(size=3))}


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_every_optax_tree_name_with_its_arguments(name):
    assert hasattr(tree, name), f"gradtx.tree has no {name}"
    theirs = list(inspect.signature(getattr(optax.tree, name)).parameters.values())
    ours = list(inspect.signature(getattr(tree, name)).parameters.values())
    assert [(p.name, p.kind) for p in ours[: len(theirs)]] == [(p.name, p.kind) for p in theirs]
    for a, b in zip(ours, theirs, strict=False):
        if b.default is not inspect.Parameter.empty and not callable(b.default):
            assert a.default == b.default, (name, a.name)
    assert all(p.default is not inspect.Parameter.empty for p in ours[len(theirs) :]), (
        "extra arguments must be optional"
    )


VALUES = {
    "add": lambda m: m.add(X, Y, Z),
    "sub": lambda m: m.sub(X, Y),
    "mul": lambda m: m.mul(X, Y),
    "div": lambda m: m.div(X, Y),
    "scale": lambda m: m.scale(0.3, X),
    "add_scale": lambda m: m.add_scale(X, 0.3, Y),
    "where": lambda m: m.where(jnp.asarray(False), X, Y),
    "clip": lambda m: m.clip(X, -0.5, 0.25),
    "conj": lambda m: m.conj(C),
    "real": lambda m: m.real(C),
    "zeros_like": lambda m: m.zeros_like(X),
    "ones_like": lambda m: m.ones_like(X, jnp.float32),
    "full_like": lambda m: m.full_like(X, 2.5),
    "cast": lambda m: m.cast(X, jnp.float32),
    "cast_like": lambda m: m.cast_like(m.cast(X, jnp.float32), X),
    "norm": lambda m: [m.norm(X), m.norm(X, squared=True), m.norm(X, 1), m.norm(X, jnp.inf), m.norm(C, 2)],
    "sum": lambda m: m.sum(X),
    "max": lambda m: m.max(X),
    "min": lambda m: m.min(X),
    "vdot": lambda m: [m.vdot(X, Y), m.vdot(C, C)],
    "size": lambda m: m.size(X),
    "batch_shape": lambda m: m.batch_shape(X, (2,)),
    "update_moment": lambda m: m.update_moment(X, Y, 0.9, 2),
    "update_moment_per_elem_norm": lambda m: [m.update_moment_per_elem_norm(X, Y, 0.9, 2),
                                              m.update_moment_per_elem_norm(C, m.real(C), 0.9, 2)],
    "update_infinity_moment": lambda m: m.update_infinity_moment(X, jax.tree.map(jnp.abs, Y), 0.9, 1e-8),
    "bias_correction": lambda m: m.bias_correction(X, 0.9, jnp.asarray(3, jnp.int32)),
    "split_key_like": lambda m: jax.random.key_data(jax.tree.leaves(m.split_key_like(jax.random.key(1), X))[1]),
    "random_like": lambda m: m.random_like(jax.random.key(2), X),
    "unwrap_random_key_data": lambda m: m.unwrap_random_key_data({"k": jax.random.key(3)}),
    "dtype": lambda m: [m.dtype(X), m.dtype({"a": jnp.zeros(1, jnp.float32), "b": X["w"]}, "promote")],
    "allclose": lambda m: [m.allclose(X, X), m.allclose(X, Y)],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_equal_optax_tree(name):
    with jax.numpy_dtype_promotion("standard"):
        theirs = VALUES[name](optax.tree)
    ours = VALUES[name](tree)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    if name == "dtype":
        assert ours == theirs
        return
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)
        assert np.asarray(a).dtype == np.asarray(b).dtype, name


def test_every_optax_name_has_a_value_test_or_is_a_state_tool():
    state_tools = {"get", "set", "get_all_with_path", "map_params"}
    assert set(OPTAX_NAMES) - set(VALUES) - state_tools == set()


# ---------------------------------------------------------------------------------------------------
# Values in states by name


PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def _states():
    """(gradtx state, optax state) of the same optimizers, with the same field names."""
    out = []
    for build in (
        lambda m: m.chain(m.clip_by_global_norm(1.0), m.adam(1e-3)),
        lambda m: m.inject_hyperparams(m.sgd)(learning_rate=0.1, momentum=0.9),
        lambda m: m.chain(m.add_noise(0.01, 0.55, 0), m.scale_by_adam()),
    ):
        with jax.numpy_dtype_promotion("standard"):
            out.append((build(gradtx).init(PARAMS), build(optax).init(PARAMS)))
    return out


@pytest.mark.parametrize("key", ["count", "mu", "nu", "learning_rate", "ScaleByAdamState", "trace"])
def test_get_all_with_path_finds_what_optax_finds(key):
    for ours, theirs in _states():
        found = [jax.tree_util.keystr(p) for p, _ in tree.get_all_with_path(ours, key)]
        expected = [jax.tree_util.keystr(p) for p, _ in optax.tree.get_all_with_path(theirs, key)]
        # gradtx's inject_hyperparams keeps optax's older layout (no hyperparams_states); its paths
        # are a subset of optax's, named by gradtx's state class where the two classes differ.
        # gradtx's TraceState keeps a count too (for momentum schedules), which optax's does not.
        found = [f for f in found if not f.endswith("TraceState.count")]
        assert found == [e.replace("InjectStatefulHyperparamsState", "InjectHyperparamsState") for e in expected
                         if "hyperparams_states" not in e]  # fmt: skip


def test_get_set_and_filtering():
    state = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3).init(PARAMS)
    assert float(tree.get(state, "learning_rate")) == pytest.approx(1e-3)
    assert tree.get(state, "absent", default="none") == "none"
    with pytest.raises(KeyError, match="'count' names 2 values"):
        tree.get(state, "count")
    in_adam = tree.get(state, "count", filtering=lambda path, _: "ScaleByAdamState" in jax.tree_util.keystr(path))
    assert int(in_adam) == 0
    new = tree.set(state, learning_rate=jnp.asarray(5e-4, jnp.float64))
    assert float(tree.get(new, "learning_rate")) == 5e-4 and float(tree.get(state, "learning_rate")) == 1e-3
    assert jax.tree.structure(new) == jax.tree.structure(state)
    with pytest.raises(KeyError, match="nothing in the tree is named 'lr'"):
        tree.set(state, lr=1.0)
    # the new learning rate is used by the next step, as if the state had been built with it
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3)
    u, _ = tx.update(PARAMS, new, PARAMS)
    v, _ = gradtx.adam(5e-4).update(PARAMS, gradtx.adam(5e-4).init(PARAMS), PARAMS)
    np.testing.assert_allclose(u["w"], v["w"], rtol=1e-12)


def test_set_matches_optax_on_the_same_state():
    ours, theirs = _states()[0]
    zeros = jnp.zeros((), jnp.int32)
    a, b = tree.set(ours, count=zeros + 7), optax.tree.set(theirs, count=zeros + 7)
    assert [int(v) for _, v in tree.get_all_with_path(a, "count")] == [7]
    assert [int(v) for _, v in optax.tree.get_all_with_path(b, "count")] == [7]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_map_params_touches_exactly_the_moments():
    moments = (".mu[", ".nu[", ".trace[")  # the fields built from the params (jax keystr of a NamedTuple field)
    for build in (
        lambda m: m.adam(1e-3),
        lambda m: m.sgd(0.1, momentum=0.9),
        lambda m: m.adamw(1e-3, mask={"w": True, "b": False}),
    ):
        tx = build(gradtx)
        state = tx.init(PARAMS)
        got = tree.map_params(tx, lambda x: x + 1, state, transform_non_params=lambda x: x - 1)
        for (path, new), old in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(state), strict=True):
            is_moment = any(m in jax.tree_util.keystr(path) for m in moments)
            np.testing.assert_array_equal(new, old + 1 if is_moment else old - 1, err_msg=jax.tree_util.keystr(path))
        with jax.numpy_dtype_promotion("standard"):  # optax's on its own state: the same moments move
            theirs = build(optax)
            expected = optax.tree.map_params(theirs, lambda x: x + 1, theirs.init(PARAMS))
        assert sorted(float(jnp.sum(x)) for x in jax.tree.leaves(expected) if jnp.size(x) > 1) == sorted(
            float(jnp.sum(x)) for x in jax.tree.leaves(tree.map_params(tx, lambda x: x + 1, state)) if jnp.size(x) > 1
        )
