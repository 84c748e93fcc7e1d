"""SGD's dampening against torch.optim.SGD in float64 (rtol 1e-10, every step), and trace's dampening
against a NumPy loop of t <- mu t + (1 - d) g (t_1 = g), schedules and Nesterov included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import gradtx
from tests.transforms.common import run

STEPS = 30
_rng = np.random.default_rng(0)
X, Y = _rng.normal(size=(8, 3)), _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}


def loss(p: dict) -> torch.Tensor:
    prediction = p["s"] * torch.tanh(torch.as_tensor(X) @ p["w"] + p["b"])
    return torch.mean((prediction - torch.as_tensor(Y)) ** 2) + 0.01 * torch.sum(p["w"] ** 2)


@pytest.mark.parametrize("momentum, dampening", [(0.9, 0.5), (0.5, 0.9)])
def test_matches_torch_sgd_with_dampening(momentum, dampening):
    theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INIT.items()}
    optimizer = torch.optim.SGD(list(theirs.values()), lr=0.1, momentum=momentum, dampening=dampening, foreach=False)
    tx = gradtx.sgd(0.1, momentum=momentum, dampening=dampening)
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state, step = tx.init(params), jax.jit(tx.update)
    for k in range(STEPS):
        optimizer.zero_grad()
        loss(theirs).backward()
        grads = {key: jnp.asarray(p.grad.numpy().copy()) for key, p in theirs.items()}
        optimizer.step()
        updates, state = step(grads, state, params)
        params = gradtx.apply_updates(params, updates)
        for key, p in theirs.items():
            np.testing.assert_allclose(params[key], p.detach().numpy(), rtol=1e-10, atol=1e-14, err_msg=f"{key}, {k}")


def ramp(count):
    return jnp.minimum(0.5 + 0.02 * count.astype(jnp.float64), 0.9)


def trace_np(gs, mu, d, nesterov):
    t, out = 0.0, []
    for k, g in enumerate(gs):
        t = g if k == 0 else mu(k) * t + (1 - d) * g  # torch: the first buffer is g itself
        out.append(g + mu(k + 1) * t if nesterov else t)
    return np.stack(out)


@pytest.mark.parametrize("nesterov", [False, True])
def test_trace_with_dampening_and_a_schedule_matches_numpy(nesterov):
    g = np.random.default_rng(1).normal(size=(STEPS, 2, 3))
    ours = run(gradtx.trace(ramp, nesterov=nesterov, dampening=0.3), {"w": g})[0]["w"]
    mu = lambda k: min(0.5 + 0.02 * k, 0.9)
    np.testing.assert_allclose(ours, trace_np(list(g), mu, 0.3, nesterov), rtol=1e-13)


def test_zero_dampening_is_the_plain_heavy_ball():
    assert gradtx.sgd(0.1, momentum=0.9, dampening=0.0) == gradtx.sgd(0.1, momentum=0.9)
    assert repr(gradtx.trace(0.9, dampening=0)) == repr(gradtx.trace(0.9)) == "trace(decay=0.9, nesterov=False)"


def test_dampening_without_momentum_is_an_error():
    with pytest.raises(ValueError, match=r"^sgd: dampening damps the momentum's trace, and there is none"):
        gradtx.sgd(0.1, dampening=0.5)
    with pytest.raises(ValueError, match=r"^sgd: dampening must be in \[0, 1\], got 1.5"):
        gradtx.sgd(0.1, momentum=0.9, dampening=1.5)
