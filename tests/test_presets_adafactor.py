"""presets.torch.Adafactor against torch.optim.Adafactor 2.13 and presets.keras.Adafactor against
keras.optimizers.Adafactor 3.15 (JAX backend): the same arguments give the same trajectories.

A four-leaf model whose leaves have 3, 2, 1 and 0 dimensions (the factored statistics over the
last two dimensions, the unfactored second moment of vectors and scalars), 32 steps, float64, the
params held to rtol 1e-10 at every step; then a torch run resumed in gradtx and a gradtx run
resumed in torch (state_from_torch / state_to_torch: row_var, col_var, variance, step).
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
from gradtx.presets import torch as pt

torch = pytest.importorskip("torch")
if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    pytest.skip("Keras must run on its JAX backend here (KERAS_BACKEND=jax)", allow_module_level=True)
keras = pytest.importorskip("keras")

STEPS, FIRST, RTOL = 32, 8, 1e-10
_rng = np.random.default_rng(2)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"k": _rng.normal(size=(2, 3, 4)), "w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}
NAMES = ("k", "w", "b", "s")  # torch's and Keras's order; the JAX dict flattens as b, k, s, w
ORDER = [f"['{k}']" for k in NAMES]


@pytest.fixture(scope="module", autouse=True)
def float64():
    previous = torch.get_default_dtype(), keras.config.floatx()
    torch.set_default_dtype(torch.float64)
    keras.config.set_floatx("float64")
    yield
    torch.set_default_dtype(previous[0])
    keras.config.set_floatx(previous[1])


def loss(p, xp=jnp):
    hidden = xp.tanh(xp.asarray(X) @ p["w"] + p["b"]) * p["s"] + 0.5 * xp.tanh(
        xp.einsum("nj,ijk->nk", xp.asarray(X), p["k"])
    )
    return xp.mean((hidden - xp.asarray(Y)) ** 2) + 0.01 * xp.sum(p["w"] ** 2)


_grad = jax.jit(jax.grad(loss))


def run_gradtx(tx, n=STEPS, params=None, state=None):
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()} if params is None else params
    state = tx.init(params) if state is None else state
    path = []
    for _ in range(n):
        updates, state = tx.update(_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in NAMES}, state


def torch_params(values):
    return {k: torch.tensor(np.asarray(values[k]), dtype=torch.float64, requires_grad=True) for k in NAMES}


def run_torch(optimizer, theirs, n=STEPS):
    path = {k: [] for k in NAMES}
    for _ in range(n):
        optimizer.zero_grad()
        loss(theirs, xp=_TorchOps).backward()
        optimizer.step()
        for k in NAMES:
            path[k].append(theirs[k].detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


class _TorchOps:
    """The few jnp functions `loss` uses, on torch tensors."""

    tanh, einsum = staticmethod(torch.tanh), staticmethod(torch.einsum)
    mean, sum = staticmethod(torch.mean), staticmethod(torch.sum)

    @staticmethod
    def asarray(x):
        return torch.as_tensor(x)


def _mean_in_its_dtype(x, axis=None, keepdims=False):
    return jnp.mean(jnp.asarray(x), axis=axis, keepdims=keepdims)


def run_keras(optimizer, float64_means=True):
    """Keras's trajectory. Keras 3.15's JAX backend computes `ops.mean` in float32 whatever the input
    (`result_type(x.dtype, "float32")` is float32 in its dtype lattice), and Adafactor takes its
    statistics and RMSs with it: float64_means computes them in float64, as every other op runs."""
    import keras.src.backend.jax.numpy as backend

    original = backend.mean
    if float64_means:
        backend.mean = _mean_in_its_dtype
    try:
        return _run_keras(optimizer)
    finally:
        backend.mean = original


def _run_keras(optimizer):
    variables = [keras.Variable(np.asarray(INIT[k]), dtype="float64") for k in NAMES]
    path = {k: [] for k in NAMES}
    with jax.numpy_dtype_promotion("standard"):  # Keras relies on implicit promotion
        for _ in range(STEPS):
            grads = _grad({k: v.value for k, v in zip(NAMES, variables, strict=True)})
            optimizer.apply([grads[k] for k in NAMES], variables)
            for k, v in zip(NAMES, variables, strict=True):
                path[k].append(np.asarray(v.value))
    return {k: np.stack(v) for k, v in path.items()}


def assert_paths_equal(ours, theirs, what):
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=1e-14, err_msg=f"{what} {k}")


TORCH_CASES = [
    {},
    {"lr": 0.3},  # rho_t = 1 / sqrt(t) until t = 12, then lr
    {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-3, 1e-2), "d": 2.0, "weight_decay": 0.1},
    {"lr": 0.02, "eps": (None, 0.5), "maximize": True},
]


@pytest.mark.parametrize(
    "kwargs", TORCH_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
)
def test_trajectory_equals_torch(kwargs):
    theirs = torch_params(INIT)
    reference = run_torch(torch.optim.Adafactor(list(theirs.values()), **kwargs, foreach=False), theirs)
    ours, _ = run_gradtx(pt.Adafactor(**kwargs))
    assert_paths_equal(ours, reference, "torch")
    assert not np.allclose(reference["k"][-1], INIT["k"], rtol=1e-3), "the params must move"


KERAS_CASES = [
    {},
    {"learning_rate": 0.3, "beta_2_decay": -0.5, "epsilon_1": 1e-3, "epsilon_2": 1e-2, "clip_threshold": 0.5},
    {"learning_rate": 0.3, "relative_step": False},  # Keras takes min(lr, 1 / sqrt(t)) all the same
    {"learning_rate": 0.05, "weight_decay": 0.1, "clipvalue": 0.05},
    {"learning_rate": 0.05, "weight_decay": 0.5, "global_clipnorm": 0.1, "epsilon_2": 0.5},
]


@pytest.mark.parametrize(
    "kwargs", KERAS_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
)
def test_trajectory_equals_keras(kwargs):
    reference = run_keras(keras.optimizers.Adafactor(**kwargs))
    ours, _ = run_gradtx(pk.Adafactor(**kwargs))
    assert_paths_equal(ours, reference, "keras")
    assert not np.allclose(reference["k"][-1], INIT["k"], rtol=1e-3), "the params must move"


def test_kerass_own_means_round_to_float32():
    """Unpatched, Keras's float32 means move its trajectory by float32's resolution, no more."""
    reference = run_keras(keras.optimizers.Adafactor(), float64_means=False)
    ours, _ = run_gradtx(pk.Adafactor())
    for k in NAMES:
        np.testing.assert_allclose(ours[k], reference[k], rtol=1e-6, err_msg=k)
    assert not all(np.allclose(ours[k], reference[k], rtol=1e-10, atol=1e-14) for k in NAMES)


def test_a_schedule_is_read_at_keras_iterations():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.4, 4, 0.5)
    reference = run_keras(keras.optimizers.Adafactor(learning_rate=schedule))
    ours, _ = run_gradtx(pk.Adafactor(learning_rate=gradtx.exponential_decay(0.4, 4, 0.5)))
    assert_paths_equal(ours, reference, "keras schedule")


@pytest.mark.parametrize("kwargs", [TORCH_CASES[0], TORCH_CASES[2]], ids=["defaults", "all"])
def test_a_torch_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch(kwargs):
    make_torch = lambda ps: torch.optim.Adafactor(list(ps.values()), **kwargs, foreach=False)
    tx = pt.Adafactor(**kwargs)
    theirs = torch_params(INIT)
    whole = run_torch(make_torch(theirs), theirs)
    rest = {k: v[FIRST:] for k, v in whole.items()}
    theirs = torch_params(INIT)
    optimizer = make_torch(theirs)
    run_torch(optimizer, theirs, FIRST)
    params = {k: jnp.asarray(p.detach().numpy()) for k, p in theirs.items()}
    state = pt.state_from_torch(optimizer, tx, params, order=ORDER)
    path, _ = run_gradtx(tx, STEPS - FIRST, params, state)
    assert_paths_equal(path, rest, "resumed in gradtx")
    path, state = run_gradtx(tx, FIRST)
    params = {k: jnp.asarray(v[-1]) for k, v in path.items()}
    theirs = torch_params(params)
    optimizer = make_torch(theirs)
    sd = pt.state_to_torch(state, tx, params, optimizer, order=ORDER)
    assert sorted(sd["state"][0]) == ["col_var", "row_var", "step"] and sorted(sd["state"][2]) == ["step", "variance"]
    optimizer.load_state_dict(sd)
    assert_paths_equal(run_torch(optimizer, theirs, STEPS - FIRST), rest, "resumed in torch")


def test_optaxs_factoring_does_not_convert():
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    with pytest.raises(ValueError, match="factors the two largest dimensions"):
        pt.state_to_torch(
            gradtx.adafactor(0.1).init(params),
            gradtx.adafactor(0.1),
            params,
            {"state": {}, "param_groups": [{"params": [0, 1, 2, 3]}]},
        )


@pytest.mark.parametrize(
    ("ours", "theirs"), [(pt.Adafactor, torch.optim.Adafactor), (pk.Adafactor, keras.optimizers.Adafactor)]
)
def test_the_presets_take_the_frameworks_arguments_and_defaults(ours, theirs):
    not_taken = {"params", "foreach", "self", "loss_scale_factor", "gradient_accumulation_steps", "name", "kwargs"}
    theirs = {k: v for k, v in inspect.signature(theirs.__init__).parameters.items() if k not in not_taken}
    mine = inspect.signature(ours).parameters
    assert list(mine) == list(theirs)
    assert all(p.default == theirs[k].default and p.kind == theirs[k].kind for k, p in mine.items())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.Adafactor(beta2_decay=0.5), "presets.torch.Adafactor: beta2_decay must be in (-inf, 0], got 0.5"),
        (lambda: pt.Adafactor(d=0.5), "presets.torch.Adafactor: d must be in [1, inf), got 0.5"),
        (lambda: pt.Adafactor(eps=1e-3), "presets.torch.Adafactor: eps must be a pair"),
        (lambda: pt.Adafactor(eps=(-1.0, 1e-3)), "presets.torch.Adafactor: eps[0] must be in [0, inf), got -1.0"),
        (
            lambda: pt.Adafactor(lr=gradtx.constant_schedule(0.1), weight_decay=0.1),
            "presets.torch.Adafactor: lr must be a number",
        ),
        (lambda: pk.Adafactor(epsilon_2=-1.0), "presets.keras.Adafactor: epsilon_2 must be in [0, inf), got -1.0"),
        (lambda: pk.Adafactor(relative_step=1), "presets.keras.Adafactor: relative_step must be True or False"),
    ],
)
def test_errors_name_the_preset_and_the_frameworks_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
