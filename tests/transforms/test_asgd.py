"""asgd against torch.optim.ASGD in float64 (params and averaged params, rtol 1e-10, every step), and
asgd_averaged_params inside the wrappers an optimizer state can nest it in."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import gradtx

STEPS = 30
_rng = np.random.default_rng(0)
X, Y = _rng.normal(size=(8, 3)), _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}


def loss(p: dict) -> torch.Tensor:
    prediction = p["s"] * torch.tanh(torch.as_tensor(X) @ p["w"] + p["b"])
    return torch.mean((prediction - torch.as_tensor(Y)) ** 2)


@contextlib.contextmanager
def torch_float64():
    """torch keeps ASGD's eta and mu in its default dtype: float64 here, so that they are not rounded."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def run_both(tx, **torch_args):
    """(gradtx params, gradtx averages, torch params, torch averages) after each step, torch's gradients for both."""
    with torch_float64():
        theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INIT.items()}
        optimizer = torch.optim.ASGD(list(theirs.values()), foreach=False, **torch_args)
        params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
        state, step = tx.init(params), jax.jit(tx.update)
        out = []
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss(theirs).backward()
            grads = {k: jnp.asarray(p.grad.numpy().copy()) for k, p in theirs.items()}
            optimizer.step()
            updates, state = step(grads, state, params)
            params = gradtx.apply_updates(params, updates)
            ours_avg = gradtx.asgd_averaged_params(state)
            their_avg = {k: optimizer.state[p]["ax"].numpy().copy() for k, p in theirs.items()}
            out.append((params, ours_avg, {k: p.detach().numpy().copy() for k, p in theirs.items()}, their_avg))
    return out


@pytest.mark.parametrize(
    "args",
    [
        dict(lr=0.05, lambd=0.01, alpha=0.75, t0=5.0, weight_decay=0.02),  # averaging from step 7 on
        dict(lr=0.1, t0=0.0, alpha=0.5),  # averaging from the start
        dict(lr=0.01),  # torch's defaults but lr: t0 = 1e6, the average is the iterate
    ],
    ids=["decay,t0=5", "t0=0", "defaults"],
)
def test_matches_torch_asgd_with_its_average(args):
    tx = gradtx.asgd(args["lr"], **{k: v for k, v in args.items() if k != "lr"})
    for k, (ours, ours_avg, theirs, their_avg) in enumerate(run_both(tx, **args)):
        for key in INIT:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, atol=1e-14, err_msg=f"{key} at step {k}")
            np.testing.assert_allclose(ours_avg[key], their_avg[key], rtol=1e-10, atol=1e-14, err_msg=f"ax {key}, {k}")


def test_the_average_is_the_mean_of_the_iterates_after_t0():
    """After k > t0 + 1 updates, ax is the uniform average of the iterates W_{t0+2}, ..., W_k (Polyak)."""
    tx, t0 = gradtx.asgd(0.1, lambd=0.0, t0=3), 3
    w = {"w": jnp.asarray([1.0, -2.0])}
    state, iterates = tx.init(w), []
    for k in range(10):
        u, state = tx.update({"w": jnp.asarray([np.sin(k), np.cos(k)])}, state, w)
        w = gradtx.apply_updates(w, u)
        iterates.append(np.asarray(w["w"]))
    np.testing.assert_allclose(gradtx.asgd_averaged_params(state)["w"], np.mean(iterates[t0 + 1 :], axis=0), rtol=1e-14)


def test_averaged_params_are_found_inside_wrappers():
    params = {"w": jnp.ones(3, jnp.float32)}
    for tx in [
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.asgd(0.1, t0=0)),
        gradtx.MultiSteps(gradtx.asgd(0.1, t0=0), 2).gradient_transformation(),
        gradtx.apply_if_finite(gradtx.asgd(0.1, t0=0), 3),
    ]:
        state = tx.init(params)
        for k in range(4):
            u, state = tx.update({"w": jnp.full(3, float(k), jnp.float32)}, state, params)
            params = gradtx.apply_updates(params, u)
        avg = gradtx.asgd_averaged_params(state)
        assert avg["w"].dtype == jnp.float32 and avg["w"].shape == (3,), tx


def test_averaged_params_name_what_is_missing():
    with pytest.raises(ValueError, match="asgd_averaged_params: the state holds 0 asgd states"):
        gradtx.asgd_averaged_params(gradtx.sgd(0.1).init({"w": jnp.ones(2)}))


def test_bfloat16_params_keep_a_float32_average():
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    tx = gradtx.asgd(0.1, t0=0)
    state = tx.init(params)
    u, state = tx.update({"w": jnp.ones(4, jnp.bfloat16)}, state, params)
    assert u["w"].dtype == jnp.bfloat16 and state.ax["w"].dtype == jnp.float32


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"^asgd: alpha must be in \[0, inf\), got -0.5"):
        gradtx.asgd(0.1, alpha=-0.5)
    with pytest.raises(TypeError, match=r"^asgd: learning_rate must be a number in \[0, inf\), not a schedule"):
        gradtx.asgd(gradtx.constant_schedule(0.1))
