"""DoG against optax (where optax's state and shapes allow: no rank-0 leaf, its float32 copy of W_0
asked for explicitly) and against a NumPy loop of layer-wise DoG (Ivgi et al., 2023, Algorithm 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.trajectories import (
    assert_close,
    check_against_optax,
    distances,
    model,
    optax_trajectory,
    trajectory,
)


def test_matches_optax_with_its_float32_copy_of_the_initial_params():
    """param_dtype=float32 is optax's default. optax's float32 run makes float64 state whenever x64
    is on (its G starts as jnp.zeros(1)), so its float32 reference runs with x64 off."""
    check_against_optax(
        gradtx.chain(gradtx.scale_by_distance_over_gradients(param_dtype=jnp.float32), gradtx.scale(-0.5)),
        optax.chain(optax.scale_by_distance_over_gradients(), optax.scale(-0.5)),
        scalar=False,
        optax_x64_in_float32=False,
    )


def test_default_keeps_float64_initial_params_where_optax_rounds_them():
    """With optax's float32 W_0, a float64 run's distances ||W - W_0|| carry float32 rounding."""
    p64 = model(jnp.float64, scalar=False)
    dog = lambda m, **kw: m.chain(m.scale_by_distance_over_gradients(**kw), m.scale(-0.5))
    exact = optax_trajectory(dog(optax, param_dtype=jnp.float64), p64)
    rounded = optax_trajectory(dog(optax), p64)
    assert_close(trajectory(dog(gradtx), p64), exact, 1e-9, "default: ")
    assert max(distances(rounded, exact).values()) > 1e-4  # the float32 copy costs digits (1.6e-3 here)
    state = gradtx.scale_by_distance_over_gradients().init(p64)
    assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(state))


def dog_np(gs, ws, reps_rel=1e-6, eps=1e-8, s=1.0):
    """One leaf: r_0 = reps_rel (1 + ||W_0||); r_t = max(r_{t-1}, ||W_t - W_0||); G += ||g||^2;
    u = s r / sqrt(G + eps) g."""
    r, sum_sq, out = reps_rel * (1 + np.linalg.norm(ws[0])), 0.0, []
    for g, w in zip(gs, ws, strict=True):
        r = max(r, np.linalg.norm(w - ws[0]))
        sum_sq += np.sum(g**2)
        out.append(s * r / np.sqrt(sum_sq + eps) * g)
    return out


@pytest.mark.parametrize("shape", [(), (3, 4)], ids=str)
def test_matches_the_paper(shape):
    rng = np.random.default_rng(1)
    tx = gradtx.scale_by_distance_over_gradients(reps_rel=1e-3, global_scale=-1.0)
    w = jnp.asarray(rng.normal(size=shape))
    state, ws, gs, us = tx.init(w), [], [], []
    for _ in range(15):
        g = jnp.asarray(rng.normal(size=shape))
        u, state = tx.update(g, state, w)
        ws.append(np.asarray(w))
        gs.append(np.asarray(g))
        us.append(np.asarray(u))
        w = gradtx.apply_updates(w, u)
    assert us[0].shape == shape
    np.testing.assert_allclose(np.stack(us), np.stack(dog_np(gs, ws, 1e-3, s=-1.0)), rtol=1e-12)


def test_zero_gradients_give_zero_updates_with_zero_eps():
    tx = gradtx.scale_by_distance_over_gradients(eps=0.0)
    w = {"w": jnp.ones(3)}
    u, _ = tx.update({"w": jnp.zeros(3)}, tx.init(w), w)
    assert np.all(np.asarray(u["w"]) == 0)
