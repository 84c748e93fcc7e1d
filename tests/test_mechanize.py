"""Mechanic (mechanize) against optax.contrib in float64 (rtol 1e-9) and float32, around SGD, Adam
and a schedule, and the keyword arguments it passes on."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "adam": lambda m, c: c.mechanize(m.adam(1.0)),
    "sgd-momentum": lambda m, c: c.mechanize(m.sgd(1.0, momentum=0.9), weight_decay=0.0, num_betas=3),
    # A schedule whose values float32 holds exactly (optax's schedules compute in float32 under x64 too).
    "schedule": lambda m, c: c.mechanize(m.adam(m.piecewise_constant_schedule(1.0, {10: 0.5})), s_init=1e-4),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-3  # the params moved
    if name == "sgd-momentum":
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def test_keyword_arguments_reach_the_base_optimizer_and_x0_is_taken_at_the_first_update():
    tx = gradtx.mechanize(gradtx.momo(1.0))  # momo reads value=
    params = {"w": jnp.asarray([1.0, -2.0])}
    state = tx.init({"w": jnp.zeros(2)})  # x_0 comes from the params of the first update, not init's
    u, state = tx.update({"w": jnp.asarray([0.5, 0.5])}, state, params, value=2.0)
    np.testing.assert_array_equal(state.x0["w"], params["w"])
    assert bool(jnp.all(jnp.isfinite(u["w"]))) and int(state.base_optimizer_state.count) == 1
    with pytest.raises(TypeError, match="momo: update needs the loss"):
        tx.update({"w": jnp.ones(2)}, state, params)
    with pytest.raises(TypeError, match=r"mechanize: num_betas must be an integer in \[1, inf\), got 2.5"):
        gradtx.mechanize(gradtx.sgd(1.0), num_betas=2.5)
