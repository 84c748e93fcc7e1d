"""snapshot, monitor and measure_with_ema against optax (float64 at rtol 1e-9: the updates, which
they pass through unchanged, and the measurements, step by step) and a NumPy EMA loop; monitor's
state keeps one structure from init on (optax's starts empty); the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax, gradients, model, trajectory

CLIP = 2.0


def test_snapshot_in_a_chain_matches_optax():
    make = lambda m: m.chain(m.scale_by_adam(), m.snapshot("norm", m.tree.norm), m.clip_by_global_norm(0.5))
    (_, _, state), (_, _, theirs) = compare_with_optax(make, float32=False)
    assert_same_layout(state, theirs)
    assert float(gradtx.tree.get(state, "norm")) > 0.5  # Adam's step before clipping, at the last step


def is_clipped(updates):
    return gradtx.tree.norm(updates) > CLIP


def monitored(m):
    measures = {"norm": m.tree.norm, "clipped": m.measure_with_ema(is_clipped, 0.8), "raw": m.measure_with_ema(
        m.tree.norm, 0.5, debias=False)}  # fmt: skip
    return m.chain(m.monitor(measures), m.clip_by_global_norm(CLIP), m.adam(0.1))


def test_monitor_and_measure_with_ema_match_optax_step_by_step():
    params = model()
    grads = gradients(params)
    ours, theirs = monitored(gradtx), monitored(optax)
    step, their_step = jax.jit(ours.update), jax.jit(theirs.update)
    p, q, s, t = params, params, ours.init(params), theirs.init(params)
    norms = []
    for k in range(32):
        g = jax.tree.map(lambda x, k=k: x[k], grads)
        u, s = step(g, s, p)
        with jax.numpy_dtype_promotion("standard"):
            v, t = their_step(g, t, q)
        for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(v), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
        for name in ("norm", "clipped", "raw"):
            np.testing.assert_allclose(gradtx.tree.get(s, name), optax.tree.get(t, name), rtol=1e-9, err_msg=name)
        p, q = gradtx.apply_updates(p, u), optax.apply_updates(q, v)
        norms.append(np.sqrt(sum(np.sum(np.asarray(x[k]) ** 2) for x in jax.tree.leaves(grads))))
    assert_same_layout(s, t)  # after the first update the two states are alike
    # The EMA of "was the norm above CLIP?", from a NumPy loop (debiased): the fraction of recent steps.
    m, frac = 0.0, None
    for k, n in enumerate(norms, start=1):
        m = 0.8 * m + 0.2 * float(n > CLIP)
        frac = m / (1 - 0.8**k)
    np.testing.assert_allclose(gradtx.tree.get(s, "clipped"), frac, rtol=1e-12)
    assert 0 < frac < 1


def test_monitor_state_keeps_its_structure_from_init_on():
    params = model()
    tx = monitored(gradtx)
    init = tx.init(params)
    assert float(gradtx.tree.get(init, "norm")) == 0.0 and gradtx.tree.get(init, "clipped").dtype == jnp.float64
    _, _, state = trajectory(tx, params, gradients(params, steps=3))  # a lax.scan needs one structure
    assert jax.tree.structure(state) == jax.tree.structure(init)


def test_measure_with_ema_keeps_nan_and_sets_its_dtype():
    tx = gradtx.measure_with_ema(gradtx.tree.norm, 0.5, accumulator_dtype=jnp.float32)
    g = {"w": jnp.ones(2, jnp.float64)}
    state = tx.init(g)
    assert state[1].ema.dtype == jnp.float32 and state[0] == gradtx.EmptyState()
    m, state = tx.update({"w": jnp.asarray([jnp.nan, 1.0])}, state)
    m, state = tx.update(g, state)
    assert np.isnan(np.asarray(m))


def test_errors():
    with pytest.raises(TypeError, match=r"^snapshot: measure_name must be a string"):
        gradtx.snapshot(3, gradtx.tree.norm)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^snapshot: measure must be a function"):
        gradtx.snapshot("norm", 3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^measure_with_ema: decay must be in \[0, 1\), got 1.5"):
        gradtx.measure_with_ema(gradtx.tree.norm, 1.5)
    with pytest.raises(TypeError, match=r"^monitor: measures must be a dict from names to measures"):
        gradtx.monitor([gradtx.tree.norm])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^monitor: argument 0 must be a gradient transformation"):
        gradtx.monitor({"x": 3.0})
