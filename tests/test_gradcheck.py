"""gradtx.check_grads: a correct gradient passes, a deliberately wrong one is caught at its coordinate.

The wrong gradient is a `jax.custom_vjp` whose backward pass scales one coordinate: the check must
name that leaf and that index, from central differences computed independently of the vjp.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4), "b": jnp.arange(4, dtype=jnp.float32)}
X = jnp.linspace(-0.5, 0.5, 8, dtype=jnp.float32).reshape(2, 4)


def loss(params, x):
    h = jnp.tanh(x @ params["w"].T)  # (2, 3)
    return jnp.sum(h**2) + jnp.sum(jnp.sin(params["b"]) ** 2)


@jax.custom_vjp
def sin_wrong(x):
    return jnp.sin(x)


def _fwd(x):
    return jnp.sin(x), x


def _bwd(x, g):
    bug = jnp.where(jnp.arange(x.size).reshape(x.shape) == 2, 1.01, 1.0)  # 1% off at index 2 only
    return (g * jnp.cos(x) * bug,)


sin_wrong.defvjp(_fwd, _bwd)


def wrong_loss(params, x):
    h = jnp.tanh(x @ params["w"].T)
    return jnp.sum(h**2) + jnp.sum(sin_wrong(params["b"]) ** 2)


def test_a_correct_gradient_passes():
    report = gradtx.check_grads(loss, PARAMS, X)
    assert report and report.ok
    assert [leaf.path for leaf in report.leaves] == ["['b']", "['w']"]
    assert all(leaf.checked == leaf.size and leaf.max_error < 1e-7 for leaf in report.leaves)
    assert "PASSED" in str(report)


def test_a_wrong_custom_vjp_is_caught_and_its_coordinate_named():
    report = gradtx.check_grads(wrong_loss, PARAMS, X)
    assert not report
    b = next(leaf for leaf in report.leaves if leaf.path == "['b']")
    assert b.failed == 1 and b.worst[0][0] == (2,)
    _, analytic, numeric, error = b.worst[0]
    want = 2 * np.sin(2.0) * np.cos(2.0)  # d/db sin(b)^2 at b = 2, by hand
    assert numeric == pytest.approx(want, rel=1e-8) and analytic == pytest.approx(1.01 * want, rel=1e-8)
    assert error == pytest.approx(0.01 / 1.01, rel=1e-6)
    assert report.worst[0][:2] == ("['b']", (2,))
    assert "FAILED" in str(report) and "['b'][2]" in str(report)
    w = next(leaf for leaf in report.leaves if leaf.path == "['w']")
    assert w.failed == 0


def test_large_leaves_are_sampled_and_non_float_leaves_skipped():
    params = {"w": jnp.linspace(-1, 1, 1000), "n": jnp.arange(3)}
    report = gradtx.check_grads(
        lambda p: jnp.sum(jnp.cos(p["w"])) * p["n"].sum().astype(p["w"].dtype), params, max_coords=50
    )
    assert report and [(leaf.path, leaf.checked, leaf.size) for leaf in report.leaves] == [("['w']", 50, 1000)]


def test_through_one_optimizer_update_wrt_params_and_hyperparameters():
    # d/dparams of the loss after one Adam step (second derivatives through update); eps_root keeps
    # the root differentiable at v = 0.
    report = gradtx.check_grads(loss, PARAMS, X, tx=gradtx.adam(0.05, eps_root=1e-12))
    assert report, str(report)
    # d/dlr of the loss after one SGD step is -g . g' (g' the gradient after the step): checked by
    # central differences in lr, and the hand formula for one quadratic step.
    quad = lambda w: 0.5 * jnp.sum(w**2)
    w0 = jnp.asarray([1.0, -2.0])
    report = gradtx.check_grads(quad, w0, tx=lambda h: gradtx.sgd(h["lr"]), hyperparams={"lr": 0.3})
    (leaf,) = report.leaves
    # L(w0 - lr w0) = 0.5 (1 - lr)^2 |w0|^2, whose derivative is -(1 - lr) |w0|^2 = -3.5 at lr = 0.3
    assert report and leaf.worst[0][1] == pytest.approx(-3.5, rel=1e-12)


def test_errors():
    with pytest.raises(TypeError, match="real scalar"):
        gradtx.check_grads(lambda p: p["b"], PARAMS)
    with pytest.raises(ValueError, match=r"check_grads: h must be in \(0, 1\)"):
        gradtx.check_grads(loss, PARAMS, X, h=0.0)
    with pytest.raises(TypeError, match="hyperparams needs tx"):
        gradtx.check_grads(loss, PARAMS, X, hyperparams={"lr": 0.1})
