"""gradtx.presets.torch against torch.optim 2.13: the same arguments give the same trajectories.

Every case builds torch's optimizer and gradtx's preset from ONE dict of keyword arguments (the
presets take torch's names and defaults), trains a three-leaf model for 32 steps on each side
(torch's autograd at torch's params, jax.grad at gradtx's), and holds the params to rtol 1e-10 at
every step, in float64. Then the state conversion: a torch run resumed in gradtx and a gradtx run
resumed in torch continue on the same trajectory as the run that was not interrupted.
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

STEPS = 32
RTOL = 1e-10
_rng = np.random.default_rng(0)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}
TORCH_ORDER = ("w", "s", "b")  # torch's param list order; the JAX dict flattens as b, s, w
ORDER = [f"['{k}']" for k in TORCH_ORDER]


@pytest.fixture(scope="module", autouse=True)
def torch_float64():
    """torch's scalar state (steps, NAdam's mu_product) in float64, as the params."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def torch_loss(p: dict) -> torch.Tensor:
    prediction = p["s"] * torch.tanh(torch.as_tensor(X) @ p["w"] + p["b"])
    return torch.mean((prediction - torch.as_tensor(Y)) ** 2) + 0.01 * torch.sum(p["w"] ** 2)


def jax_loss(p: dict) -> jax.Array:
    prediction = p["s"] * jnp.tanh(jnp.asarray(X) @ p["w"] + p["b"])
    return jnp.mean((prediction - jnp.asarray(Y)) ** 2) + 0.01 * jnp.sum(p["w"] ** 2)


_grad = jax.jit(jax.grad(jax_loss))


def _run(tx, n, params, state):
    """n steps of tx with jax.grad from (params, state): the params after each step (stacked), the last state.

    One compiled gradient for the module; each transformation's update compiles once (an eager
    update runs as one program) and is reused by every call with an equal transformation.
    """
    path = []
    for _ in range(n):
        updates, state = tx.update(_grad(params), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in params}, state


def torch_params(values: dict) -> dict:
    return {k: torch.tensor(np.asarray(values[k]), dtype=torch.float64, requires_grad=True) for k in TORCH_ORDER}


def run_torch(optimizer, theirs: dict, n: int, scheduler=None) -> dict:
    """n steps of a torch optimizer over `theirs`: the params after each step, stacked."""
    path = {k: [] for k in theirs}
    for _ in range(n):
        optimizer.zero_grad()
        torch_loss(theirs).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for k, p in theirs.items():
            path[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


def assert_paths_equal(ours, theirs, what=""):
    for k in theirs:
        np.testing.assert_allclose(np.asarray(ours[k]), theirs[k], rtol=RTOL, atol=1e-14, err_msg=f"{what} {k}")


def initial():
    return {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}


# (torch class, keyword arguments given to both): defaults and every branch of each optimizer.
CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "eps": 1e-3}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "eps": 1e-4}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.1, "weight_decay": 0.01, "eps": 1e-4}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.01}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.01, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-3, "weight_decay": 0.01}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-5, "weight_decay": 0.01, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.01}),
    ("Rprop", {}),
    ("Rprop", {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (5e-3, 0.1)}),
    ("Rprop", {"lr": 0.5, "step_sizes": (1e-3, 0.1), "maximize": True}),  # lr above the maximum: clipped
    ("ASGD", {}),
    ("ASGD", {"lr": 0.05, "lambd": 1e-2, "alpha": 0.5, "t0": 4, "weight_decay": 0.01, "maximize": True}),
]
IDS = [f"{cls}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for cls, kw in CASES]


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=IDS)
def test_trajectory_equals_torch(cls, kwargs):
    theirs = torch_params(INIT)
    reference = run_torch(getattr(torch.optim, cls)(list(theirs.values()), **kwargs, foreach=False), theirs, STEPS)
    tx = getattr(pt, cls)(**kwargs)
    params = initial()
    path, _ = _run(tx, STEPS, params, tx.init(params))
    assert_paths_equal(path, reference, cls)
    assert not np.allclose(reference["w"][-1], INIT["w"], rtol=1e-3), "the params must move"


SCHEDULED = [
    # A learning-rate schedule with momentum: torch's buffer holds unscaled steps, and so does the
    # preset's trace (before the learning rate); gradtx.rmsprop's, as optax's, holds lr-scaled ones.
    ("RMSprop", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adagrad", {}),
]


@pytest.mark.parametrize(("cls", "kwargs"), SCHEDULED, ids=[c for c, _ in SCHEDULED])
def test_a_gradtx_schedule_equals_a_torch_scheduler(cls, kwargs):
    theirs = torch_params(INIT)
    optimizer = getattr(torch.optim, cls)(list(theirs.values()), lr=0.05, **kwargs, foreach=False)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    reference = run_torch(optimizer, theirs, STEPS, scheduler)
    tx = getattr(pt, cls)(lr=gradtx.exponential_decay(0.05, 1, 0.8), **kwargs)
    params = initial()
    path, _ = _run(tx, STEPS, params, tx.init(params))
    assert_paths_equal(path, reference, cls)
    if cls == "RMSprop":  # optax's order is another algorithm under a schedule
        other = gradtx.rmsprop(gradtx.exponential_decay(0.05, 1, 0.8), 0.99, 1e-8, eps_in_sqrt=False, momentum=0.9)
        path, _ = _run(other, STEPS, params, other.init(params))
        assert not np.allclose(np.asarray(path["w"]), reference["w"], rtol=1e-4)


# ---------------------------------------------------------------------------------------------------
# State conversion: resume a run on the other side

RESUME = [
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "eps": 1e-3}),
    ("AdamW", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "eps": 1e-3}),  # resumed at t = 8: rectified from t = 6 on
    ("Adamax", {"lr": 0.02, "eps": 1e-3}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adadelta", {"lr": 0.5}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("Rprop", {"lr": 0.05}),
    ("ASGD", {"lr": 0.05, "lambd": 1e-2, "t0": 4}),  # averaging from step 6 on, across the resume
]
FIRST, THEN = 8, 16


@pytest.mark.parametrize(("cls", "kwargs"), RESUME, ids=[c for c, _ in RESUME])
def test_a_torch_run_resumed_in_gradtx_and_a_gradtx_run_resumed_in_torch(cls, kwargs):
    make_torch = lambda ps: getattr(torch.optim, cls)(list(ps.values()), **kwargs, foreach=False)
    tx = getattr(pt, cls)(**kwargs)
    # the uninterrupted torch run
    theirs = torch_params(INIT)
    whole = run_torch(make_torch(theirs), theirs, FIRST + THEN)
    # torch for FIRST steps, then gradtx from torch's params and state
    theirs = torch_params(INIT)
    optimizer = make_torch(theirs)
    run_torch(optimizer, theirs, FIRST)
    params = {k: jnp.asarray(p.detach().numpy()) for k, p in theirs.items()}
    step = FIRST if cls == "SGD" else None  # torch's SGD keeps no step count
    state = pt.state_from_torch(optimizer, tx, params, order=ORDER, step=step)
    path, state = _run(tx, THEN, params, state)
    assert_paths_equal(path, {k: v[FIRST:] for k, v in whole.items()}, f"{cls} resumed in gradtx")
    # gradtx for FIRST steps, then torch from gradtx's params and state
    params = initial()
    path, state = _run(tx, FIRST, params, tx.init(params))
    params = {k: v[-1] for k, v in path.items()}
    theirs = torch_params(params)
    optimizer = make_torch(theirs)
    step = FIRST if cls in ("Adadelta", "Rprop", "Adagrad") else None  # no count in gradtx's state
    step = None if cls == "Adagrad" and kwargs.get("lr_decay") else step
    optimizer.load_state_dict(pt.state_to_torch(state, tx, params, optimizer, order=ORDER, step=step))
    continued = run_torch(optimizer, theirs, THEN)
    assert_paths_equal(continued, {k: v[FIRST:] for k, v in whole.items()}, f"{cls} resumed in torch")


def test_asgds_average_equals_torchs_ax_and_resumes_both_ways():
    """torch's ax after 24 steps: in gradtx's state after the whole run, and after a run resumed at step 8
    on either side (t0 = 4: the average starts at step 6, before the resume)."""
    kwargs = {"lr": 0.05, "lambd": 1e-2, "alpha": 0.5, "t0": 4}
    tx = pt.ASGD(**kwargs)
    theirs = torch_params(INIT)
    optimizer = torch.optim.ASGD(list(theirs.values()), **kwargs, foreach=False)
    run_torch(optimizer, theirs, FIRST + THEN)
    ax = {k: optimizer.state[p]["ax"].numpy() for k, p in theirs.items()}
    params = initial()
    _, state = _run(tx, FIRST + THEN, params, tx.init(params))
    assert_paths_equal(gradtx.asgd_averaged_params(state), ax, "ax")
    theirs = torch_params(INIT)  # torch, then gradtx
    optimizer = torch.optim.ASGD(list(theirs.values()), **kwargs, foreach=False)
    run_torch(optimizer, theirs, FIRST)
    params = {k: jnp.asarray(p.detach().numpy()) for k, p in theirs.items()}
    _, state = _run(tx, THEN, params, pt.state_from_torch(optimizer, tx, params, order=ORDER))
    assert_paths_equal(gradtx.asgd_averaged_params(state), ax, "ax resumed in gradtx")
    params = initial()  # gradtx, then torch
    path, state = _run(tx, FIRST, params, tx.init(params))
    params = {k: v[-1] for k, v in path.items()}
    theirs = torch_params(params)
    optimizer = torch.optim.ASGD(list(theirs.values()), **kwargs, foreach=False)
    optimizer.load_state_dict(pt.state_to_torch(state, tx, params, optimizer, order=ORDER))
    run_torch(optimizer, theirs, THEN)
    assert_paths_equal({k: optimizer.state[p]["ax"].numpy() for k, p in theirs.items()}, ax, "ax resumed in torch")


def test_conversion_errors_name_the_problem():
    params = initial()
    theirs = torch_params(INIT)
    optimizer = torch.optim.SGD(list(theirs.values()), lr=0.1, momentum=0.9)
    run_torch(optimizer, theirs, 2)
    tx = pt.SGD(lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="pass step="):
        pt.state_from_torch(optimizer, tx, params, order=ORDER)
    with pytest.raises(ValueError, match="torch's 'momentum_buffer' for \\['b'\\] has shape"):
        pt.state_from_torch(optimizer, tx, params, step=2)  # default order: b, s, w against w, s, b
    with pytest.raises(ValueError, match="order names"):
        pt.state_from_torch(optimizer, tx, params, order=["['w']", "['x']", "['b']"], step=2)
    with pytest.raises(ValueError, match="follows the learning rate"):
        pt.state_from_torch(optimizer, gradtx.rmsprop(0.1, momentum=0.9), params, order=ORDER, step=2)
    with pytest.raises(ValueError, match="max of v\\^"):
        pt.state_from_torch(optimizer, gradtx.amsgrad(0.1), params, order=ORDER, step=2)
    with pytest.raises(ValueError, match="no torch\\.optim optimizer has"):
        pt.state_from_torch(optimizer, gradtx.lion(0.1), params, order=ORDER, step=2)
    with pytest.raises(ValueError, match="3 params, the params tree 2 leaves"):
        pt.state_from_torch(optimizer, tx, {"w": params["w"], "b": params["b"]}, step=2)


def test_a_fresh_torch_optimizer_gives_init():
    params = initial()
    theirs = torch_params(INIT)
    tx = pt.Adam()
    state = pt.state_from_torch(torch.optim.Adam(list(theirs.values())), tx, params, order=ORDER)
    assert jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state, tx.init(params)) == jax.tree.map(
        lambda _: True, state
    )


# ---------------------------------------------------------------------------------------------------
# Names, defaults, validation


@pytest.mark.parametrize("cls", [n for n in pt.__all__ if not n.startswith("state_")])
def test_presets_take_torchs_arguments_and_defaults(cls):
    ours = inspect.signature(getattr(pt, cls)).parameters
    theirs = dict(inspect.signature(getattr(torch.optim, cls)).parameters)
    kernels = {"params", "foreach", "fused", "capturable", "differentiable"}
    theirs = {k: v for k, v in theirs.items() if k not in kernels and k != "self"}
    assert list(ours) == list(theirs), cls
    for name, p in ours.items():
        assert p.default == theirs[name].default, (cls, name)
        assert p.kind == theirs[name].kind, (cls, name)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.Adam(betas=(1.5, 0.999)), "presets.torch.Adam: betas[0] must be in [0, 1), got 1.5"),
        (lambda: pt.Adam(betas=0.9), "presets.torch.Adam: betas must be a pair (beta1, beta2), got 0.9"),
        (lambda: pt.AdamW(lr=-1.0), "presets.torch.AdamW: lr must be in [0, inf)"),
        (lambda: pt.SGD(momentum=0.9, dampening=0.1, nesterov=True), "presets.torch.SGD: nesterov needs momentum > 0"),
        (lambda: pt.SGD(momentum=1.5), "presets.torch.SGD: momentum must be in [0, 1], got 1.5"),
        (lambda: pt.RMSprop(alpha=float("nan")), "presets.torch.RMSprop: alpha must be in [0, 1), got nan"),
        (lambda: pt.Rprop(etas=(0.5, 0.9)), "presets.torch.Rprop: etas[1] must be in (1, inf), got 0.9"),
        (lambda: pt.Rprop(step_sizes=(1.0, 0.1)), "presets.torch.Rprop: step_sizes must have"),
        (
            lambda: pt.Adagrad(lr=gradtx.constant_schedule(0.1), lr_decay=0.1),
            "presets.torch.Adagrad: lr must be a number",
        ),
        (lambda: pt.NAdam(momentum_decay="x"), "presets.torch.NAdam: momentum_decay must be a real number"),
        (lambda: pt.Adam(amsgrad=1), "presets.torch.Adam: amsgrad must be True or False"),
    ],
)
def test_errors_name_the_preset_and_torchs_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_presets_are_plain_chains_lint_clean_and_equal_by_value():
    assert pt.Adam(lr=1e-3) == pt.Adam(lr=1e-3) and hash(pt.Adam()) == hash(pt.Adam())
    assert pt.Adam(lr=1e-3) == gradtx.adam(1e-3)  # the same algorithm, the same object
    for cls, kwargs in CASES:
        tx = getattr(pt, cls)(**kwargs)
        rules = {w.rule for w in gradtx.lint(tx)}
        expected = set()
        if kwargs.get("maximize"):
            expected.add("sign")  # ascends on purpose
        if kwargs.get("dampening"):
            expected |= {"two-lr", "momentum-lr"}  # the dampening is a step-size schedule before the trace
        assert rules == expected, (cls, kwargs, gradtx.lint(tx))
