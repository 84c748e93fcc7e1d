"""conditionally_mask and conditionally_transform against optax (float64 trajectories at rtol 1e-9,
float32 no less accurate, the same states), the condition's keyword arguments, and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax


def two_of_three(step: jax.Array) -> jax.Array:
    return step % 3 != 1


def test_conditionally_mask_matches_optax():
    make = lambda m: m.conditionally_mask(m.adam(0.1), two_of_three)
    (us, _, state), (_, _, theirs) = compare_with_optax(make)
    assert not np.asarray(us["w"][1]).any() and np.asarray(us["w"][0]).all()  # step 1 masked, step 0 not
    assert_same_layout(state, theirs)
    assert int(state.step) == 32 and int(state.inner_state[0].count) == 21  # the inner state moved 21 times


def test_conditionally_transform_matches_optax():
    make = lambda m: m.chain(m.conditionally_transform(m.scale_by_adam(), two_of_three), m.scale(-0.1))
    (_, _, state), (_, _, theirs) = compare_with_optax(make)
    assert_same_layout(state, theirs)


def loss_below_one(step: jax.Array, loss: jax.Array) -> jax.Array:
    return loss < 1.0


@pytest.mark.parametrize("builder", ["conditionally_mask", "conditionally_transform"])
def test_the_condition_gets_update_keywords_only_when_asked(builder):
    g = {"w": jnp.asarray([1.0, -2.0])}
    for m in (gradtx, optax):
        tx = getattr(m, builder)(m.scale(3.0), loss_below_one, forward_extra_args=True)
        state = tx.init(g)
        with jax.numpy_dtype_promotion("standard"):
            on, state = tx.update(g, state, loss=0.5)
            off, state = tx.update(g, state, loss=2.0)
        np.testing.assert_allclose(on["w"], [3.0, -6.0])
        np.testing.assert_allclose(off["w"], [0.0, 0.0] if builder == "conditionally_mask" else [1.0, -2.0])
    tx = getattr(gradtx, builder)(gradtx.scale(3.0), loss_below_one)  # not forwarded: loss is missing
    with pytest.raises(TypeError, match="loss"):
        tx.update(g, tx.init(g), loss=0.5)


def test_errors_name_the_wrapper_and_the_argument():
    tx = gradtx.conditionally_mask(gradtx.sgd(0.1), lambda step: step)  # an int, not a bool
    with pytest.raises(TypeError, match=r"^conditionally_mask: should_transform_fn must return a boolean scalar"):
        tx.update(1.0, tx.init(1.0))
    with pytest.raises(TypeError, match=r"^conditionally_transform: should_transform_fn must be a function"):
        gradtx.conditionally_transform(gradtx.sgd(0.1), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^conditionally_mask: forward_extra_args must be True or False"):
        gradtx.conditionally_mask(gradtx.sgd(0.1), two_of_three, forward_extra_args=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^conditionally_mask: argument 0 must be a gradient transformation"):
        gradtx.conditionally_mask(0.1, two_of_three)  # type: ignore[arg-type]
