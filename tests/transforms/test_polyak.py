"""Polyak's step size (gradtx/transforms/polyak.py).

References and tolerances:
- optax.polyak_sgd / optax.scale_by_polyak (0.2.8), float64, rtol 1e-9: 30 steps on a multi-leaf
  least-squares problem, with the defaults, with "sps+", f_min, eps and a maximum step, and with a
  schedule for `scaling` (where the step sees s g, see polyak_sgd's docstring).
- A NumPy transcription of Loizou et al. (2021)'s SPS_max, gamma = min((f - f*) / ||g||^2, gamma_b),
  for single updates (zero gradients, a value below f_min, eps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close

X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)))
Y = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)))


def loss(p):
    return 0.5 * jnp.mean((X @ p["w"] + p["b"] - Y) ** 2)


def start():
    return {"w": jnp.full((3, 2), 0.5, jnp.float64), "b": jnp.zeros(2, jnp.float64)}


def decay(count):
    """0.8 * 0.5^(count / 4) in float64, written here: optax's exponential_decay returns float32."""
    return 0.8 * 0.5 ** (count.astype(jnp.float64) / 4)


CONFIGS = {
    "default": lambda m: m.polyak_sgd(),
    "sps+": lambda m: m.polyak_sgd(max_learning_rate=0.7, f_min=0.2, eps=1e-3, variant="sps+"),
    "scaling-schedule": lambda m: m.polyak_sgd(scaling=decay, f_min=0.1),
}


def run(m, tx, steps=30):
    @jax.jit
    def step(p, s):
        value, grad = jax.value_and_grad(loss)(p)
        u, s = tx.update(grad, s, p, value=value)
        return m.apply_updates(p, u), s

    p, s, out = start(), tx.init(start()), []
    for _ in range(steps):
        p, s = step(p, s)
        out.append(p)
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float64_trajectory_equals_optax(name):
    ours = run(gradtx, CONFIGS[name](gradtx))
    with jax.numpy_dtype_promotion("standard"):
        theirs = run(optax, CONFIGS[name](optax))
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(loss(ours[-1])) < 0.5 * float(loss(start()))


def sps_max(g: np.ndarray, value: float, f_min: float, gamma_b: float, eps: float, plus: bool) -> np.ndarray:
    """Loizou et al. (2021), SPS_max (with eps in the denominator and the "+" of Garrigos et al.)."""
    gap = value - f_min
    gap = max(gap, 0.0) if plus else gap
    denominator = float(np.sum(g**2)) + eps
    gamma = 0.0 if denominator <= np.finfo(np.float64).eps else min(gap / denominator, gamma_b)
    return gamma * g


@pytest.mark.parametrize(
    "g, value, f_min, gamma_b, eps, plus",
    [
        ([3.0, 4.0], 5.0, 0.0, 1.0, 0.0, False),  # gamma = 0.2
        ([0.3, 0.4], 5.0, 0.0, 1.0, 0.0, False),  # capped at gamma_b
        ([3.0, 4.0], 5.0, 1.0, 1.0, 1.0, False),  # f_min and eps
        ([3.0, 4.0], 0.5, 1.0, 1.0, 0.0, False),  # below f_min: a step uphill ("sps")
        ([3.0, 4.0], 0.5, 1.0, 1.0, 0.0, True),  # ... none with "sps+"
        ([0.0, 0.0], 5.0, 0.0, 1.0, 0.0, False),  # zero gradient: no step, not 0 / 0
    ],
)
def test_one_update_equals_the_formula(g, value, f_min, gamma_b, eps, plus):
    tx = gradtx.scale_by_polyak(f_min=f_min, max_learning_rate=gamma_b, eps=eps, variant="sps+" if plus else "sps")
    g64 = jnp.asarray(g, jnp.float64)
    u, _ = tx.update(g64, tx.init(g64), value=value)
    np.testing.assert_allclose(u, sps_max(np.asarray(g), value, f_min, gamma_b, eps, plus), rtol=1e-15, atol=0)


def test_make_step_passes_the_loss():
    tx = gradtx.polyak_sgd(max_learning_rate=0.5)
    step = gradtx.make_step(tx, loss, donate=False)
    p, s = start(), tx.init(start())
    for _ in range(5):
        p, s, _ = step(p, s)
    assert_trees_all_close(p, run(gradtx, tx, steps=5)[-1], rtol=1e-14)


def test_nan_value_or_gradient_gives_nan_and_a_missing_value_is_named():
    tx = gradtx.polyak_sgd()
    p = start()
    value, grad = jax.value_and_grad(loss)(p)
    for v, g in ((jnp.nan, grad), (value, jax.tree.map(lambda x: x.at[0].set(jnp.nan), grad))):
        for variant in ("sps", "sps+"):
            t = gradtx.polyak_sgd(variant=variant)
            u, _ = jax.jit(t.update)(g, t.init(p), p, value=v)
            assert all(bool(jnp.all(jnp.isnan(x))) for x in jax.tree.leaves(u)), (variant, u)
    missing = r"scale_by_polyak: update was called without the keyword argument value\. "
    how = r"tx\.update\(grads, state, params, value=loss\).*gradtx\.make_step\(tx, loss_fn\) passes it"
    with pytest.raises(TypeError, match=missing + ".*" + how):
        jax.jit(tx.update)(grad, tx.init(p), p)
    with pytest.raises(ValueError, match="scale_by_polyak: variant must be 'sps' or 'sps\\+', got 'spsx'"):
        gradtx.scale_by_polyak(variant="spsx")
    with pytest.raises(ValueError, match=r"polyak_sgd: scaling must be in \[0, inf\)"):
        gradtx.polyak_sgd(scaling=-1.0)
    with pytest.raises(ValueError, match=r"polyak_sgd: eps must be in \[0, inf\), got -1.0"):
        gradtx.polyak_sgd(eps=-1.0)
