"""The base optimizer's clipnorm and EMA options of gradtx.presets.keras against Keras 3 (JAX backend).

Each case builds Keras's optimizer and gradtx's preset from ONE dict of keyword arguments and runs
tests/test_presets_keras.py's three-leaf model for 32 steps on each side in float64. At every step
the params equal Keras's variables and `gradtx.averaged_params(state, params)` equals Keras's
moving averages (`optimizer._model_variables_moving_average`) to rtol 1e-10; after the run,
Keras's `finalize_variable_values` writes the averages into its variables, which equal the
average gradtx reads. Also: the preset chains, errors and the fuzz of the new arguments with use_ema on
(clip_by_leaf_norm's own tests: tests/transforms/test_clipping.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import keras as pk
from tests.registry import Case
from tests.test_bad_input import BAD, _attempt, _just_outside
from tests.test_presets_keras import INIT, NAMES, RTOL, STEPS, _grad, keras, keras_float64  # noqa: F401

# (Keras class, keyword arguments given to both). clipnorm 0.05 clips "w" and "s" but not always "b".
CASES = [
    ("Adam", {"use_ema": True}),
    ("Adam", {"learning_rate": 0.02, "clipnorm": 0.05, "use_ema": True, "ema_momentum": 0.8,
              "ema_overwrite_frequency": 5}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "clipnorm": 0.05,
             "use_ema": True, "ema_momentum": 0.7, "ema_overwrite_frequency": 3}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.02, "use_ema": True,
               "ema_overwrite_frequency": 4}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9, "clipnorm": 0.05}),
    ("Lamb", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.05, "use_ema": True, "ema_momentum": 0.9}),
    ("ScheduleFreeAdamW", {"learning_rate": 0.01, "warmup_steps": 3, "weight_decay": 0.01, "use_ema": True,
                           "ema_overwrite_frequency": 5}),
    ("Ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.01, "clipnorm": 0.05, "use_ema": True,
              "ema_momentum": 0.5, "ema_overwrite_frequency": 6}),
]  # fmt: skip
IDS = [f"{cls}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CASES]


def run_keras(optimizer) -> tuple[dict, dict | None, dict]:
    """(the variables after each step, their moving averages after each step, the finalized variables)."""
    variables = [keras.Variable(np.asarray(INIT[k]), dtype="float64") for k in NAMES]
    path: dict = {k: [] for k in NAMES}
    average: dict = {k: [] for k in NAMES}
    with jax.numpy_dtype_promotion("standard"):  # Keras relies on implicit promotion
        for _ in range(STEPS):
            grads = _grad({k: v.value for k, v in zip(NAMES, variables, strict=True)})
            optimizer.apply([grads[k] for k in NAMES], variables)
            for k, v in zip(NAMES, variables, strict=True):
                path[k].append(np.asarray(v.value))
            if optimizer.use_ema:
                for k, v in zip(NAMES, optimizer._model_variables_moving_average, strict=True):
                    average[k].append(np.asarray(v.value))
        optimizer.finalize_variable_values(variables)
    final = {k: np.asarray(v.value) for k, v in zip(NAMES, variables, strict=True)}
    stacked = {k: np.stack(v) for k, v in average.items()} if optimizer.use_ema else None
    return {k: np.stack(v) for k, v in path.items()}, stacked, final


def run_gradtx(tx) -> tuple[dict, dict]:
    """(the params after each step, `averaged_params(state, params)` after each step, or {} without an average)."""
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state = tx.init(params)
    averaging = any(isinstance(s, gradtx.AveragedParamsState) for s in jax.tree.leaves(state, is_leaf=_is_average))
    path, average = [], []
    for _ in range(STEPS):
        updates, state = tx.update(_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
        average += [gradtx.averaged_params(state, params)] if averaging else []
    return _stack(path), _stack(average) if averaging else {}


def _stack(trees: list) -> dict:
    return {k: np.stack([np.asarray(t[k]) for t in trees]) for k in NAMES}


def _is_average(x) -> bool:
    return isinstance(x, gradtx.AveragedParamsState)


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=IDS)
def test_params_and_averages_equal_keras(cls, kwargs):
    reference, reference_average, finalized = run_keras(getattr(keras.optimizers, cls)(**kwargs))
    ours, average = run_gradtx(getattr(pk, cls)(**kwargs))
    for k in NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=RTOL, atol=1e-14, err_msg=f"{cls} {k}")
    assert not np.allclose(reference["w"][-1], INIT["w"], rtol=1e-4), "the params must move"
    if kwargs.get("use_ema"):
        for k in NAMES:
            np.testing.assert_allclose(average[k], reference_average[k], rtol=RTOL, atol=1e-14, err_msg=f"{cls} {k}")
            np.testing.assert_allclose(average[k][-1], finalized[k], rtol=RTOL, atol=1e-14, err_msg=f"{cls} {k}")
        assert not np.allclose(average["w"][1:], ours["w"][1:], rtol=1e-6), "the average must lag the params"
    if "clipnorm" in kwargs:  # the clip must act: the same preset without it moves otherwise
        unclipped, _ = run_gradtx(getattr(pk, cls)(**{k: v for k, v in kwargs.items() if k != "clipnorm"}))
        assert not np.allclose(unclipped["w"], ours["w"], rtol=1e-6)


def test_the_base_options_are_blocks_of_the_chain():
    tx = pk.Adam(clipnorm=1.0, use_ema=True, ema_overwrite_frequency=10)
    assert tx == gradtx.chain(
        gradtx.clip_by_leaf_norm(1.0),
        gradtx.scale_by_adam(0.9, 0.999, 1e-7, eps_hat=True),
        gradtx.scale_by_learning_rate(0.001),
        gradtx.ema_params(0.99, overwrite_frequency=10),
    )
    assert pk.Adam(clipnorm=0, use_ema=False, ema_overwrite_frequency=0) == pk.Adam()  # off, as Keras
    assert pk.SGD(use_ema=True, ema_overwrite_frequency=0) == gradtx.chain(
        gradtx.scale_by_learning_rate(0.01), gradtx.ema_params(0.99)
    )
    # every Keras preset takes them, and puts the average last
    for cls in pk.__all__:
        tx = getattr(pk, cls)(use_ema=True, clipnorm=0.5)
        members = tx.hyperparams.args
        assert members[0] == gradtx.clip_by_leaf_norm(0.5) and members[-1] == gradtx.ema_params(0.99), cls
        assert gradtx.lint(tx) == [], cls


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: pk.SGD(clipnorm=1.0, clipvalue=0.5),
            "presets.keras.SGD: set one of clipnorm, clipvalue and global_clipnorm, not clipnorm and clipvalue",
        ),
        (lambda: pk.Adam(clipnorm=-1.0), "presets.keras.Adam: clipnorm must be in [0, inf), got -1.0"),
        (lambda: pk.AdamW(ema_momentum=1.0), "presets.keras.AdamW: ema_momentum must be in [0, 1), got 1.0"),
        (lambda: pk.Lion(use_ema="yes"), "presets.keras.Lion: use_ema must be True or False, got 'yes'"),
        (
            lambda: pk.Muon(use_ema=True, ema_overwrite_frequency=2.5),
            "presets.keras.Muon: ema_overwrite_frequency must be an integer in [0, inf), got 2.5",
        ),
        (lambda: gradtx.clip_by_leaf_norm(-0.5), "clip_by_leaf_norm: max_norm must be in [0, inf), got -0.5"),
    ],
)
def test_errors_name_the_preset_and_kerass_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("cls", ["Adam", "SGD", "Ftrl", "Muon", "ScheduleFreeAdamW"])
def test_bad_ema_and_clipnorm_arguments_get_a_clear_error_or_work_with_use_ema_on(cls):
    """tests/test_presets_bad_input.py fuzzes every argument with use_ema off; here with it on."""
    name, fn = f"presets.keras.{cls}", getattr(pk, cls)
    case = Case(name, lambda m: fn(use_ema=True), optax=False)
    failures = []
    for argument in ("clipnorm", "ema_momentum", "ema_overwrite_frequency"):
        base = {"use_ema": True, "ema_overwrite_frequency": 2} if argument != "ema_overwrite_frequency" else {}
        messages = []
        for label, value in BAD.items():
            if value is None and argument != "ema_momentum":
                continue  # None is these arguments' default: off
            _, failure, message = _attempt(name, case, fn, (), {**base, "use_ema": True}, argument, value)
            messages.append(message)
            failures += [f"[{label}] {failure}"] if failure else []
        ranges = [edges for edges in map(_just_outside, messages) if edges]
        for value in ranges[0] if ranges else []:
            _, failure, _ = _attempt(name, case, fn, (), {**base, "use_ema": True}, argument, value)
            failures += [f"[just outside: {value!r}] {failure}"] if failure else []
    assert not failures, "\n".join(failures)
