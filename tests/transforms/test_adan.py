"""Adan against optax (its coefficient, `diff_scale=1 - b2`) and against a NumPy loop of the paper's
Algorithm 1 as the authors' code (sail-sg/Adan) computes it, both weight-decay forms included."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.common import run
from tests.transforms.trajectories import check_against_optax

STEPS = 30


def test_adan_with_optax_coefficient_matches_optax():
    check_against_optax(gradtx.adan(3e-3, weight_decay=0.05, diff_scale=1 - 0.92), optax.adan(3e-3, weight_decay=0.05))


def adan_np(gs, w, lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0, weight_decay=0.0, prox=False):
    """The authors' loop (one leaf, float64): d uses the previous gradient, 0 at the first step;
    n uses g + b2 d; the update is m^ + b2 v^ over sqrt(n^) + eps. Returns the params after each step."""
    m = v = n = np.zeros_like(w)
    prev, out = None, []
    for t, g in enumerate(gs, start=1):
        d = np.zeros_like(g) if prev is None else g - prev
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * d
        n = b3 * n + (1 - b3) * (g + b2 * d) ** 2
        denom = np.sqrt(n / (1 - b3**t) + eps_root) + eps
        u = (m / (1 - b1**t) + b2 * v / (1 - b2**t)) / denom
        # prox: the paper and the authors' default no_prox=False; else no_prox=True (optax: decoupled)
        w = (w - lr * u) / (1 + lr * weight_decay) if prox else w * (1 - lr * weight_decay) - lr * u
        prev = g
        out.append(w)
    return np.stack(out)


def closed_loop(tx, w0, steps=STEPS):
    """gradtx's params on the loss 0.5 ||W - 1||^2 + a fixed noise, and the gradients it saw."""
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(steps, *w0.shape))
    w, state, ws, gs = jnp.asarray(w0), None, [], []
    state = tx.init(w)
    for k in range(steps):
        g = (w - 1.0) + noise[k]
        u, state = tx.update(g, state, w)
        w = gradtx.apply_updates(w, u)
        ws.append(np.asarray(w))
        gs.append(np.asarray(g))
    return np.stack(ws), gs


@pytest.mark.parametrize("prox", [False, True])
def test_adan_matches_the_authors_algorithm(prox):
    w0, lr, wd = np.linspace(-1, 1, 6).reshape(2, 3), 0.02, 0.1
    # The proximal form for a constant rate is the decoupled one at rate lr / (1 + lr wd).
    rate = lr / (1 + lr * wd) if prox else lr
    ours, gs = closed_loop(gradtx.adan(rate, weight_decay=wd, eps_root=0.0), w0)
    np.testing.assert_allclose(ours, adan_np(gs, w0, lr, weight_decay=wd, prox=prox), rtol=1e-12, atol=1e-14)


def test_default_differs_from_optax_from_the_second_step_only():
    """The gradient difference is 0 at the first step, so the two coefficients agree there."""
    grads = {"w": np.random.default_rng(0).normal(size=(3, 3, 4))}
    paper = run(gradtx.scale_by_adan(), grads)[0]["w"]
    theirs = run(optax.scale_by_adan(), grads, standard=True)[0]["w"]
    np.testing.assert_allclose(paper[0], theirs[0], rtol=1e-12)
    assert np.max(np.abs(paper[1:] - theirs[1:])) > 1e-2


def test_nan_gradients_give_nan_updates_and_stay_visible():
    tx = gradtx.adan(1e-2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    u, state = tx.update({"w": jnp.asarray([1.0, jnp.nan, 2.0])}, state, params)
    assert np.isnan(u["w"][1]) and np.all(np.isfinite(np.asarray(u["w"])[[0, 2]]))
    u, state = tx.update({"w": jnp.ones(3)}, state, params)
    assert np.isnan(u["w"][1])


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"^adan: b3 must be in \[0, 1\), got 1.0"):
        gradtx.adan(1e-3, b3=1.0)
    with pytest.raises(ValueError, match=r"^scale_by_adan: diff_scale must be in \[0, inf\)"):
        gradtx.scale_by_adan(diff_scale=-0.1)
