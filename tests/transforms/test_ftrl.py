"""ftrl against keras.optimizers.Ftrl (Keras 3, JAX backend, float64 variables): the weights at every
step, to rtol 1e-10, and the exact zeros of its L1 term."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

os.environ["KERAS_BACKEND"] = "jax"  # before keras is first imported
keras = pytest.importorskip("keras")

STEPS = 30
_rng = np.random.default_rng(0)
INIT = {"w": _rng.normal(size=(3, 4)) * 0.1, "b": np.zeros(4)}
NOISE = [{k: _rng.normal(size=v.shape) for k, v in INIT.items()} for _ in range(STEPS)]


def gradient(w: np.ndarray, key: str, k: int) -> np.ndarray:
    return 0.5 * (w - 0.2) + NOISE[k][key]  # a noisy quadratic: the weights move, some L1 zeros stay


def keras_weights(**kwargs) -> list[dict]:
    """Keras's weights after each step, with float64 variables and float64 optimizer state."""
    assert keras.backend.backend() == "jax"
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")  # the learning rate variable too (float32 would round it)
    try:
        with jax.numpy_dtype_promotion("standard"):
            variables = {k: keras.Variable(v, dtype="float64") for k, v in INIT.items()}
            optimizer = keras.optimizers.Ftrl(**kwargs)
            out = []
            for k in range(STEPS):
                grads = [gradient(np.asarray(v.value), key, k) for key, v in variables.items()]
                optimizer.apply_gradients(zip(grads, variables.values(), strict=True))
                out.append({key: np.asarray(v.value) for key, v in variables.items()})
    finally:
        keras.config.set_floatx(floatx)
    return out


def gradtx_weights(tx) -> list[dict]:
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state, step, out = tx.init(params), jax.jit(tx.update), []
    for k in range(STEPS):
        grads = {key: jnp.asarray(gradient(np.asarray(v), key, k)) for key, v in params.items()}
        updates, state = step(grads, state, params)
        params = gradtx.apply_updates(params, updates)
        out.append({key: np.asarray(v) for key, v in params.items()})
    return out


CONFIGS = {
    "defaults": dict(learning_rate=0.125),
    "all-terms": dict(
        learning_rate=0.2, learning_rate_power=-0.7, initial_accumulator_value=0.5, l1_regularization_strength=0.05,
        l2_regularization_strength=0.1, l2_shrinkage_regularization_strength=0.02, beta=0.3,
    ),
    "fixed-rate": dict(
        learning_rate=0.05, learning_rate_power=0.0, initial_accumulator_value=0.0, l1_regularization_strength=0.3
    ),
    # Keras's decoupled decay: the variable is decayed before the step, which reads it in z
    "weight-decay": dict(learning_rate=0.2, weight_decay=0.3, l2_shrinkage_regularization_strength=0.05),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_keras(name):
    config = CONFIGS[name]
    ours, theirs = gradtx_weights(gradtx.ftrl(**config)), keras_weights(**config)
    zeros = 0
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in INIT:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-15, err_msg=f"{name}: {key} at step {k}")
            np.testing.assert_array_equal(a[key] == 0, b[key] == 0, err_msg=f"{name}: L1 zeros of {key} at step {k}")
            zeros += int(np.sum(b[key] == 0))
    if config.get("l1_regularization_strength"):
        assert zeros > 0, "the L1 term set no weight to zero: the test would not see a wrong threshold"


def halving(count):
    """0.2 halved every 10 steps, in float64: Keras's ExponentialDecay(0.2, 10, 0.5) under floatx float64."""
    return 0.2 * 0.5 ** (count.astype(jnp.float64) / 10)


def test_a_schedule_is_read_at_keras_iterations():
    theirs = keras_weights(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.2, 10, 0.5))
    ours = gradtx_weights(gradtx.ftrl(halving))
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in INIT:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-15, err_msg=f"{key} at step {k}")


def test_float32_params_keep_float32_updates_and_state():
    params = {"w": jnp.zeros((2, 3), jnp.float32)}
    tx = gradtx.ftrl(0.1, l1_regularization_strength=0.01)
    u, state = tx.update({"w": jnp.ones((2, 3), jnp.float32)}, tx.init(params), params)
    assert u["w"].dtype == jnp.float32 and state.accumulator["w"].dtype == state.linear["w"].dtype == jnp.float32


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"^ftrl: learning_rate_power must be in \(-inf, 0\], got 0.5"):
        gradtx.ftrl(0.1, learning_rate_power=0.5)
    with pytest.raises(ValueError, match=r"^ftrl: learning_rate must be in \(0, inf\)"):
        gradtx.ftrl(0.0)
    with pytest.raises(TypeError, match=r"^ftrl: complex params"):
        gradtx.ftrl(0.1).init({"w": jnp.zeros(2, jnp.complex64)})
