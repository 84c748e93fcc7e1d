"""keep_params_nonnegative and zero_nans against optax (float64 trajectories at rtol 1e-9, the same
states), and what each promises: params that stay >= 0, NaN turned into 0 (zero_nans' one purpose,
the documented exception to "NaN in, NaN out") with found_nan saying where."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax, gradients, model, trajectory


def test_keep_params_nonnegative_matches_optax_and_params_stay_nonnegative():
    params = jax.tree.map(jnp.abs, model())
    make = lambda m: m.chain(m.sgd(1.0, momentum=0.5), m.keep_params_nonnegative())
    (_us, ps, _), _ = compare_with_optax(make, params, lr=1.0)
    for k, p in ps.items():
        assert (np.asarray(p) >= 0).all(), k
    # The projection is active: some coordinates land on 0 exactly.
    assert any((np.asarray(p) == 0).any() for p in ps.values())


def test_keep_params_nonnegative_nan_stays_nan():
    tx = gradtx.keep_params_nonnegative()
    w = jnp.asarray([1.0, 1.0, 1.0])
    u, _ = tx.update(jnp.asarray([jnp.nan, -2.0, 0.5]), tx.init(w), w)
    assert np.isnan(np.asarray(u[0]))
    np.testing.assert_allclose(u[1:], [-1.0, 0.5])
    with pytest.raises(ValueError, match="keep_params_nonnegative: update needs params"):
        tx.update(w, tx.init(w))


def with_nans(grads: dict) -> dict:
    """Gradients with NaN at a few coordinates of some steps, and an infinity (which is kept)."""
    g = dict(grads)
    g["w"] = g["w"].at[3, 0, 1].set(jnp.nan).at[7].set(jnp.nan)
    g["s"] = g["s"].at[5].set(jnp.nan)
    g["b"] = g["b"].at[9, 2].set(jnp.inf)
    return g


def test_zero_nans_matches_optax_with_its_state():
    params = model()
    grads = with_nans(gradients(params))
    ours = trajectory(gradtx.zero_nans(), params, grads, lr=0.0)
    theirs = trajectory(optax.zero_nans(), params, grads, standard=True, lr=0.0)
    us = ours[0]
    np.testing.assert_array_equal(np.asarray(us["w"][7]), 0.0)  # a NaN step made zero
    assert float(us["w"][3, 0, 1]) == 0.0 and np.isinf(float(us["b"][9, 2]))  # inf kept
    np.testing.assert_array_equal(np.asarray(us["w"]), np.asarray(jnp.where(jnp.isnan(grads["w"]), 0, grads["w"])))
    for a, b in zip(jax.tree.leaves(ours[0]), jax.tree.leaves(theirs[0]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert_same_layout(ours[2], theirs[2])  # after the last step: no NaN in it


def test_zero_nans_found_nan_names_the_leaves():
    tx = gradtx.zero_nans()
    g = {"a": jnp.asarray([1.0, jnp.nan]), "b": jnp.ones(2), "c": jnp.asarray(jnp.inf)}
    state = tx.init(g)
    assert jax.tree.map(bool, state.found_nan) == {"a": False, "b": False, "c": False}
    _u, state = jax.jit(tx.update)(g, state)
    assert jax.tree.map(bool, state.found_nan) == {"a": True, "b": False, "c": False}
    with jax.numpy_dtype_promotion("standard"):
        assert_same_layout(state, optax.zero_nans().update(g, optax.zero_nans().init(g))[1])
