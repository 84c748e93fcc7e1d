"""ACProp against optax.contrib in float64 (rtol 1e-9) and float32, and its first steps against
the equations written out in NumPy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "acprop": lambda m, c: c.acprop(1e-2),
    "acprop-decay": lambda m, c: c.acprop(3e-2, b1=0.8, b2=0.99, eps=1e-8, weight_decay=1e-2),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-2  # the params moved
    if name == "acprop-decay":
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def test_the_denominator_holds_only_past_gradients():
    """u_t = g_t / (sqrt(s^_(t-1)) + eps), s^_0 = 1; s_t = b2 s_(t-1) + (1 - b2) (g_t - m_(t-1))^2 + eps_root."""
    b1, b2, eps, eps_root = 0.9, 0.99, 1e-8, 1e-12
    gs = np.asarray([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25], [2.0, 2.0]])
    tx = gradtx.scale_by_acprop(b1, b2, eps, eps_root)
    state = tx.init(jnp.zeros(2))
    m, s = np.zeros(2), np.zeros(2)
    for t, g in enumerate(gs, start=1):
        s_hat_prev = np.ones(2) if t == 1 else s / (1 - b2 ** (t - 1))
        want = g / (np.sqrt(s_hat_prev) + eps)
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps_root
        m = b1 * m + (1 - b1) * g
        u, state = tx.update(jnp.asarray(g), state)
        np.testing.assert_allclose(u, want, rtol=1e-13)
        np.testing.assert_allclose(state.nu, s, rtol=1e-13)
