"""nadamw and adamaxw against optax (float64 at rtol 1e-9, float32 no less accurate than optax's), and
nadamw's first step against NAdam's equations written out."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from tests.registry import decay_mask
from tests.transforms.trajectories import check_against_optax


def test_nadamw_matches_optax():
    check_against_optax(
        gradtx.nadamw(1e-2, b2=0.99, weight_decay=0.05, mask=decay_mask),
        optax.nadamw(1e-2, b2=0.99, weight_decay=0.05, mask=decay_mask),
    )


def test_adamaxw_matches_optax():
    check_against_optax(gradtx.adamaxw(1e-2, weight_decay=0.05), optax.adamaxw(1e-2, weight_decay=0.05))


def test_nadamw_first_step():
    """t = 1: m = (1 - b1) g, v = (1 - b2) g^2; m^ = b1 m / (1 - b1^2) + (1 - b1) g / (1 - b1);
    u = -lr (m^ / (sqrt(v^) + eps) + wd W)."""
    b1, b2, lr, wd, eps = 0.9, 0.999, 0.1, 0.01, 1e-8
    w, g = jnp.asarray([1.0, -2.0, 0.5]), jnp.asarray([0.3, 0.2, -1.0])
    tx = gradtx.nadamw(lr, weight_decay=wd)
    u, _ = tx.update(g, tx.init(w), w)
    g_, w_ = np.asarray(g), np.asarray(w)
    m_hat = b1 * (1 - b1) * g_ / (1 - b1**2) + (1 - b1) * g_ / (1 - b1)
    v_hat = (1 - b2) * g_**2 / (1 - b2)
    np.testing.assert_allclose(u, -lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * w_), rtol=1e-13)
