"""reduce_on_plateau against optax.contrib (float64, rtol 1e-9; float32), against
torch.optim.lr_scheduler.ReduceLROnPlateau (the scale sequence on the same losses), and fed the
loss by `make_step` under jit and vmap (issue 10's combination test)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {  # a large rtol or atol makes the slowly falling quadratic loss plateau
    "sgd+plateau": lambda m, c: m.chain(m.sgd(0.2), c.reduce_on_plateau(factor=0.5, patience=2, rtol=0.1)),
    "cooldown": lambda m, c: m.chain(
        m.sgd(0.2), c.reduce_on_plateau(factor=0.5, patience=1, rtol=0.0, atol=0.05, cooldown=2, min_scale=0.2)
    ),
    "accumulation": lambda m, c: m.chain(
        m.adam(0.05), c.reduce_on_plateau(factor=0.3, patience=2, rtol=0.05, accumulation_size=3)
    ),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES, value=frozenset(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    if name == "accumulation":
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def scales(tx, losses) -> list[float]:
    """The scale after each update, fed one loss at a time (the gradients do not matter)."""
    state = tx.init({"w": jnp.zeros(1)})
    out = []
    for value in losses:
        _, state = tx.update({"w": jnp.ones(1)}, state, {"w": jnp.zeros(1)}, value=value)
        out.append(float(state.scale))
    return out


LOSSES = [5.0, 4.0, 4.0, 3.99, 3.999, 3.0, 3.0, 3.0, 3.0, 2.0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, float("nan"), 1.0]


@pytest.mark.parametrize(("patience", "cooldown", "rtol"), [(1, 0, 1e-2), (2, 0, 1e-4), (2, 3, 0.1), (3, 1, 1e-3)])
def test_scales_match_torchs_reduce_lr_on_plateau(patience, cooldown, rtol):
    """torch reduces after more than `patience` bad epochs, optax and gradtx at `patience`: torch's
    patience is one less. With lr = 1 torch's learning rate is the scale."""
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=patience - 1, threshold=rtol, threshold_mode="rel", cooldown=cooldown,
        min_lr=0.01,
    )  # fmt: skip
    want = []
    for value in LOSSES:
        sched.step(value)
        want.append(opt.param_groups[0]["lr"])
    got = scales(gradtx.reduce_on_plateau(0.5, patience, rtol, cooldown=cooldown, min_scale=0.01), LOSSES)
    np.testing.assert_allclose(got, want, rtol=1e-7)  # torch's float32 parameter; the scale is float32 too
    assert min(got) < 1.0


def test_accumulation_averages_the_losses_before_deciding():
    # Means of three: 4, 4, 4 -> one improvement, then two plateaus: the scale halves after the 9th loss.
    got = scales(gradtx.reduce_on_plateau(0.5, patience=2, accumulation_size=3), [3, 4, 5, 5, 4, 3, 4, 4, 4, 1])
    assert got == [1.0] * 8 + [0.5, 0.5]


def loss_fn(params, x, y):
    return 0.5 * jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def problem():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)))
    y = x @ jnp.asarray([1.0, -2.0, 0.5]) + 0.3
    return {"w": jnp.zeros(3), "b": jnp.zeros(())}, x, y


def make(lr):
    return gradtx.chain(gradtx.sgd(lr), gradtx.reduce_on_plateau(factor=0.5, patience=2, rtol=0.2))


def by_hand(lr, steps: int = 12):
    """The loop written out: value_and_grad, update with value=, apply_updates."""
    tx = make(lr)
    params, x, y = problem()
    state = tx.init(params)
    for _ in range(steps):
        value, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params, value=value)
        params = gradtx.apply_updates(params, updates)
    return params, state


def test_make_step_feeds_the_loss_under_jit_and_vmap():
    params, x, y = problem()

    def train(lr):
        tx = make(lr)
        step = gradtx.make_step(tx, loss_fn, donate=False)  # jitted; called under vmap below
        p, state = params, tx.init(params)
        for _ in range(12):
            p, state, _ = step(p, state, x, y)
        return p, state

    lrs = jnp.asarray([0.05, 0.3, 1.2])
    got = jax.jit(jax.vmap(train))(lrs)
    for i, lr in enumerate(lrs.tolist()):
        want = by_hand(lr)
        assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], got), want, rtol=1e-12, atol=1e-14, what=str(lr))
    assert float(got[1][1].scale.min()) < 1.0  # a plateau was reached and the scale dropped
    # And the donated, jitted step without vmap.
    tx = make(0.3)
    step = gradtx.make_step(tx, loss_fn)
    p, state = jax.tree.map(jnp.copy, params), tx.init(params)
    for _ in range(12):
        p, state, _ = step(p, state, x, y)
    assert_trees_all_close((p, state), by_hand(0.3), rtol=1e-12, atol=1e-14)


def test_optax_reduce_on_plateau_gets_the_loss_from_make_step_too():
    params, x, y = problem()
    with jax.numpy_dtype_promotion("standard"):
        tx = optax.chain(optax.sgd(0.3), optax.contrib.reduce_on_plateau(factor=0.5, patience=2, rtol=0.2))
        step = gradtx.make_step(tx, loss_fn)
        p, state = params, tx.init(params)
        for _ in range(12):
            p, state, _ = step(p, state, x, y)
    np.testing.assert_allclose(p["w"], by_hand(0.3)[0]["w"], rtol=1e-12)


def test_a_missing_value_names_the_keyword_and_errors_name_the_argument():
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.reduce_on_plateau())
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match=r"reduce_on_plateau: update needs the loss .* value=loss\)"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match="reduce_on_plateau: value must be the scalar loss, got shape"):
        tx.update(params, tx.init(params), params, value=jnp.ones(2))
    u, _ = tx.update({"w": jnp.asarray([jnp.nan, 1.0])}, tx.init(params), params, value=1.0)
    assert bool(jnp.isnan(u["w"][0])) and bool(jnp.isfinite(u["w"][1]))
    with pytest.raises(ValueError, match=r"reduce_on_plateau: factor must be in \(0, 1\), got 1.0"):
        gradtx.reduce_on_plateau(factor=1.0)
    with pytest.raises(TypeError, match=r"reduce_on_plateau: patience must be an integer in \[1, inf\), got 2.5"):
        gradtx.reduce_on_plateau(patience=2.5)
    with pytest.raises(ValueError, match="reduce_on_plateau: rtol and atol must not both be 0"):
        gradtx.reduce_on_plateau(rtol=0.0)
