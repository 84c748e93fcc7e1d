"""COCOB against optax.contrib in float64 (rtol 1e-9) and float32, and against a NumPy loop of the
paper's Algorithm 2 (Orabona & Tommasi, 2017), written per coordinate."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "cocob": lambda m, c: c.cocob(),
    "cocob-decay": lambda m, c: c.cocob(0.5, alpha=20.0, weight_decay=1e-2),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-2  # the params moved
    if name == "cocob":
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def cocob_numpy(x0: np.ndarray, grad, steps: int, alpha: float = 100.0, eps: float = 1e-8) -> list:
    """Algorithm 2 of the paper, coordinate by coordinate: L, G, Reward, theta; w = w_1 + beta (L + Reward)."""
    x = x0.copy()
    big_l, big_g, reward, theta = np.full_like(x, eps), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    out = []
    for k in range(steps):
        g = grad(x, k)
        for i in range(x.size):
            big_l[i] = max(big_l[i], abs(g[i]))
            big_g[i] += abs(g[i])
            reward[i] = max(reward[i] - (x[i] - x0[i]) * g[i], 0.0)
            theta[i] += -g[i]
            beta = theta[i] / (big_l[i] * max(big_g[i] + big_l[i], alpha * big_l[i]))
            x[i] = x0[i] + beta * (big_l[i] + reward[i])
        out.append(x.copy())
    return out


def test_matches_the_papers_algorithm():
    x0 = np.linspace(-1.0, 1.0, 5)
    noise = np.random.default_rng(1).normal(size=(25, 5))
    grad = lambda x, k: (x - 0.5) + 0.3 * noise[k]
    want = cocob_numpy(x0, grad, 25)
    tx, x = gradtx.cocob(), jnp.asarray(x0)
    state = tx.init(x)
    for k in range(25):
        u, state = tx.update(jnp.asarray(grad(np.asarray(x), k)), state, x)
        x = x + u
        np.testing.assert_allclose(x, want[k], rtol=1e-12, atol=1e-15)


def test_complex_params_are_refused_and_nan_stays_visible():
    with pytest.raises(TypeError, match=r"scale_by_cocob: complex params .* split_real_and_imaginary\(cocob"):
        gradtx.cocob().init({"z": jnp.ones(2, jnp.complex64)})
    tx = gradtx.split_real_and_imaginary(gradtx.cocob())  # the way to run it on complex params
    z = jnp.asarray([1 + 1j, -2j])
    u, _ = tx.update(z, tx.init(z), z)
    assert u.dtype == z.dtype and bool(jnp.all(jnp.isfinite(u)))
    params = {"w": jnp.ones(2)}
    u, _ = gradtx.cocob().update({"w": jnp.asarray([jnp.nan, 1.0])}, gradtx.cocob().init(params), params)
    assert bool(jnp.isnan(u["w"][0])) and bool(jnp.isfinite(u["w"][1]))
    with pytest.raises(ValueError, match=r"cocob: eps must be in \(0, inf\), got 0.0"):
        gradtx.cocob(eps=0.0)
