"""Optimistic gradient methods against optax and against a NumPy loop of u = (alpha + beta) g - beta g_prev,
and the saddle point that plain gradient descent circles and optimism reaches."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.common import run
from tests.transforms.trajectories import check_against_optax


def test_optimistic_gradient_descent_matches_optax():
    check_against_optax(
        gradtx.optimistic_gradient_descent(0.1, alpha=0.7, beta=0.4),
        optax.optimistic_gradient_descent(0.1, alpha=0.7, beta=0.4),
    )


def test_optimistic_adam_v2_matches_optax():
    check_against_optax(
        gradtx.optimistic_adam_v2(1e-2, alpha=0.8, beta=0.5, b2=0.99),
        optax.optimistic_adam_v2(1e-2, alpha=0.8, beta=0.5, b2=0.99),
    )


def test_optimistic_adam_matches_optax_deprecated_interface():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax deprecates it for optimistic_adam_v2
        theirs = optax.optimistic_adam(1e-2, optimism=5e-3, nesterov=False)
    check_against_optax(gradtx.optimistic_adam(1e-2, optimism=5e-3, nesterov=False), theirs)


def test_optimistic_adam_is_v2_with_unit_rate():
    grads = {"w": np.random.default_rng(1).normal(size=(10, 3))}
    v1 = run(gradtx.optimistic_adam(1e-2), grads)[0]["w"]
    v2 = run(gradtx.optimistic_adam_v2(1.0, alpha=1e-2, beta=1e-2), grads)[0]["w"]
    np.testing.assert_allclose(v1, v2, rtol=1e-14)


def test_scale_by_optimistic_gradient_matches_numpy():
    g = np.random.default_rng(2).normal(size=(12, 2, 3))
    alpha, beta = 0.6, 0.3
    want = [(alpha + beta) * g[k] - beta * (g[k - 1] if k else g[0]) for k in range(len(g))]
    ours = run(gradtx.scale_by_optimistic_gradient(alpha, beta), {"w": g})[0]["w"]
    np.testing.assert_allclose(ours, np.stack(want), rtol=1e-14)


def test_optimism_converges_on_the_bilinear_game_where_gradient_descent_spirals_out():
    """min_x max_y x y: simultaneous gradient descent-ascent spirals away from (0, 0); OGDA converges
    (Daskalakis et al., 2018)."""

    def play(tx, steps=400):
        z = jnp.asarray([1.0, 1.0])
        state = tx.init(z)
        for _ in range(steps):
            g = jnp.asarray([z[1], -z[0]])  # d/dx (x y), -d/dy (x y): descent for x, ascent for y
            u, state = tx.update(g, state, z)
            z = gradtx.apply_updates(z, u)
        return float(jnp.linalg.norm(z))

    start = float(np.sqrt(2.0))
    assert play(gradtx.sgd(0.1)) > 1.5 * start  # |z| grows by sqrt(1 + eta^2) a step
    assert play(gradtx.optimistic_gradient_descent(0.1)) < 0.2 * start  # and shrinks here


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"^optimistic_adam: optimism must be in \[0, inf\), got -1"):
        gradtx.optimistic_adam(1e-3, optimism=-1)
    with pytest.raises(
        TypeError, match=r"^optimistic_adam: learning_rate must be a number in \[0, inf\), not a schedule"
    ):
        gradtx.optimistic_adam(gradtx.constant_schedule(1e-3))
    with pytest.raises(ValueError, match=r"^optimistic_gradient_descent: beta must be in \[0, inf\)"):
        gradtx.optimistic_gradient_descent(0.1, beta=-0.5)
