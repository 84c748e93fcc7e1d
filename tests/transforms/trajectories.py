"""Closed-loop trajectories against optax, for the issue-10 transformation tests.

A multi-leaf model (a matrix, a vector, a list holding a 3-d array and optionally a scalar) whose
gradients depend on the params, g_k = 0.5 (W - target) + noise_k, so that the params move and the
transformations that read them (decay, trust ratios, distances) see them change. STEPS steps in
one jitted scan. `check_against_optax` holds a transformation to optax's in two ways:

- float64 (x64 is on in the suite): every param and update of every step equal to rtol 1e-9
  (elementwise, with a floor of 1e-2 of the leaf's scale for coordinates that cross zero);
- float32: gradtx's distance to optax's float64 trajectory is no larger than optax's own float32
  distance, plus four float32 ulps of the leaf's scale.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from gradtx.testing import pseudo_gradients

STEPS = 32
F32_ULP = float(np.finfo(np.float32).eps)


def model(dtype, scalar: bool = True) -> dict:
    layers = [jnp.linspace(0.5, -0.5, 24).reshape(2, 3, 4).astype(dtype)]
    if scalar:
        layers.append(jnp.asarray(0.3, dtype))
    return {
        "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4).astype(dtype),
        "b": jnp.full((4,), 0.1, dtype),
        "layers": layers,
    }


def target(params: dict) -> dict:
    return jax.tree.map(lambda p: jnp.full_like(p, 0.25), params)


def trajectory(tx, params: dict, apply: bool = True, steps: int = STEPS) -> tuple:
    """(updates, params) after each step, stacked on axis 0. `apply`: params += updates (an
    optimizer); else params -= 0.01 updates (a preconditioner without a learning rate)."""
    noise = jax.tree.map(lambda *xs: jnp.stack(xs), *[pseudo_gradients(params, k) for k in range(steps)])
    goal = target(params)

    @jax.jit
    def run(params, noise):
        def step(carry, n):
            p, state = carry
            g = jax.tree.map(lambda w, t, e: 0.5 * (w - t) + e, p, goal, n)
            u, state = tx.update(g, state, p)
            p = gradtx.apply_updates(p, u) if apply else jax.tree.map(lambda w, v: w - 0.01 * v, p, u)
            return (p, state), (u, p)

        return jax.lax.scan(step, (params, tx.init(params)), noise)[1]

    return run(params, noise)


def optax_trajectory(tx, params: dict, apply: bool = True, x64: bool = True) -> tuple:
    """optax's trajectory: with standard dtype promotion (optax relies on it); `x64=False` runs it
    with 64-bit types off, for optax code that makes float64 constants whenever x64 is on."""
    context = contextlib.nullcontext() if x64 else jax.enable_x64(False)
    with jax.numpy_dtype_promotion("standard"), context:
        return jax.tree.map(np.asarray, trajectory(tx, params, apply))


def _pairs(actual, expected):
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        yield jax.tree_util.keystr(path), np.asarray(a, np.float64), np.asarray(b, np.float64)


def assert_close(actual, expected, rtol: float, what: str) -> None:
    for path, a, b in _pairs(actual, expected):
        assert a.shape == b.shape, f"{what}{path}: shape {a.shape}, expected {b.shape}"
        floor = 1e-2 * np.max(np.abs(b), initial=0.0)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * floor, err_msg=f"{what}{path}")


def distances(actual, truth) -> dict:
    """Per leaf, max |actual - truth| over the trajectory, relative to the leaf's scale max |truth|."""
    return {
        path: np.max(np.abs(a - b), initial=0.0) / np.max(np.abs(b), initial=1e-30)
        for path, a, b in _pairs(actual, truth)
    }


def assert_float32_no_worse(ours32, theirs32, truth64, what: str) -> None:
    ours, theirs = distances(ours32, truth64), distances(theirs32, truth64)
    for path in ours:
        assert ours[path] <= theirs[path] + 4 * F32_ULP, (
            f"{what}{path}: gradtx float32 is {ours[path]:.3g} from optax float64, optax float32 {theirs[path]:.3g}"
        )


def check_against_optax(ours, theirs, apply: bool = True, scalar: bool = True, optax_x64_in_float32: bool = True):
    """ours (gradtx) against theirs (optax) in float64 at rtol 1e-9 and in float32 (see the docstring)."""
    p64, p32 = model(jnp.float64, scalar), model(jnp.float32, scalar)
    truth = optax_trajectory(theirs, p64, apply)
    assert_close(trajectory(ours, p64, apply), truth, 1e-9, f"{ours!r} float64 vs optax: ")
    ours32 = trajectory(ours, p32, apply)
    for leaf in jax.tree.leaves(ours32):
        assert leaf.dtype == jnp.float32, f"{ours!r}: a float32 run gave {leaf.dtype}"
    theirs32 = optax_trajectory(theirs, p32, apply, x64=optax_x64_in_float32)
    assert_float32_no_worse(ours32, theirs32, truth, f"{ours!r} float32: ")
