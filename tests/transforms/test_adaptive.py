"""Adaptive preconditioners against NumPy loops of their docstring equations (float64) and against
optax's same-named transformations (float32); complex params, dtypes, validation, zero gradients.

Gradients are large for the first steps and small after, so running maxima (AMSGrad, Adamax) hold
an old value for a while and the accumulators see both regimes. t counts updates from 1; a decay
schedule is read at k = t - 1, the number of updates already applied.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.common import assert_close, run

STEPS = 32
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def gradient_steps(dtype=np.float64, seed: int = 0, complex_: bool = False) -> dict:
    """A dict model's gradients for STEPS steps, stacked on a leading step axis."""
    rng = np.random.default_rng(seed)
    size = np.where(np.arange(STEPS) < 8, 3.0, 0.5)  # big first, then small

    def leaf(shape):
        g = rng.normal(size=(STEPS, *shape))
        if complex_:
            g = g + 1j * rng.normal(size=(STEPS, *shape))
        return (g * size.reshape(-1, *([1] * len(shape)))).astype(dtype)

    return {k: leaf(s) for k, s in SHAPES.items()}


def per_leaf(loop, grads: dict) -> dict:
    """A NumPy loop (a list of step arrays -> a list of updates) applied to each leaf."""
    return {k: np.stack(loop(list(g))) for k, g in grads.items()}


def decay_ramp(count) -> jax.Array:
    """A decay schedule written here: 0.5 rising toward 0.9."""
    return 0.9 - 0.4 * 0.8 ** jnp.asarray(count, jnp.float64)


# ---------------------------------------------------------------------------------------------------
# NumPy loops written from the docstrings' equations (float64 or complex128)


def rms_np(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False):
    rate = decay if callable(decay) else (lambda k: decay)

    def loop(gs):
        nu, out = np.full(gs[0].shape, initial_scale), []
        for k, g in enumerate(gs):
            d, t = float(rate(k)), k + 1
            nu = d * nu + (1 - d) * np.abs(g) ** 2
            nu_hat = nu / (1 - d**t) if bias_correction else nu
            out.append(g / np.sqrt(nu_hat + eps) if eps_in_sqrt else g / (np.sqrt(nu_hat) + eps))
        return out

    return loop


def stddev_np(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False):
    rate = decay if callable(decay) else (lambda k: decay)

    def loop(gs):
        mu, nu, out = 0.0, np.full(gs[0].shape, initial_scale), []
        for k, g in enumerate(gs):
            d, t = float(rate(k)), k + 1
            mu = d * mu + (1 - d) * g
            nu = d * nu + (1 - d) * np.abs(g) ** 2
            c = (1 - d**t) if bias_correction else 1.0
            var = np.maximum(nu / c - np.abs(mu / c) ** 2, 0.0)
            out.append(g / np.sqrt(var + eps) if eps_in_sqrt else g / (np.sqrt(var) + eps))
        return out

    return loop


def rss_np(initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True):
    def loop(gs):
        r, out = np.full(gs[0].shape, initial_accumulator_value), []
        for g in gs:
            r = r + np.abs(g) ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                u = g / np.sqrt(r + eps) if eps_in_sqrt else g / (np.sqrt(r) + eps)
            out.append(np.where(r > 0, u, 0.0))
        return out

    return loop


def adadelta_np(rho=0.9, eps=1e-6):
    def loop(gs):
        s, dx, out = 0.0, 0.0, []
        for g in gs:
            s = rho * s + (1 - rho) * np.abs(g) ** 2
            u = np.sqrt(dx + eps) / np.sqrt(s + eps) * g
            dx = rho * dx + (1 - rho) * np.abs(u) ** 2
            out.append(u)
        return out

    return loop


def adam_np(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov=False):
    def loop(gs):
        m, v, out = 0.0, 0.0, []
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * np.abs(g) ** 2
            m_hat = m / (1 - b1**t)
            if nesterov:  # Dozat: b1 m / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t)
                m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            out.append(m_hat / (np.sqrt(v / (1 - b2**t) + eps_root) + eps))
        return out

    return loop


def amsgrad_np(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, bias_correction_mu=True, bias_correction_nu=True):
    def loop(gs):
        m, v, v_max, out = 0.0, 0.0, 0.0, []
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat = m / (1 - b1**t) if bias_correction_mu else m
            v_hat = v / (1 - b2**t) if bias_correction_nu else v
            v_max = np.maximum(v_max, v_hat)
            out.append(m_hat / (np.sqrt(v_max + eps_root) + eps))
        return out

    return loop


def adamax_np(b1=0.9, b2=0.999, eps=1e-8):
    def loop(gs):
        m, nu, out = 0.0, 0.0, []
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            nu = np.maximum(b2 * nu, np.abs(g) + eps)
            out.append(m / (1 - b1**t) / nu)
        return out

    return loop


# (builder name, keyword arguments, NumPy loop factory)
REFERENCE_CASES = [
    ("scale_by_rms", {}, rms_np),
    ("scale_by_rms", dict(decay=0.99, eps=1e-6, initial_scale=0.5, eps_in_sqrt=False, bias_correction=True), rms_np),
    ("scale_by_rms", dict(decay=0.95, eps=1e-3, bias_correction=True), rms_np),
    ("scale_by_rms", dict(decay=decay_ramp, eps=1e-6, initial_scale=1.0, eps_in_sqrt=False), rms_np),
    ("scale_by_stddev", {}, stddev_np),
    ("scale_by_stddev", dict(decay=0.8, eps=1e-6, initial_scale=0.2, eps_in_sqrt=False), stddev_np),
    ("scale_by_stddev", dict(decay=0.95, eps=1e-3, bias_correction=True), stddev_np),
    ("scale_by_stddev", dict(decay=decay_ramp, eps=1e-4), stddev_np),
    ("scale_by_rss", {}, rss_np),
    ("scale_by_rss", dict(initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False), rss_np),
    ("scale_by_rss", dict(initial_accumulator_value=2.0, eps=1e-3, eps_in_sqrt=False), rss_np),
    ("scale_by_adadelta", {}, adadelta_np),
    ("scale_by_adadelta", dict(rho=0.95, eps=1e-4), adadelta_np),
    ("scale_by_adam", {}, adam_np),
    ("scale_by_adam", dict(b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8, nesterov=True), adam_np),
    ("scale_by_amsgrad", {}, amsgrad_np),
    ("scale_by_amsgrad", dict(b2=0.9, eps_root=1e-8, bias_correction_mu=False, bias_correction_nu=False), amsgrad_np),
    ("scale_by_amsgrad", dict(b1=0.5, b2=0.9, eps=1e-4, bias_correction_nu=False), amsgrad_np),
    ("scale_by_adamax", {}, adamax_np),
    ("scale_by_adamax", dict(b1=0.8, b2=0.9, eps=1e-3), adamax_np),
]


def _id(case) -> str:
    name, kwargs, _ = case
    shown = ",".join(f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items())
    return f"{name}({shown})"


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=map(_id, REFERENCE_CASES))
def test_matches_numpy_loop_of_the_equations(case):
    name, kwargs, reference = case
    grads = gradient_steps()
    ours, _ = run(getattr(gradtx, name)(**kwargs), grads)
    assert_close(ours, per_leaf(reference(**kwargs), grads), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "name, kwargs, reference",
    [
        ("scale_by_rms", dict(decay=0.9, eps_in_sqrt=False, bias_correction=True), rms_np),
        ("scale_by_stddev", dict(decay=0.9, eps=1e-3), stddev_np),
        ("scale_by_rss", dict(initial_accumulator_value=0.1), rss_np),
        ("scale_by_adadelta", {}, adadelta_np),
        ("scale_by_adam", dict(eps_root=1e-8), adam_np),
    ],
)
def test_complex_params_have_real_second_moments(name, kwargs, reference):
    grads = gradient_steps(np.complex64, complex_=True)
    ours, state = run(getattr(gradtx, name)(**kwargs), grads)
    assert all(u.dtype == jnp.complex64 for u in jax.tree.leaves(ours))
    for field in ("nu", "sum_of_squares", "e_g", "e_x"):
        if hasattr(state, field):
            assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(getattr(state, field))), field
    reference_grads = jax.tree.map(lambda g: g.astype(np.complex128), grads)
    assert_close(ours, per_leaf(reference(**kwargs), reference_grads), rtol=2e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# optax's same-named transformations, same arguments, float32

OPTAX_CASES = [
    ("scale_by_rms", {}),
    ("scale_by_rms", dict(decay=0.99, eps=1e-6, initial_scale=0.5, eps_in_sqrt=False, bias_correction=True)),
    ("scale_by_stddev", {}),
    ("scale_by_stddev", dict(decay=0.8, eps=1e-6, initial_scale=0.2, eps_in_sqrt=False)),
    ("scale_by_rss", {}),
    ("scale_by_rss", dict(initial_accumulator_value=0.0, eps=0.0)),
    ("scale_by_adadelta", {}),
    ("scale_by_adadelta", dict(rho=0.95, eps=1e-4)),
    ("scale_by_amsgrad", {}),
    ("scale_by_amsgrad", dict(b2=0.9, eps_root=1e-8, bias_correction_mu=False, bias_correction_nu=False)),
    # optax puts eps inside the max: nu <- max(b2 nu, |g| + eps). The forms agree to O(eps / nu).
    ("scale_by_adamax", {}),
    ("scale_by_adamax", dict(b1=0.8, b2=0.9)),
]


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[_id((n, k, None)) for n, k in OPTAX_CASES])
def test_matches_optax(case):
    name, kwargs = case
    grads = gradient_steps(np.float32)
    if kwargs.get("eps") == 0.0:  # a coordinate whose gradient is zero so far: r = 0, u = 0 (no 0 / 0)
        grads["w"][:3, 0, 0] = 0.0
    ours, our_state = run(getattr(gradtx, name)(**kwargs), grads)
    theirs, their_state = run(getattr(optax, name)(**kwargs), grads, standard=True)
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(ours))
    assert_close(ours, theirs, rtol=2e-5, atol=1e-6)
    assert not np.any(np.isnan(np.asarray(ours["w"])))
    for field in sorted(set(our_state._fields) & set(their_state._fields)):
        np.testing.assert_allclose(
            np.asarray(jax.tree.leaves(getattr(our_state, field))[0]),
            np.asarray(jax.tree.leaves(getattr(their_state, field))[0]),
            rtol=2e-5,
            err_msg=field,
        )


def test_centered_variance_is_clamped_where_optax_gives_nan():
    """With bias correction the variance is exactly 0 at t = 1; rounding must not make it NaN."""
    g = {"w": jnp.asarray([0.1, 0.3, 1.7, 2.9, -3.1, 7.3], jnp.float32)}
    kwargs = dict(eps_in_sqrt=False, bias_correction=True, eps=1e-8)
    ours, _ = gradtx.scale_by_stddev(**kwargs).update(g, gradtx.scale_by_stddev(**kwargs).init(g))
    assert np.all(np.isfinite(np.asarray(ours["w"])))
    assert np.all(np.sign(np.asarray(ours["w"])) == np.sign(np.asarray(g["w"])))


# ---------------------------------------------------------------------------------------------------
# Dtypes, schedules, zero gradients, validation


@pytest.mark.parametrize(
    "tx",
    [
        gradtx.scale_by_stddev(accumulator_dtype=jnp.bfloat16),
        gradtx.scale_by_amsgrad(mu_dtype=jnp.bfloat16),
        gradtx.scale_by_amsgrad(accumulator_dtype="bfloat16"),
        gradtx.scale_by_adamax(accumulator_dtype=jnp.bfloat16),
    ],
    ids=["stddev", "amsgrad-mu_dtype", "amsgrad-accumulator_dtype", "adamax"],
)
def test_accumulator_dtype_sets_the_first_moment_only(tx):
    params = {"w": jnp.ones((2, 3), jnp.float32)}
    state = tx.init(params)
    assert state.mu["w"].dtype == jnp.bfloat16
    assert state.nu["w"].dtype == jnp.float32
    updates, new_state = jax.jit(tx.update)({"w": jnp.full((2, 3), 0.5, jnp.float32)}, state)
    assert updates["w"].dtype == jnp.float32
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


def test_bf16_first_moment_does_not_round_the_update():
    """Adam with a bfloat16 mu: m^ and u stay in the gradients' float32 (only m is stored in bf16)."""
    g = {"w": jnp.asarray([1.0, -2.0, 3.0], jnp.float32)}
    tx = gradtx.scale_by_adam(mu_dtype=jnp.bfloat16)
    u, _ = tx.update(g, tx.init(g))
    m = np.asarray(jnp.asarray(0.1 * np.asarray(g["w"]), jnp.bfloat16).astype(jnp.float32), np.float64)
    expected = (m / (1 - 0.9)) / (np.abs(np.asarray(g["w"], np.float64)) + 1e-8)
    np.testing.assert_allclose(np.asarray(u["w"]), expected, rtol=1e-6)


def test_decay_schedule_and_its_repr():
    tx = gradtx.scale_by_rms(decay_ramp)
    assert repr(tx) == (
        "scale_by_rms(decay=decay_ramp, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False)"
    )
    assert tx == gradtx.scale_by_rms(decay_ramp)


ZERO_CASES = [
    gradtx.scale_by_rms(),
    gradtx.scale_by_rms(eps_in_sqrt=False, bias_correction=True),
    gradtx.scale_by_stddev(),
    gradtx.scale_by_stddev(eps_in_sqrt=False, bias_correction=True),
    gradtx.scale_by_rss(),
    gradtx.scale_by_rss(0.0, 0.0),
    gradtx.scale_by_rss(0.0, 0.0, eps_in_sqrt=False),
    gradtx.scale_by_adadelta(),
    gradtx.scale_by_adam(),
    gradtx.scale_by_amsgrad(),
    gradtx.scale_by_adamax(),
]


@pytest.mark.parametrize("tx", ZERO_CASES, ids=map(repr, ZERO_CASES))
def test_zero_gradients_give_zero_finite_updates(tx):
    params = {"w": jnp.ones((2, 3), jnp.float32), "s": jnp.ones((), jnp.float64)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(zeros, state)
        for leaf in jax.tree.leaves((updates, state)):
            assert np.all(np.isfinite(np.asarray(leaf)))
        for leaf in jax.tree.leaves(updates):
            assert not np.any(np.asarray(leaf))


def test_adagrad_without_eps_has_finite_gradients_through_update():
    """AdaGrad with eps = 0 and r = 0: u = 0, and d u / d g stays finite (jax.grad through update)."""
    tx = gradtx.scale_by_rss(0.0, 0.0)
    params = jnp.zeros(3, jnp.float64)

    def f(g):
        return jnp.sum(tx.update(g, tx.init(params))[0])

    grad = jax.grad(f)(jnp.asarray([0.0, 1.0, -2.0]))
    assert np.all(np.isfinite(np.asarray(grad)))


def _raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_validation_messages():
    with _raises(ValueError, "scale_by_rms: decay must be in [0, 1), got 1.0"):
        gradtx.scale_by_rms(decay=1.0)
    with _raises(ValueError, "scale_by_rms: initial_scale must be in [0, inf), got -0.1"):
        gradtx.scale_by_rms(initial_scale=-0.1)
    with _raises(ValueError, "scale_by_stddev: eps must be in [0, inf), got -1e-08"):
        gradtx.scale_by_stddev(eps=-1e-8)
    with _raises(ValueError, "scale_by_rss: initial_accumulator_value must be in [0, inf), got -1.0"):
        gradtx.scale_by_rss(-1.0)
    with _raises(ValueError, "scale_by_adadelta: rho must be in [0, 1), got 1.5"):
        gradtx.scale_by_adadelta(rho=1.5)
    with _raises(ValueError, "scale_by_amsgrad: b2 must be in [0, 1), got 1.0"):
        gradtx.scale_by_amsgrad(b2=1.0)
    with _raises(ValueError, "scale_by_adamax: b1 must be in [0, 1), got -0.5"):
        gradtx.scale_by_adamax(b1=-0.5)
    with _raises(TypeError, "scale_by_rms: decay must be a number when bias_correction=True"):
        gradtx.scale_by_rms(decay_ramp, bias_correction=True)
    with _raises(TypeError, "scale_by_adam: b1 must be a number in [0, 1), not a schedule"):
        gradtx.scale_by_adam(b1=decay_ramp)
    with _raises(TypeError, "scale_by_adadelta: rho must be a number in [0, 1), not a schedule"):
        gradtx.scale_by_adadelta(rho=decay_ramp)
    with _raises(TypeError, "scale_by_amsgrad: pass accumulator_dtype or its alias mu_dtype, not both"):
        gradtx.scale_by_amsgrad(mu_dtype=jnp.bfloat16, accumulator_dtype=jnp.bfloat16)
    with _raises(TypeError, "scale_by_adamax: accumulator_dtype must be a floating or complex dtype, got int32"):
        gradtx.scale_by_adamax(accumulator_dtype=jnp.int32)
