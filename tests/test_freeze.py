"""freeze and selective_transform against optax (float64 trajectories at rtol 1e-9, float32 no less
accurate, the same states), frozen params that never move and hold no optimizer state, masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax, model, trajectory

MASK = {"w": False, "b": True, "conv": False, "s": True}  # True: frozen


def test_freeze_before_an_optimizer_matches_optax():
    make = lambda m: m.chain(m.freeze(MASK), m.adam(0.1))
    (us, ps, state), (_, _, theirs) = compare_with_optax(make)
    assert not np.asarray(us["b"]).any() and not np.asarray(us["s"]).any()
    np.testing.assert_array_equal(ps["b"][-1], model()["b"])  # frozen: never moved
    assert np.asarray(us["w"]).any()
    assert_same_layout(state, theirs)


def test_selective_transform_matches_optax_and_keeps_no_state_for_frozen_params():
    make = lambda m: m.selective_transform(m.adam(0.1), freeze_mask=MASK)
    (_us, ps, state), (_, _, theirs) = compare_with_optax(make)
    np.testing.assert_array_equal(ps["s"][-1], model()["s"])
    assert_same_layout(state, theirs)  # PartitionState(inner_states={"freeze": ..., "train": ...})
    mu = state.inner_states["train"].inner_state[0].mu
    assert isinstance(mu["b"], gradtx.MaskedNode) and mu["w"].shape == (3, 4)


def frozen_scalars(params: dict) -> dict:
    return {k: jnp.ndim(v) == 0 for k, v in params.items()}


def test_a_mask_function_a_scalar_mask_and_a_0d_bool_array():
    params, grads = model(), jax.tree.map(jnp.ones_like, model())
    by_tree = gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask=frozen_scalars(params))
    by_function = gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask=frozen_scalars)
    u_tree, u_fn = (tx.update(grads, tx.init(params), params)[0] for tx in (by_tree, by_function))
    for k in params:
        np.testing.assert_array_equal(u_tree[k], u_fn[k])
    assert float(u_fn["s"]) == 0.0 and float(u_fn["w"][0, 0]) == -0.1
    for mask in (True, jnp.asarray(True)):
        tx = gradtx.freeze(mask)
        u, _ = tx.update(grads, tx.init(params))
        assert not any(np.asarray(x).any() for x in jax.tree.leaves(u))
    assert gradtx.freeze(jnp.asarray(False)) == gradtx.freeze(False)


def test_freeze_keeps_a_nan_visible_where_it_trains_and_zero_where_frozen():
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    g = {"a": jnp.asarray([jnp.nan, 1.0]), "b": jnp.asarray([jnp.nan, 1.0])}
    u = trajectory(gradtx.freeze({"a": True, "b": False}), params, jax.tree.map(lambda x: x[None], g))[0]
    np.testing.assert_array_equal(np.asarray(u["a"][0]), [0.0, 0.0])  # frozen: zero by definition
    assert np.isnan(np.asarray(u["b"][0, 0]))


def test_errors_name_the_builder():
    with pytest.raises(TypeError, match=r"^freeze: mask leaves must be Python bools"):
        gradtx.freeze({"w": 1})
    with pytest.raises(TypeError, match=r"^selective_transform: mask leaves must be Python bools"):
        gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask={"w": "yes"})
    with pytest.raises(TypeError, match=r"^selective_transform: argument 0 must be a gradient transformation"):
        gradtx.selective_transform(0.1, freeze_mask=True)  # type: ignore[arg-type]
    tx = gradtx.freeze({"w": True})
    with pytest.raises(ValueError, match=r"^freeze: mask must be a tree of bools with the params' structure"):
        tx.init({"v": jnp.ones(2)})
