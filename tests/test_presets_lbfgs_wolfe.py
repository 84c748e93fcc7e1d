"""presets.torch.LBFGS(line_search_fn="strong_wolfe") against torch.optim.LBFGS 2.13, float64.

One gradtx update is one of torch's inner iterations, its step size from gradtx's port of torch's
strong-Wolfe search (gradtx/transforms/strong_wolfe.py). On a Rosenbrock valley in two leaves
(nonquadratic: the searches bracket, extrapolate and zoom, which the test checks by watching torch's
cubic interpolation), gradtx's 16 updates walk torch's iterates at rtol 1e-10 (of each leaf's
largest entry): with max_iter=1 over 16 calls (max_eval=25: whole searches; the default max_eval=1:
the first trial alone, kept only if the loss does not rise), and with max_iter=4 and 20 (calls of
several iterations, each search's budget what the call has left, calls that end early; 24
iterations, since one call of 20 takes 20), compared at the iterations each call ended on (torch's
state["n_iter"]). A torch run resumes in gradtx and a gradtx run in torch (state_from_torch,
state_to_torch). 16 iterations: see test_presets_lbfgs.py (here the drift stays below 1e-12).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.presets import torch as pt
from tests import test_presets_lbfgs as lbfgs_tests

torch = pytest.importorskip("torch")
torch_lbfgs = pytest.importorskip("torch.optim.lbfgs")

STEPS, RTOL = 16, 1e-10
INIT = {
    "u": np.asarray([[-1.2, -0.5, 0.3], [1.5, -1.0, 0.8]]),
    "v": np.asarray([[1.0, 0.5, -0.2], [1.2, 0.9, 0.1]]),
}
NAMES = ("v", "u")  # torch's order; the JAX dict flattens as u, v


@pytest.fixture(scope="module", autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def loss(p, total=jnp.sum):
    """Rosenbrock's valley in each entry (v = u^2), and a coupling of the two leaves."""
    u, v = p["u"], p["v"]
    return total(100.0 * (v - u**2) ** 2 + (1.0 - u) ** 2) + 0.1 * total(u * v)


def torch_loss(p):
    return loss(p, torch.sum)


@functools.cache
def _step(tx):
    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=loss)
        return gradtx.apply_updates(params, updates), state

    return step


def run_gradtx(tx, n=STEPS, params=None, state=None):
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()} if params is None else params
    state = tx.init(params) if state is None else state
    path = []
    for _ in range(n):
        params, state = _step(tx)(params, state)
        path.append({k: np.asarray(v) for k, v in params.items()})
    return path, state


def run_torch(calls, start=None, load=None, **kwargs):
    """The (iterations so far, params) after each call of step(closure), from `start` with the state
    dict `load(optimizer)` if given; the optimizer and each call's evaluations in run_torch.*."""
    start = INIT if start is None else start
    theirs = {k: torch.tensor(np.asarray(start[k]), dtype=torch.float64, requires_grad=True) for k in NAMES}
    optimizer = torch.optim.LBFGS(list(theirs.values()), line_search_fn="strong_wolfe", **kwargs)
    if load is not None:
        optimizer.load_state_dict(load(optimizer))

    def closure():
        optimizer.zero_grad()
        value = torch_loss(theirs)
        value.backward()
        return value

    out, evaluations = [], []
    for _ in range(calls):
        before = optimizer.state[optimizer._params[0]].get("func_evals", 0)
        optimizer.step(closure)
        state = optimizer.state[optimizer._params[0]]
        evaluations.append(state["func_evals"] - before)
        out.append((state["n_iter"], {k: p.detach().numpy().copy() for k, p in theirs.items()}))
    run_torch.optimizer, run_torch.evaluations = optimizer, evaluations
    return out


def assert_walks_the_same_iterates(ours, theirs, what):
    lbfgs_tests.assert_walks_the_same_iterates(ours, theirs, what, names=NAMES)


@pytest.fixture
def interpolations(monkeypatch):
    """Torch's calls of its cubic interpolation: 'extrapolate' (bracketing, bounded) or 'zoom'."""
    seen = []
    original = torch_lbfgs._cubic_interpolate

    def watched(*args, bounds=None):
        seen.append("zoom" if bounds is None else "extrapolate")
        return original(*args, bounds=bounds)

    monkeypatch.setattr(torch_lbfgs, "_cubic_interpolate", watched)
    return seen


CASES = {  # the kwargs, and the phases of torch's searches that the run must go through
    "overshoot": ({"lr": 3.0, "max_eval": 25}, {"zoom"}),  # Armijo fails: a bracket, zoomed
    "short": ({"lr": 0.1, "max_eval": 25}, {"extrapolate"}),  # the slope still steep: steps grow
    "ring": ({"lr": 0.5, "history_size": 3, "max_eval": 25}, {"zoom"}),  # the ring of pairs wraps around
    "default-max_eval": ({}, set()),  # max_eval = 1: the first trial alone
}


@pytest.mark.parametrize("name", CASES)
def test_one_update_is_one_torch_iteration_with_max_iter_1(name, interpolations):
    kwargs, phases = CASES[name]
    ours, _ = run_gradtx(pt.LBFGS(max_iter=1, line_search_fn="strong_wolfe", **kwargs))
    assert_walks_the_same_iterates(ours, run_torch(STEPS, max_iter=1, **kwargs), "max_iter=1")
    assert not np.allclose(ours[-1]["u"], INIT["u"], rtol=1e-3), "the params must move"
    assert phases <= set(interpolations), interpolations
    if phases:  # some searches took several trials
        assert max(run_torch.evaluations) > 2, run_torch.evaluations
    else:
        assert set(run_torch.evaluations) == {2}, run_torch.evaluations


@pytest.mark.parametrize("max_iter", [4, 20])
def test_calls_of_several_iterations_split_the_evaluations_as_torchs(max_iter):
    # max_iter=4: calls end on max_eval (5 evaluations, or 6 where the last search may take 2 more)
    # after 3 or 4 iterations; max_iter=20: after 20 iterations, 24 evaluations
    n = 24
    ours, _ = run_gradtx(pt.LBFGS(max_iter=max_iter, line_search_fn="strong_wolfe"), n=n)
    theirs = [(k, params) for k, params in run_torch(n, max_iter=max_iter) if k <= n]
    assert theirs and any(e > max_iter for e in run_torch.evaluations), run_torch.evaluations
    assert_walks_the_same_iterates(ours, theirs, f"max_iter={max_iter}")


def test_a_torch_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch():
    first, kwargs = 6, {"max_iter": 1, "max_eval": 25, "history_size": 3}
    order = [f"['{k}']" for k in NAMES]
    tx = pt.LBFGS(line_search_fn="strong_wolfe", **kwargs)
    whole = [params for _, params in run_torch(STEPS, **kwargs)]
    start = run_torch(first, **kwargs)[-1][1]
    params = {k: jnp.asarray(v) for k, v in start.items()}
    state = pt.state_from_torch(run_torch.optimizer, tx, params, order=order)
    assert int(state[0].count) == first and int(state[0].call_evaluations) == 0
    path, _ = run_gradtx(tx, STEPS - first, params, state)
    assert_walks_the_same_iterates(path, list(enumerate(whole[first:], start=1)), "resumed in gradtx")
    path, state = run_gradtx(tx, first)
    load = lambda optimizer: pt.state_to_torch(state, tx, path[-1], optimizer, order=order)
    continued = [params for _, params in run_torch(STEPS - first, start=path[-1], load=load, **kwargs)]
    assert_walks_the_same_iterates(continued, list(enumerate(whole[first:], start=1)), "resumed in torch")


def test_the_stopping_tests_end_calls_where_torchs_do():
    # max_iter=4. tolerance_change=0.01: calls ended early by a small change of the loss (after 3
    # and 2 evaluations), the next ones with a fresh budget; tolerance_grad=3: the call ends at the
    # fifth iteration, no step after
    for kwargs, stops in (({"tolerance_change": 0.01}, False), ({"tolerance_grad": 3.0}, True)):
        ours, _ = run_gradtx(pt.LBFGS(max_iter=4, line_search_fn="strong_wolfe", **kwargs))
        theirs = [(n, params) for n, params in run_torch(10, max_iter=4, **kwargs) if n <= STEPS]
        assert_walks_the_same_iterates(ours, theirs, str(kwargs))
        assert min(run_torch.evaluations[:4]) < 5, run_torch.evaluations  # a call ended before max_eval
        assert np.array_equal(ours[-1]["u"], ours[-2]["u"]) == stops, kwargs


def test_the_update_says_what_to_pass_without_the_loss():
    tx = pt.LBFGS(line_search_fn="strong_wolfe")
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    with pytest.raises(TypeError, match="safeguarded_lbfgs: update was called without the keyword arguments"
                       " value, grad, value_fn") as info:  # fmt: skip
        tx.update(params, tx.init(params), params)
    assert "value_fn=loss_fn" in str(info.value) and "make_step" in str(info.value)
    with pytest.raises(ValueError, match="safeguarded_lbfgs: update needs params"):
        tx.update(params, tx.init(params), value=1.0, grad=params, value_fn=loss)


def test_a_line_search_other_than_torchs_is_refused():
    with pytest.raises(ValueError) as info:
        pt.LBFGS(line_search_fn="backtracking")
    assert str(info.value) == (
        "presets.torch.LBFGS: line_search_fn must be None or one of ('strong_wolfe',), got 'backtracking'"
    )
