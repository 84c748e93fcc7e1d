"""presets.torch.SparseAdam against torch.optim.SparseAdam 2.13 fed `dense_grad.to_sparse()`.

An embedding-like model: a table of 10 rows of which each step's batch uses 3 (the other rows'
gradients are exactly 0, so torch's sparse gradient leaves them out and they keep their moments),
a dense vector and a scalar. 32 steps, float64, the params and torch's exp_avg / exp_avg_sq held
to rtol 1e-10; then a run resumed on the other side (state_from_torch / state_to_torch).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import torch as pt

torch = pytest.importorskip("torch")

STEPS, FIRST, RTOL = 32, 8, 1e-10
_rng = np.random.default_rng(4)
IDS = np.stack([_rng.choice(10, size=3, replace=False) for _ in range(STEPS)])  # the rows each step uses
TARGET = _rng.normal(size=(STEPS, 3))
INIT = {"table": _rng.normal(size=(10, 4)), "w": _rng.normal(size=4), "s": np.asarray(1.5)}
NAMES = ("table", "w", "s")
ORDER = [f"['{k}']" for k in NAMES]


@pytest.fixture(scope="module", autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def loss(p, ids, target, tanh=jnp.tanh, mean=jnp.mean):
    return mean((p["s"] * tanh(p["table"][ids] @ p["w"]) - target) ** 2)


_grad = jax.jit(jax.grad(loss))


def run_gradtx(tx, start, first, n, state=None):
    params = {k: jnp.asarray(v, jnp.float64) for k, v in start.items()}
    state = tx.init(params) if state is None else state
    path = []
    for k in range(first, first + n):
        updates, state = tx.update(_grad(params, IDS[k], TARGET[k]), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append({key: np.asarray(v) for key, v in params.items()})
    return path, state


def run_torch(optimizer, theirs, first, n):
    path = []
    for k in range(first, first + n):
        optimizer.zero_grad()
        loss(theirs, torch.as_tensor(IDS[k]), torch.as_tensor(TARGET[k]), torch.tanh, torch.mean).backward()
        for p in theirs.values():
            p.grad = p.grad.to_sparse()  # exactly the nonzero entries
        optimizer.step()
        path.append({key: p.detach().numpy().copy() for key, p in theirs.items()})
    return path


def torch_params(values):
    return {k: torch.tensor(np.asarray(values[k]), dtype=torch.float64, requires_grad=True) for k in NAMES}


def assert_paths_equal(ours, theirs, what):
    for key in NAMES:
        np.testing.assert_allclose(np.stack([p[key] for p in ours]), np.stack([p[key] for p in theirs]), rtol=RTOL,
                                   atol=1e-14, err_msg=f"{what} {key}")  # fmt: skip


CASES = [{}, {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3}, {"lr": 0.01, "maximize": True}]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_trajectory_and_moments_equal_torchs(kwargs):
    theirs = torch_params(INIT)
    optimizer = torch.optim.SparseAdam(list(theirs.values()), **kwargs)
    reference = run_torch(optimizer, theirs, 0, STEPS)
    tx = pt.SparseAdam(**kwargs)
    ours, state = run_gradtx(tx, INIT, 0, STEPS)
    assert_paths_equal(ours, reference, "params")
    adam = state[-2]
    for key, p in theirs.items():
        for field, name in (("mu", "exp_avg"), ("nu", "exp_avg_sq")):
            np.testing.assert_allclose(getattr(adam, field)[key], optimizer.state[p][name].numpy(), rtol=RTOL,
                                       atol=1e-300, err_msg=f"{name} {key}")  # fmt: skip
    unused = sorted(set(range(10)) - set(IDS.ravel()))
    touched = [r for r in range(10) if r not in IDS[:4].ravel()]  # rows that waited 4+ steps
    assert touched, "every row is used from the start: the test would not see a row wait"
    if unused:  # a row never used keeps its initial value and zero moments
        assert np.array_equal(ours[-1]["table"][unused], INIT["table"][unused])
    dense = pt.Adam(lr=kwargs.get("lr", 1e-3), betas=kwargs.get("betas", (0.9, 0.999)))
    moved, _ = run_gradtx(dense, INIT, 0, STEPS)
    assert not np.allclose(moved[-1]["table"], ours[-1]["table"], rtol=1e-6), "dense Adam would move all rows"


def test_a_torch_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch():
    kwargs = {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3}
    tx = pt.SparseAdam(**kwargs)
    theirs = torch_params(INIT)
    whole = run_torch(torch.optim.SparseAdam(list(theirs.values()), **kwargs), theirs, 0, STEPS)
    theirs = torch_params(INIT)
    optimizer = torch.optim.SparseAdam(list(theirs.values()), **kwargs)
    start = run_torch(optimizer, theirs, 0, FIRST)[-1]
    params = {k: jnp.asarray(v) for k, v in start.items()}
    path, _ = run_gradtx(tx, start, FIRST, STEPS - FIRST, pt.state_from_torch(optimizer, tx, params, order=ORDER))
    assert_paths_equal(path, whole[FIRST:], "resumed in gradtx")
    path, state = run_gradtx(tx, INIT, 0, FIRST)
    theirs = torch_params(path[-1])
    optimizer = torch.optim.SparseAdam(list(theirs.values()), **kwargs)
    params = {k: jnp.asarray(v) for k, v in path[-1].items()}
    optimizer.load_state_dict(pt.state_to_torch(state, tx, params, optimizer, order=ORDER))
    assert_paths_equal(run_torch(optimizer, theirs, FIRST, STEPS - FIRST), whole[FIRST:], "resumed in torch")


def test_the_preset_takes_torchs_arguments_and_defaults():
    ours = inspect.signature(pt.SparseAdam).parameters
    theirs = {k: v for k, v in inspect.signature(torch.optim.SparseAdam).parameters.items() if k != "params"}
    assert list(ours) == list(theirs)
    assert all(p.default == theirs[k].default and p.kind == theirs[k].kind for k, p in ours.items())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.SparseAdam(betas=(1.5, 0.9)), "presets.torch.SparseAdam: betas[0] must be in [0, 1), got 1.5"),
        (lambda: pt.SparseAdam(betas=0.9), "presets.torch.SparseAdam: betas must be a pair"),
        (lambda: pt.SparseAdam(lr=-1.0), "presets.torch.SparseAdam: lr must be in [0, inf)"),
        (lambda: pt.SparseAdam(eps=float("nan")), "presets.torch.SparseAdam: eps must be in [0, inf), got nan"),
    ],
)
def test_errors_name_the_preset_and_torchs_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
