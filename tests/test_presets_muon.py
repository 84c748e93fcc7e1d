"""presets.torch.Muon and presets.keras.Muon against torch.optim.Muon 2.13 and Keras 3.15.1's Muon.

Each case builds the framework's optimizer and the preset from ONE dict of keyword arguments, trains
a two-layer model for 32 steps on each side and holds the params to rtol 1e-10 at every step, in
float64. torch runs its Newton-Schulz iteration in bfloat16 (`grad.bfloat16()`); the torch runs
here make that cast a copy, so that torch's own iteration runs in float64 and can be compared at
all (bfloat16 rounds by ~1e-2). Keras runs it in the variables' dtype (float64 with floatx
float64), except its Frobenius norm: keras.ops.norm returns float32 for float64 input in Keras
3.15.1 (`result_type(float64, float)` is float32), which rounds the normalization by ~1e-8; the
Keras runs here take that norm with jnp.linalg.norm, in float64. Then torch's state conversion: a
torch run resumed in gradtx and a gradtx run resumed in torch continue on the uninterrupted
trajectory.
"""

from __future__ import annotations

import inspect
import os
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import keras as pk
from gradtx.presets import torch as pt

torch = pytest.importorskip("torch")
if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    pytest.skip("Keras must run on its JAX backend here (KERAS_BACKEND=jax)", allow_module_level=True)
keras = pytest.importorskip("keras")

STEPS = 32
RTOL = 1e-10
_rng = np.random.default_rng(3)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
# torch.optim.Muon takes 2-D params only: two weight matrices, one wider than tall, one taller.
INIT = {"w1": _rng.normal(size=(3, 5)), "w2": _rng.normal(size=(5, 4)) * 0.5}
NAMES = ("w1", "w2")


def _loss(p: dict, tanh, xs, ys):
    return ((tanh(xs @ p["w1"]) @ p["w2"] - ys) ** 2).mean()


def jax_loss(p: dict) -> jax.Array:
    return _loss(p, jnp.tanh, jnp.asarray(X), jnp.asarray(Y))


_grad = jax.jit(jax.grad(jax_loss))


def run_gradtx(tx, params: dict, state, n: int = STEPS) -> tuple[dict, object]:
    path = []
    for _ in range(n):
        updates, state = tx.update(_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in NAMES}, state


def initial(values: dict = INIT) -> dict:
    return {k: jnp.asarray(values[k], jnp.float64) for k in NAMES}


def assert_paths_equal(ours: dict, theirs: dict, what: str) -> None:
    for k in NAMES:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=1e-14, err_msg=f"{what} {k}")


# ---------------------------------------------------------------------------------------------------
# torch.optim.Muon


def torch_params(values: dict) -> dict:
    return {k: torch.tensor(np.asarray(values[k]), dtype=torch.float64, requires_grad=True) for k in NAMES}


def run_torch(optimizer, theirs: dict, n: int = STEPS) -> dict:
    path: dict = {k: [] for k in NAMES}
    xs, ys = torch.as_tensor(X), torch.as_tensor(Y)
    with mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone()):  # torch's NS in float64
        for _ in range(n):
            optimizer.zero_grad()
            _loss(theirs, torch.tanh, xs, ys).backward()
            optimizer.step()
            for k in NAMES:
                path[k].append(theirs[k].detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


TORCH_CASES = [
    {},
    {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.01},
    {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3, "weight_decay": 0.0},
    # eps near the momentum's norm: torch's max(||B||, eps), not ||B|| + eps
    {"lr": 0.02, "adjust_lr_fn": "original", "eps": 0.05, "ns_coefficients": (2.0, -1.5, 0.5)},
]
TORCH_IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw in TORCH_CASES]


@pytest.mark.parametrize("kwargs", TORCH_CASES, ids=TORCH_IDS)
def test_torch_muon_trajectory(kwargs):
    theirs = torch_params(INIT)
    reference = run_torch(torch.optim.Muon(list(theirs.values()), **kwargs), theirs)
    tx = pt.Muon(**kwargs)
    params = initial()
    ours, _ = run_gradtx(tx, params, tx.init(params))
    assert_paths_equal(ours, reference, f"torch.optim.Muon({kwargs})")


FIRST, THEN = 8, 16


def test_a_torch_muon_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch():
    kwargs = {"lr": 0.02, "weight_decay": 0.01}
    tx = pt.Muon(**kwargs)
    theirs = torch_params(INIT)
    whole = run_torch(torch.optim.Muon(list(theirs.values()), **kwargs), theirs, FIRST + THEN)
    later = {k: v[FIRST:] for k, v in whole.items()}
    # torch first, then gradtx from torch's params and momentum buffers (torch keeps no step)
    theirs = torch_params(INIT)
    optimizer = torch.optim.Muon(list(theirs.values()), **kwargs)
    run_torch(optimizer, theirs, FIRST)
    params = {k: jnp.asarray(p.detach().numpy()) for k, p in theirs.items()}
    state = pt.state_from_torch(optimizer, tx, params, step=FIRST)
    assert int(state[0].count) == FIRST
    path, _ = run_gradtx(tx, params, state, THEN)
    assert_paths_equal(path, later, "torch resumed in gradtx")
    # gradtx first, then torch from gradtx's state
    params = initial()
    path, state = run_gradtx(tx, params, tx.init(params), FIRST)
    params = {k: jnp.asarray(v[-1]) for k, v in path.items()}
    theirs = torch_params(params)
    optimizer = torch.optim.Muon(list(theirs.values()), **kwargs)
    converted = pt.state_to_torch(state, tx, params, optimizer)
    assert sorted(converted["state"][0]) == ["momentum_buffer"]  # torch's Muon keeps no step
    optimizer.load_state_dict(converted)
    assert_paths_equal(run_torch(optimizer, theirs, THEN), later, "gradtx resumed in torch")
    with pytest.raises(ValueError, match="pass step="):
        pt.state_from_torch(optimizer, tx, params)


def test_torch_muon_takes_torchs_arguments_and_defaults():
    ours = inspect.signature(pt.Muon).parameters
    theirs = {k: v for k, v in inspect.signature(torch.optim.Muon).parameters.items() if k != "params"}
    assert list(ours) == list(theirs)
    for name, p in ours.items():
        assert p.default == theirs[name].default, name


def test_torch_muon_on_non_matrices_and_its_errors():
    # torch refuses vectors and conv kernels; the preset orthogonalizes a vector as one row (g / |g|, up
    # to the iteration's error) and a kernel (out, in, h, w) as one out x (in h w) matrix.
    tx = pt.Muon(lr=1.0, weight_decay=0.0, ns_steps=30, ns_coefficients=(1.5, -0.5, 0.0))
    params = {"b": jnp.asarray([3.0, -4.0]), "k": jnp.ones((2, 3, 2, 2))}
    grads = {"b": jnp.asarray([3.0, -4.0]), "k": jnp.asarray(_rng.normal(size=(2, 3, 2, 2)))}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["b"], [-0.6, 0.8], rtol=1e-5)
    k = np.asarray(updates["k"]).reshape(2, -1)
    np.testing.assert_allclose(k @ k.T, np.eye(2), atol=1e-5)  # orthogonal rows
    for make, message in [
        (lambda: pt.Muon(adjust_lr_fn="rms"), "presets.torch.Muon: adjust_lr_fn must be one of"),
        (lambda: pt.Muon(momentum=1.5), "presets.torch.Muon: momentum must be in [0, 1), got 1.5"),
        (lambda: pt.Muon(ns_coefficients=(1.0, 2.0)), "presets.torch.Muon: ns_coefficients must be three"),
        (lambda: pt.Muon(lr=-1.0), "presets.torch.Muon: lr must be in [0, inf)"),
    ]:
        with pytest.raises((ValueError, TypeError)) as info:
            make()
        assert str(info.value).startswith(message), str(info.value)


# ---------------------------------------------------------------------------------------------------
# Keras's Muon: Muon for 2-D variables, its Adam for the others


KERAS_INIT = {**INIT, "b": np.full(4, 0.1), "embedding": _rng.normal(size=(3, 3)) * 0.3}
KERAS_NAMES = ("w1", "w2", "b", "embedding")


def keras_loss(p: dict) -> jax.Array:
    hidden = jnp.tanh(jnp.asarray(X) @ p["embedding"] @ p["w1"])
    return jnp.mean((hidden @ p["w2"] + p["b"] - jnp.asarray(Y)) ** 2)


_keras_grad = jax.jit(jax.grad(keras_loss))


def run_keras(make) -> dict:
    """32 steps of the Keras optimizer `make()` builds, all of it (its learning rate too) in float64."""
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        optimizer = make()
        variables = [keras.Variable(np.asarray(KERAS_INIT[k]), dtype="float64", name=k) for k in KERAS_NAMES]
        path: dict = {k: [] for k in KERAS_NAMES}

        def float64_norm(x, ord=None, axis=None, keepdims=False):
            return jnp.linalg.norm(keras.ops.convert_to_tensor(x), ord, axis, keepdims)

        # Keras relies on implicit promotion
        with jax.numpy_dtype_promotion("standard"), mock.patch.object(keras.src.ops, "norm", float64_norm):
            for _ in range(STEPS):
                grads = _keras_grad({k: v.value for k, v in zip(KERAS_NAMES, variables, strict=True)})
                optimizer.apply([grads[k] for k in KERAS_NAMES], variables)
                for k, v in zip(KERAS_NAMES, variables, strict=True):
                    path[k].append(np.asarray(v.value))
    finally:
        keras.config.set_floatx(previous)
    return {k: np.stack(v) for k, v in path.items()}


def run_gradtx_keras(tx) -> dict:
    params = {k: jnp.asarray(v, jnp.float64) for k, v in KERAS_INIT.items()}
    state, path = tx.init(params), []
    for _ in range(STEPS):
        updates, state = tx.update(_keras_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in KERAS_NAMES}


KERAS_CASES = [
    {},
    {"learning_rate": 0.02, "momentum": 0.9, "nesterov": False, "rms_rate": None, "weight_decay": 0.01},
    {"learning_rate": 0.01, "exclude_layers": ["w2"], "exclude_embeddings": False, "adam_lr_ratio": 0.5},
    {"learning_rate": 0.01, "adam_beta_1": 0.5, "epsilon": 1e-3, "adam_weight_decay": 0.1, "global_clipnorm": 0.5},
    {"muon_a": 2.0, "muon_b": -1.5, "muon_c": 0.5, "ns_steps": 3, "weight_decay": None, "clipvalue": 0.01},
]
KERAS_IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw in KERAS_CASES]


@pytest.mark.parametrize("kwargs", KERAS_CASES, ids=KERAS_IDS)
def test_keras_muon_trajectory(kwargs):
    reference = run_keras(lambda: keras.optimizers.Muon(**kwargs))
    ours = run_gradtx_keras(pk.Muon(**kwargs))
    for k in KERAS_NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=RTOL, atol=1e-14, err_msg=f"Muon({kwargs}) {k}")


def test_keras_muon_takes_kerass_arguments_and_defaults():
    not_taken = {"loss_scale_factor", "gradient_accumulation_steps", "name", "kwargs", "self"}
    theirs = {
        k: v for k, v in inspect.signature(keras.optimizers.Muon.__init__).parameters.items() if k not in not_taken
    }
    ours = inspect.signature(pk.Muon).parameters
    assert list(ours) == list(theirs)
    for name, p in ours.items():
        assert p.default == theirs[name].default, name
    with pytest.raises(TypeError, match=r"presets\.keras\.Muon: exclude_layers must be a list of strings"):
        pk.Muon(exclude_layers="dense")
    with pytest.raises(ValueError, match=r"presets\.keras\.Muon: momentum must be in"):
        pk.Muon(momentum=1.0)


def test_muon_presets_are_lint_clean_equal_by_value_and_rebuild_from_their_repr():
    for tx in [pt.Muon(**kw) for kw in TORCH_CASES]:
        assert gradtx.lint(tx) == [], tx
    for kw in KERAS_CASES:  # Keras's adam_lr_ratio is a second rate on Adam's leaves, by design
        expected = {"two-lr"} if kw.get("adam_lr_ratio", 1) != 1 else set()
        assert {w.rule for w in gradtx.lint(pk.Muon(**kw))} == expected, kw
    assert pt.Muon(lr=0.02) == pt.Muon(lr=0.02) and hash(pk.Muon()) == hash(pk.Muon())
    namespace = {n: getattr(gradtx, n) for n in gradtx.__all__}
    assert eval(repr(pk.Muon(exclude_layers=["head"])), namespace) == pk.Muon(exclude_layers=["head"])
