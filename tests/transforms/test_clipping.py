"""clip and clip_by_global_norm against NumPy and optax; zero thresholds and zero gradients stay finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 30
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def gradient_steps(dtype=np.float64, seed: int = 0) -> dict:
    """Gradients for STEPS steps (leading axis), their size swept from 0.05x to 3x so that the
    global norm lies below the thresholds on some steps and above on others; step 0 is all zero."""
    rng = np.random.default_rng(seed)
    size = np.linspace(0.05, 3.0, STEPS)
    size[0] = 0.0
    return {
        k: (rng.normal(size=(STEPS, *s)) * size.reshape(-1, *[1] * len(s))).astype(dtype) for k, s in SHAPES.items()
    }


def run(tx, grads: dict, standard: bool = False) -> dict:
    """tx's updates for each step of `grads` (stacked), one compiled scan."""
    params = jax.tree.map(lambda g: jnp.zeros_like(g[0]), grads)

    def scan(gs):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        return jax.lax.scan(step, tx.init(params), gs)[1]

    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))
    return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))


def assert_close(ours: dict, reference: dict, rtol: float, atol: float = 0.0) -> None:
    for key in reference:
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol, atol, err_msg=key)


def clip_by_global_norm_np(grads: dict, c: float) -> dict:
    """u = g * c / ||g|| if ||g|| > c else g, the norm over all leaves of one step."""
    out = {k: np.empty_like(g) for k, g in grads.items()}
    for step in range(STEPS):
        norm = np.sqrt(sum(np.sum(g[step] ** 2) for g in grads.values()))
        for k, g in grads.items():
            out[k][step] = g[step] * c / norm if norm > c else g[step]
    return out


@pytest.mark.parametrize("max_delta", [0.0, 0.5])
def test_clip_matches_numpy(max_delta):
    grads = gradient_steps()
    expected = {k: np.minimum(np.maximum(g, -max_delta), max_delta) for k, g in grads.items()}
    assert_close(run(gradtx.clip(max_delta), grads), expected, 0.0)


@pytest.mark.parametrize("max_norm", [0.0, 1.0, 4.0])
def test_clip_by_global_norm_matches_numpy(max_norm):
    grads = gradient_steps()
    expected = clip_by_global_norm_np(grads, max_norm)
    if max_norm == 4.0:  # the sweep must clip some steps and leave others alone
        norms = np.sqrt(sum(np.sum(g**2, axis=tuple(range(1, g.ndim))) for g in grads.values()))
        assert (norms > 4.0).any() and (norms[1:] < 4.0).any()
    assert_close(run(gradtx.clip_by_global_norm(max_norm), grads), expected, 1e-12)


def test_global_norm_is_over_all_leaves():
    """Each leaf below the threshold, the tree above it: every leaf is scaled by the same factor."""
    g = {"a": jnp.array([3.0, 0.0], jnp.float64), "b": jnp.array([0.0, 4.0], jnp.float64)}
    tx = gradtx.clip_by_global_norm(4.5)
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["a"], [3.0 * 0.9, 0.0], rtol=1e-12)
    np.testing.assert_allclose(u["b"], [0.0, 4.0 * 0.9], rtol=1e-12)


@pytest.mark.parametrize(
    "make",
    [lambda m: m.clip(0.5), lambda m: m.clip_by_global_norm(1.0), lambda m: m.clip_by_global_norm(4.0)],
    ids=["clip", "global-norm-1", "global-norm-4"],
)  # fmt: skip
def test_matches_optax(make):
    grads = gradient_steps(np.float32)
    ours = run(make(gradtx), grads)
    assert all(u.dtype == jnp.float32 for u in ours.values())
    assert_close(ours, run(make(optax), grads, standard=True), 1e-5, 1e-6)


def test_zero_threshold_and_zero_gradients_are_finite():
    """optax gives NaN for max_norm = 0 with zero gradients (0 / 0) and NaN gradients through update
    at zero gradients; gradtx gives zeros, and finite derivatives."""
    zeros = {"w": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    ones = jax.tree.map(jnp.ones_like, zeros)
    for tx in (gradtx.clip_by_global_norm(0.0), gradtx.clip(0.0)):
        for g in (zeros, ones):
            u, _ = jax.jit(tx.update)(g, tx.init(g))
            assert all((np.asarray(x) == 0).all() for x in jax.tree.leaves(u)), tx
    for max_norm in (0.0, 1.0):
        tx = gradtx.clip_by_global_norm(max_norm)

        def total(w, tx=tx):
            return jnp.sum(tx.update({"w": w}, tx.init({"w": w}))[0]["w"])

        for w in (jnp.zeros(3, jnp.float32), jnp.full(3, 2.0, jnp.float32), jnp.full(3, 0.1, jnp.float32)):
            assert np.isfinite(np.asarray(jax.grad(total)(w))).all(), (max_norm, w)
        # Below the threshold the map is the identity, so its derivative is 1 per coordinate.
        if max_norm:
            np.testing.assert_allclose(jax.grad(total)(jnp.zeros(3, jnp.float32)), np.ones(3))


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: gradtx.clip(-1.0), ValueError, "clip: max_delta must be in [0, inf), got -1.0"),
        (
            lambda: gradtx.clip_by_global_norm(-0.5),
            ValueError,
            "clip_by_global_norm: max_norm must be in [0, inf), got -0.5",
        ),
        (lambda: gradtx.clip(float("nan")), ValueError, "clip: max_delta must be in [0, inf), got nan"),
        (lambda: gradtx.clip(lambda k: 1.0), TypeError, "clip: max_delta must be a number"),  # type: ignore[arg-type]
    ],
)
def test_validation_messages(build, error, message):
    with pytest.raises(error) as e:
        build()
    assert str(e.value).startswith(message)


def test_bf16_keeps_dtype_and_none_leaves_pass_through():
    g = {"w": jnp.full((2, 3), 3.0, jnp.bfloat16), "frozen": None, "b": jnp.ones(3, jnp.bfloat16)}
    for tx in (gradtx.clip(1.0), gradtx.clip_by_global_norm(1.0)):
        u, state = jax.jit(tx.update)(g, tx.init(g))
        assert u["frozen"] is None and state == gradtx.EmptyState(), tx
        assert u["w"].dtype == u["b"].dtype == jnp.bfloat16, tx
    u, _ = gradtx.clip_by_global_norm(1.0).update(g, gradtx.EmptyState())
    norm = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in (u["w"], u["b"])))
    np.testing.assert_allclose(norm, 1.0, rtol=1e-2)  # bfloat16 resolution


def test_max_norm_may_be_traced_under_vmap():
    g = {"w": jnp.array([3.0, 4.0], jnp.float32)}
    out = jax.vmap(lambda c: gradtx.clip_by_global_norm(c).update(g, gradtx.EmptyState())[0]["w"])(
        jnp.array([1.0, 10.0], jnp.float32)
    )
    np.testing.assert_allclose(out, [[0.6, 0.8], [3.0, 4.0]], rtol=1e-6)
