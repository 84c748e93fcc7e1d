"""Fromage against optax (a number and a schedule as learning rate) and against the paper's update
W <- (W - eta ||W|| / ||g|| g) / sqrt(1 + eta^2) (Bernstein et al., 2020, Algorithm 1) in NumPy."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.trajectories import check_against_optax


def test_fromage_matches_optax():
    check_against_optax(gradtx.fromage(0.05), optax.fromage(0.05))


def halving(count):
    """0.1 halved every 10 steps, in float64 (x64 is on): both libraries get the same float64 rates."""
    return 0.1 * 0.5 ** (count.astype(jnp.float64) / 10)


def test_fromage_with_a_schedule_matches_optax():
    check_against_optax(gradtx.fromage(halving), optax.fromage(halving))


def test_fromage_matches_the_paper():
    rng = np.random.default_rng(0)
    w = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
    eta, tx = 0.1, gradtx.fromage(0.1, min_norm=0.0)
    params, ref = jax_params(w), dict(w)
    state = tx.init(params)
    for k in range(10):
        g = {key: rng.normal(size=v.shape) for key, v in w.items()}
        u, state = tx.update(jax_params(g), state, params)
        params = gradtx.apply_updates(params, u)
        for key in ref:
            ratio = np.linalg.norm(ref[key]) / np.linalg.norm(g[key])
            ref[key] = (ref[key] - eta * ratio * g[key]) / np.sqrt(1 + eta**2)
        for key in ref:
            np.testing.assert_allclose(params[key], ref[key], rtol=1e-12, err_msg=f"{key} at step {k}")


def jax_params(tree: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in tree.items()}


def test_small_rates_keep_the_shrink_exact():
    """optax's decay 1 / sqrt(1 + eta^2) - 1 loses digits at small eta; eta / (1 + sqrt(1 + eta^2)) does not."""
    tx = gradtx.fromage(1e-6)
    decay, rate = tx.hyperparams.args[1].hyperparams.weight_decay, tx.hyperparams.args[2].hyperparams.learning_rate
    assert rate * decay == pytest.approx(0.5e-12, rel=1e-12, abs=0)  # 1 - 1 / sqrt(1 + eta^2) = eta^2 / 2 - ...
    assert 1 - 1 / math.sqrt(1 + 1e-12) != pytest.approx(0.5e-12, rel=1e-6, abs=0)  # optax's form, cancelled
