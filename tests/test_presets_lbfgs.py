"""presets.torch.LBFGS (gradtx.safeguarded_lbfgs) against torch.optim.LBFGS 2.13, line_search_fn=None
(with "strong_wolfe": tests/test_presets_lbfgs_wolfe.py).

One gradtx update is one of torch's inner iterations: torch with max_iter=1 over 16 calls of
`step(closure)` and with max_iter=4 over 4 calls (compared at the iterations each call ended on,
torch's state["n_iter"]) walk the same params as 16 gradtx updates, float64, rtol 1e-10 (of each
leaf's largest entry, for entries that pass near 0). The model is non-convex (tanh), so that the
first step's min(1, 1 / ||g||_1), H_diag and the skipped pairs of too little curvature all matter;
the stopping tests are run where they fire.

Why 16 iterations, not 32: L-BFGS at these step sizes carries roundings forward, ~4x every three
iterations. torch against itself with its params listed in another order (its flat dot products
summed in another order) drifts by 1e-12 after 16 iterations and by ~1e-9 after 24, and gradtx's
per-leaf sums drift from torch by the same.
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

STEPS, RTOL = 16, 1e-10
_rng = np.random.default_rng(3)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}
NAMES = ("w", "s", "b")  # torch's order; the JAX dict flattens as b, s, w


@pytest.fixture(scope="module", autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def loss(p, tanh=jnp.tanh, mean=jnp.mean, total=jnp.sum, as_array=jnp.asarray):
    prediction = p["s"] * tanh(as_array(X) @ p["w"] + p["b"])
    return mean((prediction - as_array(Y)) ** 2) + 0.01 * total(p["w"] ** 2)


_grad = jax.jit(jax.grad(loss))


def torch_loss(p):
    return loss(p, torch.tanh, torch.mean, torch.sum, torch.as_tensor)


def run_gradtx(tx, n=STEPS, params=None, state=None):
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()} if params is None else params
    state = tx.init(params) if state is None else state
    step, path = jax.jit(tx.update), []
    for _ in range(n):
        updates, state = step(_grad(params), state)
        params = gradtx.apply_updates(params, updates)
        path.append({k: np.asarray(v) for k, v in params.items()})
    return path, state


def run_torch(calls, start=None, load=None, **kwargs):
    """The params after each call of step(closure), with the number of iterations taken so far; from
    `start` (params) with the state dict `load(optimizer, params)` if given; and the optimizer."""
    start = INIT if start is None else start
    theirs = {k: torch.tensor(np.asarray(start[k]), dtype=torch.float64, requires_grad=True) for k in NAMES}
    optimizer = torch.optim.LBFGS(list(theirs.values()), **kwargs)
    if load is not None:
        optimizer.load_state_dict(load(optimizer))

    def closure():
        optimizer.zero_grad()
        value = torch_loss(theirs)
        value.backward()
        return value

    out = []
    for _ in range(calls):
        optimizer.step(closure)
        iterations = optimizer.state[optimizer._params[0]]["n_iter"]
        out.append((iterations, {k: p.detach().numpy().copy() for k, p in theirs.items()}))
    run_torch.optimizer = optimizer
    return out


def assert_walks_the_same_iterates(ours, theirs, what, names=NAMES):
    """gradtx's iterate after each of torch's calls (torch's n_iter) equals torch's params then."""
    for iterations, params in theirs:
        for k in names:
            scale = np.max(np.abs(params[k]))
            np.testing.assert_allclose(
                ours[iterations - 1][k],
                params[k],
                rtol=RTOL,
                atol=RTOL * scale,
                err_msg=f"{what}: {k} after {iterations}",
            )


CASES = [
    {},
    {"lr": 0.5, "history_size": 3},  # the ring of pairs wraps around
    {"lr": 1.5, "history_size": 5},  # overshoots: pairs of negative curvature, skipped
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_one_update_is_one_torch_iteration(kwargs):
    ours, state = run_gradtx(pt.LBFGS(**kwargs))
    assert_walks_the_same_iterates(ours, run_torch(STEPS, max_iter=1, **kwargs), "max_iter=1")
    assert_walks_the_same_iterates(ours, run_torch(4, max_iter=4, **kwargs), "max_iter=4")
    assert not np.allclose(ours[-1]["w"], INIT["w"], rtol=1e-3), "the params must move"
    if kwargs.get("lr") == 1.5:
        assert int(state[0].pairs) < STEPS - 1, "no pair was skipped: the test would not see the skipping"


def test_the_stopping_tests_stop_where_torchs_do():
    # tolerance_grad: no step once max |g| <= 0.055 (after 3 steps);
    # tolerance_change: none once <g, d> > -0.02 (at the third)
    for kwargs in ({"tolerance_grad": 0.055}, {"tolerance_change": 0.02}):
        ours, _ = run_gradtx(pt.LBFGS(**kwargs), n=STEPS)
        assert_walks_the_same_iterates(ours, run_torch(STEPS, max_iter=1, **kwargs), str(kwargs))
        assert np.array_equal(ours[-1]["w"], ours[-2]["w"]), f"{kwargs}: the run did not stop"


@pytest.mark.parametrize("kwargs", CASES[:2], ids=["defaults", "ring"])
def test_a_torch_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch(kwargs):
    first = 6  # with history_size=3, the ring has wrapped: torch's oldest pair is not slot 0
    order = [f"['{k}']" for k in NAMES]
    tx = pt.LBFGS(**kwargs)
    whole = [params for _, params in run_torch(STEPS, max_iter=1, **kwargs)]
    start = run_torch(first, max_iter=1, **kwargs)[-1][1]
    params = {k: jnp.asarray(v) for k, v in start.items()}
    state = pt.state_from_torch(run_torch.optimizer, tx, params, order=order)
    assert int(state[0].count) == first
    path, _ = run_gradtx(tx, STEPS - first, params, state)
    assert_walks_the_same_iterates(path, list(enumerate(whole[first:], start=1)), "resumed in gradtx")
    path, state = run_gradtx(tx, first)
    load = lambda optimizer: pt.state_to_torch(state, tx, path[-1], optimizer, order=order)
    continued = [params for _, params in run_torch(STEPS - first, start=path[-1], load=load, max_iter=1, **kwargs)]
    assert_walks_the_same_iterates(continued, list(enumerate(whole[first:], start=1)), "resumed in torch")


def test_the_preset_takes_torchs_arguments_and_defaults():
    ours = inspect.signature(pt.LBFGS).parameters
    theirs = {k: v for k, v in inspect.signature(torch.optim.LBFGS).parameters.items() if k != "params"}
    assert list(ours) == list(theirs)
    assert all(p.default == theirs[k].default and p.kind == theirs[k].kind for k, p in ours.items())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.LBFGS(line_search_fn="wolfe"), "presets.torch.LBFGS: line_search_fn must be None or one of"),
        (lambda: pt.LBFGS(history_size=0), "presets.torch.LBFGS: history_size must be in [1, inf), got 0"),
        (lambda: pt.LBFGS(lr=-1.0), "presets.torch.LBFGS: lr must be in [0, inf), got -1.0"),
        (lambda: pt.LBFGS(max_iter=0), "presets.torch.LBFGS: max_iter must be in [1, inf), got 0"),
    ],
)
def test_errors_name_the_preset_and_torchs_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
