"""gradtx.presets.keras.ScheduleFreeAdamW against keras.optimizers.ScheduleFreeAdamW (Keras 3.15.1, JAX
backend, floatx float64): 32 steps of tests/test_presets_keras.py's three-leaf model at rtol 1e-10,
for the defaults, warmup, Keras's weight decay (at y, before the step), clipping and a learning-rate
schedule; and the average x that Keras keeps implicit, (y - (1 - b1) z) / b1 from its variables,
equal to `gradtx.schedule_free_eval_params`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import keras as pk
from tests.test_presets_keras import (
    INIT,
    NAMES,
    RTOL,
    STEPS,
    _grad,
    keras,
    keras_float64,  # noqa: F401  (the autouse fixture: floatx float64 here too)
    run_gradtx,
    run_keras,
)

CASES = [
    {},
    {"learning_rate": 0.05, "beta_1": 0.7, "warmup_steps": 5},
    {"learning_rate": 0.05, "beta_2": 0.9, "epsilon": 1e-4, "warmup_steps": 1, "weight_decay": 0.1},
    {"learning_rate": 0.05, "warmup_steps": 4, "weight_decay": 0.1, "global_clipnorm": 0.5},
    {"learning_rate": 0.02, "weight_decay": 0.05, "clipvalue": 0.05},
]
IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw in CASES]


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_trajectory_equals_keras(kwargs):
    reference = run_keras(keras.optimizers.ScheduleFreeAdamW(**kwargs))
    ours = run_gradtx(pk.ScheduleFreeAdamW(**kwargs))
    for k in NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=RTOL, atol=1e-14, err_msg=k)
    assert not np.allclose(reference["w"][-1], INIT["w"], rtol=1e-3), "the params must move"


def test_a_learning_rate_schedule_with_warmup_and_decay_equals_kerass():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.95)
    reference = run_keras(keras.optimizers.ScheduleFreeAdamW(schedule, warmup_steps=4, weight_decay=0.1))
    ours = run_gradtx(pk.ScheduleFreeAdamW(gradtx.exponential_decay(0.05, 1, 0.95), warmup_steps=4, weight_decay=0.1))
    for k in NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=RTOL, atol=1e-14, err_msg=k)


def test_the_eval_params_are_kerass_implicit_average():
    kwargs = {"learning_rate": 0.05, "beta_1": 0.8, "warmup_steps": 3, "weight_decay": 0.1}
    optimizer = keras.optimizers.ScheduleFreeAdamW(**kwargs)
    variables = [keras.Variable(np.asarray(INIT[k]), dtype="float64") for k in NAMES]
    tx = pk.ScheduleFreeAdamW(**kwargs)
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state = tx.init(params)
    with jax.numpy_dtype_promotion("standard"):  # Keras relies on implicit promotion
        for _ in range(STEPS // 2):
            grads = _grad({k: v.value for k, v in zip(NAMES, variables, strict=True)})
            optimizer.apply([grads[k] for k in NAMES], variables)
            updates, state = tx.update(_grad(params), state, params)
            params = gradtx.apply_updates(params, updates)
        z = {k: np.asarray(optimizer._momentums[i].value) for i, k in enumerate(NAMES)}  # Keras's z
        y = {k: np.asarray(v.value) for k, v in zip(NAMES, variables, strict=True)}
    theirs = {k: (y[k] - 0.2 * z[k]) / 0.8 for k in NAMES}
    ours = gradtx.schedule_free_eval_params(state, params)
    for k in NAMES:
        np.testing.assert_allclose(np.asarray(ours[k]), theirs[k], rtol=RTOL, atol=1e-14, err_msg=k)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pk.ScheduleFreeAdamW(beta_1=0.0),
         "presets.keras.ScheduleFreeAdamW: beta_1 must be in (0, 1], got 0.0"),
        (lambda: pk.ScheduleFreeAdamW(beta_2=1.0),
         "presets.keras.ScheduleFreeAdamW: beta_2 must be in [0, 1), got 1.0"),
        (lambda: pk.ScheduleFreeAdamW(warmup_steps=-1),
         "presets.keras.ScheduleFreeAdamW: warmup_steps must be in [0, inf), got -1"),
        (lambda: pk.ScheduleFreeAdamW(weight_decay=-0.1),
         "presets.keras.ScheduleFreeAdamW: weight_decay must be in [0, inf), got -0.1"),
        (lambda: pk.ScheduleFreeAdamW(clipvalue=1.0, global_clipnorm=1.0),
         "presets.keras.ScheduleFreeAdamW: set one of clipnorm, clipvalue and global_clipnorm"),
    ],
)  # fmt: skip
def test_errors_name_the_preset_and_kerass_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_the_preset_is_a_lint_clean_chain_of_public_blocks():
    tx = pk.ScheduleFreeAdamW(warmup_steps=3, weight_decay=0.1)
    assert tx.hyperparams.builder == "chain"
    assert gradtx.lint(tx) == []
