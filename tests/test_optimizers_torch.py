"""Optimizers against torch.optim in float64, 30 steps on a small multi-leaf model.

torch computes the loss and its gradients at torch's parameters; gradtx gets the very same
gradients and moves its own copy of the parameters, and the two trajectories must agree to
rtol 1e-10 at every step. Each case says which gradtx settings reproduce torch's algorithm.
Also here: the optimizers' chains, their learning-rate validation, and adadelta's sign.
"""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import gradtx

STEPS = 30
_rng = np.random.default_rng(0)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"w": _rng.normal(size=(3, 4)), "b": np.full(4, 0.1), "s": np.asarray(1.5)}


def loss(p: dict) -> torch.Tensor:
    """A fixed smooth loss: a one-layer tanh model with a learned output scale, plus a small L2 term."""
    prediction = p["s"] * torch.tanh(torch.as_tensor(X) @ p["w"] + p["b"])
    return torch.mean((prediction - torch.as_tensor(Y)) ** 2) + 0.01 * torch.sum(p["w"] ** 2)


def trajectories(tx, make_torch_optimizer) -> tuple[list, list, object]:
    """Parameters after each step: (gradtx's, torch's, gradtx's final state)."""
    theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INIT.items()}
    optimizer = make_torch_optimizer(list(theirs.values()))
    params = {k: jnp.asarray(v, jnp.float64) for k, v in INIT.items()}
    state, step = tx.init(params), jax.jit(tx.update)
    ours_path, theirs_path = [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss(theirs).backward()
        grads = {k: jnp.asarray(p.grad.numpy().copy()) for k, p in theirs.items()}
        optimizer.step()
        updates, state = step(grads, state, params)
        params = gradtx.apply_updates(params, updates)
        ours_path.append({k: np.asarray(v) for k, v in params.items()})
        theirs_path.append({k: p.detach().numpy().copy() for k, p in theirs.items()})
    return ours_path, theirs_path, state


def sqrt_one_minus_b2_power(count: jax.Array) -> jax.Array:
    """sqrt(1 - 0.999^t), t = count + 1: torch's AMSGrad correction of the max of the raw v."""
    return jnp.sqrt(1 - 0.999 ** (count.astype(jnp.float64) + 1))


# (id, gradtx optimizer, torch optimizer): the comment says what makes them the same algorithm.
CASES = [
    ("sgd", gradtx.sgd(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    # torch's first momentum buffer is g itself, which is trace's 0.9 * 0 + g (dampening = 0).
    ("sgd-momentum", gradtx.sgd(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (
        "sgd-nesterov",
        gradtx.sgd(0.1, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    ),
    # torch: eps outside the root, accumulator from 0, eps = 1e-10 (optax's defaults differ).
    (
        "adagrad",
        gradtx.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False),
        lambda p: torch.optim.Adagrad(p, lr=0.1),
    ),
    (
        "adagrad-initial",
        gradtx.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-3, eps_in_sqrt=False),
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-3),
    ),
    # torch: alpha = decay = 0.99 by default and eps outside the root.
    (
        "rmsprop",
        gradtx.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False),
        lambda p: torch.optim.RMSprop(p, lr=0.01),
    ),
    # torch's momentum buffer accumulates lr-scaled steps: trace after scale_by_learning_rate.
    (
        "rmsprop-momentum",
        gradtx.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False, momentum=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9),
    ),
    (
        "rmsprop-centered",
        gradtx.rmsprop(0.01, decay=0.99, eps=1e-8, eps_in_sqrt=False, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True),
    ),
    (
        "rmsprop-centered-momentum",
        gradtx.rmsprop(0.01, decay=0.9, eps=1e-3, eps_in_sqrt=False, centered=True, momentum=0.5),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-3, centered=True, momentum=0.5),
    ),
    # The defaults agree (lr 1, rho 0.9, eps 1e-6); optax.adadelta() would ascend (no learning rate).
    ("adadelta", gradtx.adadelta(), lambda p: torch.optim.Adadelta(p)),
    # torch's weight_decay is coupled L2 added to g before the preconditioner: add_decayed_weights first.
    (
        "adadelta-weight-decay",
        gradtx.adadelta(0.5, rho=0.95, eps=1e-5, weight_decay=0.01),
        lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01),
    ),
    # Same defaults; eps outside the root in both.
    ("adam", gradtx.adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (
        "adam-betas",
        gradtx.adam(0.02, b1=0.5, b2=0.9, eps=1e-6),
        lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.5, 0.9), eps=1e-6),
    ),
    # Decoupled decay: p <- p - lr (u + wd p) in both; torch's default wd (1e-2) differs, so pass it.
    ("adamw", gradtx.adamw(0.01, weight_decay=0.05), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05)),
    # Both put eps inside the max: nu <- max(b2 nu, |g| + eps). A large eps makes the placement matter.
    ("adamax", gradtx.adamax(0.02, eps=1e-3), lambda p: torch.optim.Adamax(p, lr=0.02, eps=1e-3)),
    # torch adds eps to sqrt(v) before the bias correction, gradtx after it: with eps = 0 they agree.
    # torch rectifies where rho_t > 5, gradtx where rho_t >= 5: never equal to 5 here. Both sides of the
    # threshold are run: rho_t passes 5 at t = 6 for both b2.
    ("radam", gradtx.radam(0.01, eps=0.0), lambda p: torch.optim.RAdam(p, lr=0.01, eps=0.0)),
    (
        "radam-betas",
        gradtx.radam(0.05, b1=0.8, b2=0.99, eps=0.0),
        lambda p: torch.optim.RAdam(p, lr=0.05, betas=(0.8, 0.99), eps=0.0),
    ),
    # iRprop- in both: no step and the gradient forgotten after a sign change. torch also clips the first
    # step size to [min, max]; gradtx only when it changes: the same while lr lies within.
    ("rprop", gradtx.rprop(0.01), lambda p: torch.optim.Rprop(p, lr=0.01)),
    (
        "rprop-etas",
        gradtx.rprop(0.05, eta_minus=0.3, eta_plus=1.5, min_step_size=5e-3, max_step_size=0.1),
        lambda p: torch.optim.Rprop(p, lr=0.05, etas=(0.3, 1.5), step_sizes=(5e-3, 0.1)),
    ),
    # torch keeps the max of the raw v and divides it by (1 - b2^t) afterwards. With eps = 0 that is
    # the uncorrected-nu AMSGrad times sqrt(1 - b2^t); for eps > 0 no gradtx setting gives torch's.
    (
        "amsgrad",
        gradtx.chain(
            gradtx.scale_by_amsgrad(eps=0.0, bias_correction_nu=False),
            gradtx.scale_by_schedule(sqrt_one_minus_b2_power),
            gradtx.scale_by_learning_rate(0.05),
        ),
        lambda p: torch.optim.Adam(p, lr=0.05, eps=0.0, amsgrad=True),
    ),
]


@pytest.mark.parametrize("tx, make_torch_optimizer", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matches_torch(tx, make_torch_optimizer):
    ours, theirs, _ = trajectories(tx, make_torch_optimizer)
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for name in INIT:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-10, atol=1e-12, err_msg=f"step {k}, {name}")
    moved = max(np.max(np.abs(ours[-1][name] - INIT[name])) for name in INIT)
    assert moved > 1e-3  # the comparison is not between two parameters that stayed put


def test_rprop_cases_exercise_sign_changes_and_the_step_bounds():
    """The Rprop comparisons mean something only if some coordinate stood still after a sign change
    and, with the tight bounds, some step size was clipped to the minimum."""
    cases = {c[0]: c for c in CASES}
    ours, _, _ = trajectories(*cases["rprop"][1:])
    assert any(np.any(a[k] == b[k]) for a, b in itertools.pairwise(ours) for k in INIT)  # a flip: no move
    _, _, state = trajectories(*cases["rprop-etas"][1:])
    steps = np.concatenate([np.ravel(s) for s in jax.tree.leaves(state[0].step_sizes)])
    assert np.isclose(steps, 5e-3, rtol=1e-12).any()


def test_radam_cases_run_both_sides_of_the_threshold():
    for b2 in (0.999, 0.99):
        rho = [2 / (1 - b2) - 1 - 2 * t * b2**t / (1 - b2**t) for t in range(1, STEPS + 1)]
        assert min(rho) < 5 < max(rho) and 5 not in rho


def test_amsgrad_case_exercises_the_running_max():
    """The AMSGrad comparison above means something only if v falls below its running max."""
    _, tx, make_torch_optimizer = next(c for c in CASES if c[0] == "amsgrad")
    _, _, state = trajectories(tx, make_torch_optimizer)
    ams = state[0]
    assert any(bool(jnp.any(ams.nu_max[k] > ams.nu[k] * (1 + 1e-6))) for k in INIT)


# ---------------------------------------------------------------------------------------------------
# Chains, learning rates, adadelta's sign


def test_optimizers_are_the_documented_chains():
    assert gradtx.sgd(0.1) == gradtx.chain(gradtx.scale_by_learning_rate(0.1))
    assert gradtx.sgd(0.1, 0.9, True) == gradtx.chain(gradtx.trace(0.9, True), gradtx.scale_by_learning_rate(0.1))
    assert gradtx.rmsprop(0.1, centered=True, momentum=0.5) == gradtx.chain(
        gradtx.scale_by_stddev(), gradtx.scale_by_learning_rate(0.1), gradtx.trace(0.5)
    )
    assert gradtx.adamw(0.1, weight_decay=0.01) == gradtx.chain(
        gradtx.scale_by_adam(), gradtx.add_decayed_weights(0.01), gradtx.scale_by_learning_rate(0.1)
    )
    assert gradtx.nadam(0.1) == gradtx.adam(0.1, nesterov=True)
    assert gradtx.adadelta() == gradtx.chain(gradtx.scale_by_adadelta(), gradtx.scale_by_learning_rate(1.0))
    assert gradtx.adadelta(weight_decay=0.1).hyperparams.args[0] == gradtx.add_decayed_weights(0.1)
    assert gradtx.amsgrad(0.1, mu_dtype=jnp.bfloat16) == gradtx.amsgrad(0.1, accumulator_dtype=jnp.bfloat16)


def test_adadelta_default_descends_where_optax_default_ascends():
    params = {"w": jnp.asarray([1.0, -2.0, 3.0], jnp.float32)}
    grads = {"w": jnp.asarray([0.5, -0.25, 2.0], jnp.float32)}
    ours, _ = gradtx.adadelta().update(grads, gradtx.adadelta().init(params))  # no params: no weight decay
    with jax.numpy_dtype_promotion("standard"):
        ascending, _ = optax.adadelta().update(grads, optax.adadelta().init(params), params)
        descending, _ = optax.adadelta(1.0).update(grads, optax.adadelta(1.0).init(params), params)
    assert np.all(np.sign(np.asarray(ours["w"])) == -np.sign(np.asarray(grads["w"])))
    np.testing.assert_allclose(np.asarray(ours["w"]), -np.asarray(ascending["w"]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ours["w"]), np.asarray(descending["w"]), rtol=1e-6)


def test_learning_rate_may_be_a_schedule():
    schedule = gradtx.exponential_decay(0.1, 1, 0.5)
    params = {"w": jnp.ones(2, jnp.float64)}
    grads = {"w": jnp.asarray([1.0, -1.0])}
    tx = gradtx.sgd(schedule)
    state = tx.init(params)
    first, state = tx.update(grads, state)
    second, _ = tx.update(grads, state)
    np.testing.assert_allclose(np.asarray(first["w"]), [-0.1, 0.1])
    np.testing.assert_allclose(np.asarray(second["w"]), [-0.05, 0.05])


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax", "amsgrad"])
def test_negative_learning_rate_is_rejected(name):
    with pytest.raises(ValueError, match=re.escape(f"{name}: learning_rate must be in [0, inf), got -0.1")):
        getattr(gradtx, name)(-0.1)


def test_adadelta_validates_its_learning_rate_and_arguments():
    with pytest.raises(ValueError, match=re.escape("adadelta: learning_rate must be in [0, inf), got -1.0")):
        gradtx.adadelta(-1.0)
    with pytest.raises(ValueError, match=re.escape("adadelta: rho must be in [0, 1), got 1.0")):
        gradtx.adadelta(rho=1.0)
