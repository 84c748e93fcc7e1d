"""Schedule-free learning against the authors' package and optax.contrib, in float64.

- The authors' `schedulefree` 1.4.1 (torch, float64, rtol 1e-10): AdamWScheduleFree (foreach on and
  off), AdamWScheduleFreeReference, AdamWScheduleFreeClosure, SGDScheduleFree,
  SGDScheduleFreeReference and SGDScheduleFreeClosure, with warmup, weight decay, r and
  weight_lr_power, on a noisy quadratic: the params (y) at every step, and x, the params their
  `.eval()` gives (the closure versions hold x between steps), equal to `schedule_free_eval_params`;
  `.train()` then continues where it was. Settings that give the authors' numbers: their
  warmup_steps=W is `learning_rate=linear_schedule(lr / W, lr, W - 1)`, their r is `r`.
- optax.contrib 0.2.8 (rtol 1e-9) with a learning-rate schedule: `schedule_at_next_count=True` gives
  its numbers and its state, field by field (the registry's constant-rate cases are compared in
  tests/test_optax_reference.py); the default reads the schedule at the step's own count.
- MultiSteps(schedule_free(...), k) equals schedule-free on the mean of every k gradients (optax
  issue #1038), also with a bfloat16 z.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close, pseudo_gradients
from tests import loss_trajectories as tj

STEPS = 24
PARAMS = tj.model(jnp.float64)
NOISE = [pseudo_gradients(PARAMS, k) for k in range(STEPS)]
LEAVES, STRUCTURE = jax.tree.flatten(PARAMS)


def gradtx_run(tx, params=PARAMS, steps: int = STEPS) -> tuple[list, list, object]:
    """(y after each step, x = schedule_free_eval_params after each step, the last state)."""

    @jax.jit
    def step(p, state, e):
        u, state = tx.update(tj.gradient(p, e), state, p)
        p = gradtx.apply_updates(p, u)
        return p, state, gradtx.schedule_free_eval_params(state, p)

    p, state, ys, xs = params, tx.init(params), [], []
    for e in NOISE[:steps]:
        p, state, x = step(p, state, e)
        ys.append(p)
        xs.append(x)
    return ys, xs, state


def torch_run(make, closure: bool = False) -> tuple[list, list]:
    """(y after each step, x after each step) of an optimizer of the authors' package, in float64.

    The plain and reference versions hold y in the params: x is read by `.eval()`, then `.train()`
    puts y back (their documented use: eval before evaluating, train before training). The
    closure versions hold x between steps and y only inside `step`.
    """
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = [torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in LEAVES]
        noise = [[torch.tensor(np.asarray(x)) for x in jax.tree.leaves(e)] for e in NOISE]
        opt = make(tensors)

        def set_grads(k: int) -> None:
            with torch.no_grad():
                for t, e in zip(tensors, noise[k], strict=True):
                    t.grad = (t - 0.5) + 0.3 * e

        def read() -> list:
            return [t.detach().numpy().copy() for t in tensors]

        ys, xs = [], []
        if not closure:
            opt.train()
        for k in range(STEPS):
            if closure:
                opt.step(lambda k=k: set_grads(k))
                xs.append(read())
                continue
            set_grads(k)
            opt.step()
            ys.append(read())
            opt.eval()
            xs.append(read())
            opt.train()
    finally:
        torch.set_default_dtype(default)
    unflatten = lambda leaves: jax.tree.unflatten(STRUCTURE, leaves)
    return [unflatten(y) for y in ys], [unflatten(x) for x in xs]


# gradtx's optimizers, and the authors' arguments that give their numbers: their warmup_steps=W is
# the schedule lr (k + 1) / W = linear_schedule(lr / W, lr, W - 1), their r is r.
OURS = {
    "adamw": lambda: gradtx.schedule_free_adamw(gradtx.linear_schedule(0.01, 0.05, 4), b1=0.8, b2=0.99, eps=1e-6,
                                                weight_decay=0.01),
    "adamw-r": lambda: gradtx.schedule_free_adamw(0.02, b1=0.9, weight_lr_power=1.0, r=1.0),
    "sgd": lambda: gradtx.schedule_free_sgd(gradtx.linear_schedule(0.2 / 3, 0.2, 2), b1=0.8, weight_decay=0.01),
    "sgd-r": lambda: gradtx.schedule_free_sgd(0.1, r=2.0),
}  # fmt: skip


@functools.cache
def ours(name: str) -> tuple:
    return gradtx_run(OURS[name]())


ADAMW = dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, warmup_steps=5)
SGD = dict(lr=0.2, momentum=0.8, weight_decay=0.01, warmup_steps=3)
AUTHORS = {  # name: (gradtx's, the authors' class, its arguments)
    "AdamWScheduleFree": ("adamw", "AdamWScheduleFree", dict(ADAMW, foreach=False)),
    "AdamWScheduleFree-foreach": ("adamw", "AdamWScheduleFree", dict(ADAMW, foreach=True)),
    "AdamWScheduleFree-r": ("adamw-r", "AdamWScheduleFree", dict(lr=0.02, r=1.0, weight_lr_power=1.0, foreach=False)),
    "AdamWScheduleFreeReference": ("adamw", "AdamWScheduleFreeReference", ADAMW),
    "SGDScheduleFree": ("sgd", "SGDScheduleFree", dict(SGD, foreach=False)),
    "SGDScheduleFreeReference": ("sgd", "SGDScheduleFreeReference", SGD),
    "SGDScheduleFree-r": ("sgd-r", "SGDScheduleFree", dict(lr=0.1, r=2.0, foreach=False)),
}  # fmt: skip
CLOSURES = {
    "AdamWScheduleFreeClosure": ("adamw", "AdamWScheduleFreeClosure", ADAMW),
    "SGDScheduleFreeClosure": ("sgd", "SGDScheduleFreeClosure", SGD),
}


@pytest.mark.parametrize("name", list(AUTHORS))
def test_the_authors_package_in_float64_train_and_eval(name):
    schedulefree = pytest.importorskip("schedulefree")
    config, cls, kwargs = AUTHORS[name]
    theirs_y, theirs_x = torch_run(lambda t: getattr(schedulefree, cls)(t, **kwargs))
    ours_y, ours_x, _ = ours(config)
    assert_trees_all_close(ours_y, theirs_y, rtol=1e-10, atol=1e-14, what=f"{name} y")
    assert_trees_all_close(ours_x, theirs_x, rtol=1e-10, atol=1e-14, what=f"{name} x (eval)")
    assert float(jnp.abs(ours_y[-1]["w"] - PARAMS["w"]).max()) > 0.1, "the params must move"


@pytest.mark.parametrize("name", list(CLOSURES))
def test_the_authors_closure_versions_hold_the_eval_params(name):
    schedulefree = pytest.importorskip("schedulefree")
    config, cls, kwargs = CLOSURES[name]
    _, theirs_x = torch_run(lambda t: getattr(schedulefree, cls)(t, **kwargs), closure=True)
    assert_trees_all_close(ours(config)[1], theirs_x, rtol=1e-10, atol=1e-14, what=name)


def warmup64(count: jax.Array) -> jax.Array:
    """optax's warmup 0.05 min(k / 4, 1), evaluated in float64 (optax's own schedules round to float32)."""
    return 0.05 * jnp.minimum(count.astype(jnp.float64) / 4, 1.0)


OPTAX = {
    "schedule_free": lambda m, c: c.schedule_free(m.adam(warmup64, b1=0.0), warmup64, b1=0.8),
    "schedule_free_adamw": lambda m, c: c.schedule_free_adamw(warmup64, b2=0.99, weight_decay=0.01),
    "schedule_free_sgd": lambda m, c: c.schedule_free_sgd(warmup64, weight_decay=0.01, weight_lr_power=1.0),
}


@pytest.mark.parametrize("name", list(OPTAX))
def test_optax_with_a_schedule_at_next_count_values_and_state(name):
    def at_next_count(m, c):
        tx = OPTAX[name](m, c)
        hp = tx.hyperparams  # the same optimizer, reading the schedule one count ahead as optax does
        return gradtx.schedule_free(*hp.args, **{**hp.kwargs, "schedule_at_next_count": True})

    ours_y, ours_x, ours_state = gradtx_run(at_next_count(gradtx, gradtx))
    tx = OPTAX[name](optax, optax.contrib)

    @jax.jit
    def step(p, state, e):
        with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
            u, state = tx.update(tj.gradient(p, e), state, p)
            p = optax.apply_updates(p, u)
            return p, state, optax.contrib.schedule_free_eval_params(state, p)

    p, state, theirs_y, theirs_x = PARAMS, tx.init(PARAMS), [], []
    for e in NOISE:
        p, state, x = step(p, state, e)
        theirs_y.append(p)
        theirs_x.append(x)
    assert_trees_all_close(ours_y, theirs_y, rtol=1e-9, atol=1e-12, what=f"{name} y")
    assert_trees_all_close(ours_x, theirs_x, rtol=1e-9, atol=1e-12, what=f"{name} x")
    assert type(ours_state).__name__ == type(state).__name__ == "ScheduleFreeState"
    assert ours_state._fields == state._fields
    assert_trees_all_close(jax.tree.leaves(ours_state), jax.tree.leaves(state), rtol=1e-9, atol=1e-12)
    # The default reads the schedule at the step's own count, as the base optimizer and the authors do.
    default_y = gradtx_run(OPTAX[name](gradtx, gradtx))[0]
    assert not np.allclose(default_y[-1]["w"], theirs_y[-1]["w"], rtol=1e-6)


def test_the_first_update_uses_the_schedules_step_zero_value():
    """lr(0) = 0 weighs the first iterate 0 (the average stays at x_0); optax weighs it with lr(1)."""
    ours = gradtx.schedule_free_sgd(0.1, warmup_steps=4)
    state = gradtx.schedule_free_sgd(0.1, warmup_steps=4, schedule_at_next_count=True)
    for tx, weight in ((ours, 0.0), (state, 0.025**2)):
        s = tx.init(PARAMS)
        _, s = tx.update(NOISE[0], s, PARAMS)
        assert float(s.weight_sum) == pytest.approx(weight, rel=1e-12)
        assert int(s.step_count) == 2  # optax's state: step_count starts at 1


@pytest.mark.parametrize("state_dtype", [None, jnp.bfloat16])
def test_multi_steps_of_schedule_free_is_schedule_free_on_the_mean_gradient(state_dtype):
    k, outer = 3, 5
    params = tj.model(jnp.float32 if state_dtype else jnp.float64)
    make = lambda: gradtx.schedule_free_adamw(gradtx.linear_schedule(0.02, 0.1, 3), weight_decay=0.01,
                                              state_dtype=state_dtype)  # fmt: skip
    noise = [pseudo_gradients(params, i) for i in range(k * outer)]
    multi = gradtx.MultiSteps(make(), k)

    @jax.jit
    def micro(p, state, e):
        u, state = multi.update(tj.gradient(p, e), state, p)
        return gradtx.apply_updates(p, u), state

    @jax.jit
    def whole(p, state, es):
        mean = jax.tree.map(lambda *g: sum(g) / k, *[tj.gradient(p, e) for e in es])
        u, state = plain.update(mean, state, p)
        return gradtx.apply_updates(p, u), state

    plain = make()
    p_multi, s_multi, p_plain, s_plain = params, multi.init(params), params, plain.init(params)
    for t in range(outer):
        for j in range(k):
            before = p_multi
            p_multi, s_multi = micro(p_multi, s_multi, noise[k * t + j])
            if j < k - 1:
                assert_trees_all_close(p_multi, before, rtol=0.0)  # no step until the k-th gradient
        p_plain, s_plain = whole(p_plain, s_plain, noise[k * t : k * t + k])
        rtol = 1e-12 if state_dtype is None else 1e-5
        assert_trees_all_close(p_multi, p_plain, rtol=rtol, atol=rtol / 10, what=f"step {t}")
    x_multi, x_plain = (gradtx.schedule_free_eval_params(s, p) for s, p in ((s_multi, p_multi), (s_plain, p_plain)))
    assert_trees_all_close(x_multi, x_plain, rtol=1e-12 if state_dtype is None else 1e-5)
    assert jax.tree.leaves(s_multi.inner_opt_state.z)[0].dtype == (state_dtype or jnp.float64)


def test_multi_steps_with_bfloat16_params_and_state_keeps_its_dtypes():
    """optax issue #1038's setting: bfloat16 params, state_dtype bfloat16, a warmup, inside MultiSteps."""
    lr = gradtx.warmup_constant_schedule(0.0, 1e-2, 4)
    tx = gradtx.MultiSteps(gradtx.schedule_free(gradtx.adamw(lr, b1=0.0), lr, state_dtype=jnp.bfloat16), 2)
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for k in range(6):
        grads = jax.tree.map(lambda g: g.astype(jnp.bfloat16), NOISE[k])
        updates, new_state = step(grads, state, params)
        assert jax.tree.map(jnp.result_type, updates) == jax.tree.map(jnp.result_type, params)
        assert jax.tree.map(jnp.result_type, new_state) == jax.tree.map(jnp.result_type, state)
        params, state = gradtx.apply_updates(params, updates), new_state
    assert float(jnp.abs(params["w"].astype(jnp.float64) - PARAMS["w"]).max()) > 0


def test_eval_params_find_the_state_inside_chains_and_refuse_others():
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.schedule_free_sgd(0.1))
    state = tx.init(PARAMS)
    u, state = tx.update(NOISE[0], state, PARAMS)
    x = gradtx.schedule_free_eval_params(state, gradtx.apply_updates(PARAMS, u))
    assert jax.tree.structure(x) == jax.tree.structure(PARAMS)
    with pytest.raises(ValueError, match="schedule_free_eval_params: the state holds 0 schedule_free states"):
        gradtx.schedule_free_eval_params(gradtx.adam(0.1).init(PARAMS), PARAMS)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: gradtx.schedule_free(gradtx.sgd(1.0), 1.0, b1=0.0), ValueError,
         "schedule_free: b1 must be in (0, 1], got 0.0"),
        (lambda: gradtx.schedule_free_adamw(b1=1.5), ValueError, "schedule_free_adamw: b1 must be in (0, 1], got 1.5"),
        (lambda: gradtx.schedule_free_adamw(b2=1.0), ValueError, "schedule_free_adamw: b2 must be in [0, 1), got 1.0"),
        (lambda: gradtx.schedule_free_sgd(warmup_steps=2.5), TypeError,
         "schedule_free_sgd: warmup_steps must be an integer in [0, inf), got 2.5"),
        (lambda: gradtx.schedule_free_sgd(gradtx.constant_schedule(0.1), warmup_steps=3), TypeError,
         "schedule_free_sgd: warmup_steps needs a number learning_rate"),
        (lambda: gradtx.schedule_free_sgd(weight_lr_power=-1.0), ValueError,
         "schedule_free_sgd: weight_lr_power must be in [0, inf), got -1.0"),
        (lambda: gradtx.schedule_free(gradtx.sgd(1.0), 1.0, state_dtype=jnp.int32), TypeError,
         "schedule_free: state_dtype must be a floating or complex dtype, got int32"),
        (lambda: gradtx.schedule_free("sgd", 1.0), TypeError, "schedule_free: argument 0 must be a gradient"),
    ],
)  # fmt: skip
def test_errors_name_the_builder_the_argument_and_the_range(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_update_needs_params():
    tx = gradtx.schedule_free_sgd(0.1)
    with pytest.raises(ValueError, match="schedule_free: update needs params"):
        tx.update(NOISE[0], tx.init(PARAMS))
