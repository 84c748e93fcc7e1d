"""normalize_by_update_norm against optax and against u = s g / (||g|| + eps) in NumPy; zeros and NaN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from tests.transforms.trajectories import check_against_optax


def test_normalize_by_update_norm_matches_optax():
    check_against_optax(
        gradtx.normalize_by_update_norm(scale_factor=-0.05, eps=1e-3),
        optax.normalize_by_update_norm(scale_factor=-0.05, eps=1e-3),
    )


def test_the_update_has_the_global_norm_s():
    rng = np.random.default_rng(0)
    g = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4) + 1j * rng.normal(size=4)}
    u, _ = gradtx.normalize_by_update_norm(2.0, eps=0.0).update(jax.tree.map(jnp.asarray, g), gradtx.EmptyState())
    norm = np.sqrt(sum(np.sum(np.abs(x) ** 2) for x in g.values()))
    for key in g:
        np.testing.assert_allclose(u[key], 2.0 * g[key] / norm, rtol=1e-14)


def test_zero_gradients_give_zero_updates_with_zero_eps_and_nan_stays_nan():
    tx = gradtx.normalize_by_update_norm(eps=0.0)
    u, _ = tx.update({"w": jnp.zeros(3)}, tx.init({"w": jnp.zeros(3)}))
    assert np.all(np.asarray(u["w"]) == 0)
    d = jax.grad(lambda g: jnp.sum(tx.update({"w": g}, gradtx.EmptyState())[0]["w"]))(jnp.zeros(3))
    assert np.all(np.isfinite(np.asarray(d)))  # a zero derivative of ||g|| at 0, not inf * 0
    u, _ = tx.update({"w": jnp.asarray([1.0, jnp.nan])}, gradtx.EmptyState())
    assert np.all(np.isnan(np.asarray(u["w"])))
