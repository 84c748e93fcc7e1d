"""inject_stateful_hyperparams against optax 0.2.8's inject_hyperparams (which it is, under optax's
deprecated name): float64 trajectories at rtol 1e-9, float32 no less accurate, the same state layout
(InjectStatefulHyperparamsState with a WrappedScheduleState per schedule); a stateful schedule that
reads update's keyword arguments; numbers set in the state between steps; the errors."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax, gradients, model, trajectory


def injected(m):
    """gradtx.inject_stateful_hyperparams, or optax 0.2.8's inject_hyperparams (the same function)."""
    return m.inject_stateful_hyperparams if m is gradtx else optax.inject_hyperparams


def halving(count: jax.Array) -> jax.Array:
    """0.1 * 2^(-count / 5), in float32 whatever the params: optax keeps a schedule's strong dtype
    (its own schedules give float32 under x64) where gradtx stores it in the params' dtype; a float32
    value is the same number in both."""
    return jnp.asarray(0.1, jnp.float32) * jnp.exp2(-count.astype(jnp.float32) / 5)


def test_matches_optax_with_a_schedule_and_a_number():
    make = lambda m: injected(m)(m.adam)(learning_rate=halving, b1=0.8)
    (_, _, state), (_, _, theirs) = compare_with_optax(make)
    # optax keeps a schedule's value in the schedule's own dtype (float32 here); gradtx in the params'.
    lr = theirs.hyperparams["learning_rate"]
    assert lr.dtype == jnp.float32
    assert_same_layout(
        state, theirs._replace(hyperparams={**theirs.hyperparams, "learning_rate": lr.astype(jnp.float64)})
    )
    assert int(state.hyperparams_states["learning_rate"].count) == 32
    assert state.hyperparams["b1"].dtype == jnp.float64
    with jax.numpy_dtype_promotion("standard"), pytest.warns(DeprecationWarning):
        deprecated = optax.inject_stateful_hyperparams(optax.adam)(learning_rate=halving)
    params = model()
    grads = gradients(params, steps=4)
    ours = trajectory(gradtx.inject_stateful_hyperparams(gradtx.adam)(halving), params, grads)
    np.testing.assert_allclose(ours[0]["w"], trajectory(deprecated, params, grads, standard=True)[0]["w"], rtol=1e-9)


class LossStateState(NamedTuple):
    average: jax.Array


class LossScaled:
    """A stateful schedule: the learning rate 0.1 / (1 + the running average of the loss)."""

    def init(self) -> LossStateState:
        return LossStateState(average=jnp.zeros([], jnp.float64))

    def update(self, state: LossStateState, *, loss: jax.Array, **extra_args) -> LossStateState:
        return LossStateState(average=0.5 * state.average + 0.5 * loss)

    def __call__(self, state: LossStateState, **extra_args) -> jax.Array:
        return 0.1 / (1.0 + state.average)


def test_a_stateful_schedule_reads_update_keywords_as_in_optax():
    schedule = LossScaled()
    assert isinstance(schedule, gradtx.StatefulSchedule)
    make = lambda m: injected(m)(m.sgd)(learning_rate=schedule, momentum=0.5)
    (_, _, state), (_, _, theirs) = compare_with_optax(make, float32=False, loss=jnp.asarray(3.0))
    np.testing.assert_allclose(state.hyperparams_states["learning_rate"].average, 3.0 * (1 - 0.5**32), rtol=1e-12)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.1 / (1 + 3.0 * (1 - 0.5**31)), rtol=1e-12)
    assert_close_leaves(state.hyperparams_states, theirs.hyperparams_states)


def assert_close_leaves(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_a_number_set_in_the_state_is_used_at_the_next_step():
    params = model()
    g = jax.tree.map(lambda x: x[0], gradients(params, steps=1))
    for m in (gradtx, optax):
        tx = injected(m)(m.sgd)(learning_rate=0.1)
        state = tx.init(params)
        state.hyperparams["learning_rate"] = jnp.asarray(0.01)
        with jax.numpy_dtype_promotion("standard"):
            u, _ = tx.update(g, state, params)
        np.testing.assert_allclose(u["w"], -0.01 * g["w"], rtol=1e-12)


def test_integers_are_int32_the_transformation_pickles_and_errors_name_it():
    tx = gradtx.inject_stateful_hyperparams(gradtx.apply_every)(k=2)
    state = tx.init({"w": jnp.ones(2)})
    assert state.hyperparams["k"].dtype == jnp.int32
    u, state = tx.update({"w": jnp.ones(2)}, state)
    u, state = tx.update({"w": jnp.ones(2)}, state)
    np.testing.assert_allclose(u["w"], [2.0, 2.0])
    lr = gradtx.linear_schedule(0.1, 0.0, 10)
    tx = gradtx.inject_stateful_hyperparams(gradtx.adam)(learning_rate=lr)
    assert pickle.loads(pickle.dumps(tx)) == tx and repr(tx).startswith("inject_stateful_hyperparams(adam)(")
    assert gradtx.WrappedSchedule(lr) == gradtx.WrappedSchedule(gradtx.linear_schedule(0.1, 0.0, 10))
    with pytest.raises(ValueError, match=r"^inject_stateful_hyperparams\(adam\): b1 must be in \[0, 1\), got 1.5"):
        gradtx.inject_stateful_hyperparams(gradtx.adam)(1e-3, b1=1.5)
    with pytest.raises(TypeError, match="static_args"):
        gradtx.inject_stateful_hyperparams(gradtx.masked)(gradtx.sgd(0.1), lambda params: "not a schedule")
    with pytest.raises(ValueError, match=r"^inject_stateful_hyperparams: static_args must name arguments of adam"):
        gradtx.inject_stateful_hyperparams(gradtx.adam, static_args="lr")
