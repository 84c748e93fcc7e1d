"""One small problem run by a gradtx transformation and by a torch optimizer, for the authors'-package tests.

A two-layer tanh network in torch's layout (y = x W^T) with a bias, a batch of matrices (a 3-D
leaf, which factored optimizers treat as matrices over its last two dimensions) and a scalar:
matrix, vector and 0-d leaves. gradtx's steps run jitted in one `lax.scan` (one compilation a
trajectory); torch's run eagerly with float64 (or float32) tensors. Both sides start from the same
params and differentiate the same loss, written once for both array libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

_rng = np.random.default_rng(11)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {
    "w1": _rng.normal(size=(6, 3)),
    "w2": _rng.normal(size=(4, 6)) * 0.5,
    "k": _rng.normal(size=(2, 3, 5)),
    "b": np.full(4, 0.1),
    "s": np.asarray(0.7),
}


def loss(p: dict, tanh: Callable, sin: Callable, xs: Any, ys: Any) -> Any:
    fit = ((tanh(xs @ p["w1"].T) @ p["w2"].T + p["b"] - ys) ** 2).mean()
    return fit + (sin(p["k"] * p["s"]) ** 2).mean() + 0.1 * (p["s"] - 0.2) ** 2


def run_gradtx(tx: Any, steps: int, dtype: Any = jnp.float64) -> dict:
    """The params after each of `steps` steps of tx: leaf name -> array (steps, *shape), float64."""
    xs, ys = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    grad = jax.grad(lambda p: loss(p, jnp.tanh, jnp.sin, xs, ys))

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), params

    params = {k: jnp.asarray(v, dtype) for k, v in INIT.items()}
    _, path = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(params)
    return {k: np.asarray(v, np.float64) for k, v in path.items()}


def run_torch(make: Callable[[list], Any], steps: int, dtype: str = "float64") -> dict:
    """The same for a torch optimizer `make(list of params)`, the params in INIT's order."""
    import torch

    dt = getattr(torch, dtype)
    params = {k: torch.tensor(v, dtype=dt, requires_grad=True) for k, v in INIT.items()}
    optimizer = make(list(params.values()))
    xs, ys = torch.tensor(X, dtype=dt), torch.tensor(Y, dtype=dt)
    path: dict = {k: [] for k in params}
    for _ in range(steps):
        optimizer.zero_grad()
        loss(params, torch.tanh, torch.sin, xs, ys).backward()
        optimizer.step()
        for k, v in params.items():
            path[k].append(v.detach().numpy().astype(np.float64))
    return {k: np.stack(v) for k, v in path.items()}


def max_relative_error(ours: dict, theirs: dict) -> float:
    """The largest |ours - theirs| / |theirs| over every leaf and step (where theirs != 0)."""
    return max(
        float(np.max(np.abs(ours[k] - theirs[k]) / np.where(theirs[k] == 0, 1, np.abs(theirs[k])))) for k in theirs
    )


def assert_paths_equal(ours: dict, theirs: dict, what: str, rtol: float = 1e-10) -> None:
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=1e-14, err_msg=f"{what} {k}")


def assert_float32_no_less_accurate(ours32: dict, theirs32: dict, truth64: dict, what: str) -> None:
    """Leaf by leaf, gradtx's float32 path is no farther from the float64 truth than the reference's
    float32 path, plus four float32 ulps of the leaf's scale (as tests/test_optax_reference.py holds
    gradtx to optax's)."""
    for k, truth in truth64.items():
        ulps = 4 * float(np.finfo(np.float32).eps) * (float(np.max(np.abs(truth))) or 1.0)
        error_ours, error_theirs = float(np.max(np.abs(ours32[k] - truth))), float(np.max(np.abs(theirs32[k] - truth)))
        assert error_ours <= error_theirs + ulps, f"{what} {k}: float32 error {error_ours:.3g} vs {error_theirs:.3g}"
