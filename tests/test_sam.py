"""SAM against optax.contrib.sam (transparent and opaque modes; float64 rtol 1e-9, float32), against
the paper's step written in NumPy, and normalize against optax (and finite at zero gradients)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "sam": lambda m, c: c.sam(m.sgd(0.1), m.chain(c.normalize(), m.sgd(0.05))),
    "sam-adam-3": lambda m, c: c.sam(m.adam(0.05), m.chain(c.normalize(), m.adam(0.02)), 3, reset_state=False),
    "normalize": lambda m, c: m.chain(c.normalize(), m.sgd(0.1)),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-2  # the params moved
    if name == "sam-adam-3":
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def f(x):
    return jnp.sum(jnp.cos(3 * x) + x**2)


def test_two_calls_are_the_papers_step():
    """x_adv = x + rho g / ||g||, then x <- x - lr grad f(x_adv): with SGD, two calls of an ordinary loop."""
    rho, lr = 0.05, 0.1
    tx = gradtx.sam(gradtx.sgd(lr), gradtx.chain(gradtx.normalize(), gradtx.sgd(rho)))
    x, state = jnp.asarray([0.3, -1.2, 2.0]), None
    state = tx.init(x)
    want = np.asarray(x)
    for _ in range(4):
        g = np.asarray(jax.grad(f)(jnp.asarray(want)))
        want = want - lr * np.asarray(jax.grad(f)(jnp.asarray(want + rho * g / np.linalg.norm(g))))
        for _ in range(2):  # the loop as written: gradient at the current params, update, apply
            u, state = tx.update(jax.grad(f)(x), state, x)
            x = gradtx.apply_updates(x, u)
        np.testing.assert_allclose(x, want, rtol=1e-13)


@pytest.mark.parametrize("reset_state", [True, False])
def test_opaque_mode_matches_optax_and_one_call_is_k_transparent_calls(reset_state):
    grad_fn = lambda p, i: jax.grad(f)(p)

    def run(m, c, opaque, calls):
        tx = c.sam(m.adam(0.05), m.chain(c.normalize(), m.sgd(0.05)), 3, reset_state, opaque)
        x = jnp.asarray([0.3, -1.2, 2.0])
        state = tx.init(x)
        for _ in range(calls):
            u, state = tx.update(jax.grad(f)(x), state, x, grad_fn=grad_fn)
            x = x + u
        return x

    with jax.numpy_dtype_promotion("standard"):
        theirs = run(optax, optax.contrib, True, 5)
    np.testing.assert_allclose(run(gradtx, gradtx, True, 5), theirs, rtol=1e-12)
    np.testing.assert_allclose(run(gradtx, gradtx, False, 15), theirs, rtol=1e-12)


def test_opaque_mode_needs_grad_fn_and_errors_name_the_argument():
    tx = gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), opaque_mode=True)
    x = jnp.ones(2)
    with pytest.raises(TypeError, match=r"sam: with opaque_mode=True, update needs grad_fn"):
        tx.update(x, tx.init(x), x)
    with pytest.raises(ValueError, match=r"sam: sync_period must be in \[1, inf\), got 0"):
        gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), sync_period=0)
    with pytest.raises(TypeError, match="sam: reset_state must be True or False"):
        gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), reset_state=1)


def test_normalize_keeps_zero_gradients_zero_and_nan_visible():
    tx = gradtx.normalize()
    zero = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    u, _ = tx.update(zero, tx.init(zero))
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(u))  # optax: 0 / 0 = NaN
    d = jax.grad(lambda w: jnp.sum(tx.update({"w": w}, tx.init({"w": w}))[0]["w"] ** 2))(jnp.zeros(3))
    assert bool(jnp.all(jnp.isfinite(d)))
    u, _ = tx.update({"w": jnp.asarray([jnp.nan, 1.0, 0.0])}, tx.init({"w": jnp.zeros(3)}))
    assert np.isnan(np.asarray(u["w"])).all()
    u, _ = tx.update({"w": jnp.asarray([3.0, 0.0, -4.0])}, tx.init({"w": jnp.zeros(3)}))
    np.testing.assert_allclose(u["w"], [0.6, 0.0, -0.8], rtol=1e-15)
