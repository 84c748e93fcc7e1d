"""gradtx.presets.keras against Keras 3 (JAX backend): the same arguments give the same trajectories.

Every case builds Keras's optimizer and gradtx's preset from ONE dict of keyword arguments, trains
a three-leaf model for 32 steps on each side (jax.grad of the same loss at each side's own
params; Keras's variables in float64 with `keras.config.set_floatx("float64")`) and holds the
params to rtol 1e-10 at every step.
"""

from __future__ import annotations

import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import keras as pk

if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    pytest.skip("Keras must run on its JAX backend here (KERAS_BACKEND=jax)", allow_module_level=True)
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras was imported with another backend", allow_module_level=True)

STEPS = 32
RTOL = 1e-10
_rng = np.random.default_rng(1)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}
NAMES = ("w", "b", "s")


@pytest.fixture(scope="module", autouse=True)
def keras_float64():
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(previous)


def loss(p: dict) -> jax.Array:
    prediction = p["s"] * jnp.tanh(jnp.asarray(X) @ p["w"] + p["b"])
    return jnp.mean((prediction - jnp.asarray(Y)) ** 2) + 0.01 * jnp.sum(p["w"] ** 2)


_grad = jax.jit(jax.grad(loss))


def run_keras(optimizer) -> dict:
    variables = [keras.Variable(np.asarray(INIT[k]), dtype="float64") for k in NAMES]
    path = {k: [] for k in NAMES}
    with jax.numpy_dtype_promotion("standard"):  # Keras relies on implicit promotion
        for _ in range(STEPS):
            grads = _grad({k: v.value for k, v in zip(NAMES, variables, strict=True)})
            optimizer.apply([grads[k] for k in NAMES], variables)
            for k, v in zip(NAMES, variables, strict=True):
                path[k].append(np.asarray(v.value))
    return {k: np.stack(v) for k, v in path.items()}


def run_gradtx(tx) -> dict:
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state = tx.init(params)
    path = []
    for _ in range(STEPS):
        updates, state = tx.update(_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in NAMES}


# (Keras class, keyword arguments given to both): defaults and each branch.
CASES = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.05, "clipvalue": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-3, "centered": True}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.02, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3, "global_clipnorm": 0.5}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True, "epsilon": 1e-3, "weight_decay": 0.01}),
    ("AdamW", {}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Nadam", {}),
    ("Nadam", {"learning_rate": 0.01, "epsilon": 1e-3, "weight_decay": 0.05}),
    ("Adamax", {}),
    ("Adamax", {"learning_rate": 0.02, "beta_1": 0.8, "epsilon": 1e-3, "weight_decay": 0.01}),
    ("Adagrad", {}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "epsilon": 1e-3}),
    ("Adadelta", {}),
    ("Adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-5, "weight_decay": 0.01}),
    ("Lion", {}),
    ("Lion", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.1}),
    ("Lamb", {}),
    ("Lamb", {"learning_rate": 0.01, "epsilon": 1e-3, "weight_decay": 0.1}),
    ("Ftrl", {}),
    ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.01, "l2_shrinkage_regularization_strength": 0.02, "beta": 0.3,
              "weight_decay": 0.1, "clipvalue": 0.05}),
    ("Ftrl", {"learning_rate": 0.05, "learning_rate_power": 0.0, "initial_accumulator_value": 0.0,
              "weight_decay": 0.5, "global_clipnorm": 0.1}),
]  # fmt: skip
IDS = [f"{cls}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for cls, kw in CASES]


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=IDS)
def test_trajectory_equals_keras(cls, kwargs):
    reference = run_keras(getattr(keras.optimizers, cls)(**kwargs))
    ours = run_gradtx(getattr(pk, cls)(**kwargs))
    for k in NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=RTOL, atol=1e-14, err_msg=f"{cls} {k}")
    assert not np.allclose(reference["w"][-1], INIT["w"], rtol=1e-4), "the params must move"


def test_kerass_epsilon_is_not_torchs():
    """Keras's Adam and torch's differ by where eps goes: visible at eps = 1e-3 in the first steps."""
    from gradtx.presets import torch as pt

    keras_path = run_gradtx(pk.Adam(learning_rate=0.01, epsilon=1e-3))
    torch_path = run_gradtx(pt.Adam(lr=0.01, eps=1e-3))
    assert not np.allclose(keras_path["w"][:3], torch_path["w"][:3], rtol=1e-6)


BASE_NOT_TAKEN = {"loss_scale_factor", "gradient_accumulation_steps", "name", "kwargs", "self"}


@pytest.mark.parametrize("cls", pk.__all__)
def test_presets_take_kerass_arguments_and_defaults(cls):
    ours = inspect.signature(getattr(pk, cls)).parameters
    theirs = inspect.signature(getattr(keras.optimizers, cls).__init__).parameters
    theirs = {k: v for k, v in theirs.items() if k not in BASE_NOT_TAKEN}
    assert list(ours) == list(theirs), cls
    for name, p in ours.items():
        assert p.default == theirs[name].default, (cls, name)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pk.Adam(beta_1=1.5), "presets.keras.Adam: beta_1 must be in [0, 1), got 1.5"),
        (lambda: pk.Lion(beta_1=0.0), "presets.keras.Lion: beta_1 must be in (0, 1], got 0.0"),
        (lambda: pk.SGD(momentum=-0.1), "presets.keras.SGD: momentum must be in [0, 1], got -0.1"),
        (lambda: pk.AdamW(weight_decay=None), "presets.keras.AdamW: weight_decay must be a number"),
        (
            lambda: pk.Adam(clipvalue=1.0, global_clipnorm=1.0),
            "presets.keras.Adam: set one of clipnorm, clipvalue and global_clipnorm, not clipvalue and global_clipnorm",
        ),
        (
            lambda: pk.Lamb(learning_rate=gradtx.constant_schedule(0.1), weight_decay=0.1),
            "presets.keras.Lamb: learning_rate must be a number when weight_decay is set",
        ),
        (lambda: pk.RMSprop(epsilon=float("nan")), "presets.keras.RMSprop: epsilon must be in [0, inf), got nan"),
    ],
)
def test_errors_name_the_preset_and_kerass_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_presets_are_lint_clean():
    for cls, kwargs in CASES:
        assert gradtx.lint(getattr(pk, cls)(**kwargs)) == [], (cls, kwargs)
