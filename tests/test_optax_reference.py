"""Every registry entry that optax also has gives optax's numbers, and the two libraries mix.

Both run 30 steps on a multi-leaf model with the same gradients; params move by the updates so
that transformations that read params (weight decay) see a changing model. In float64 the two
trajectories are one algorithm's (rtol 1e-9, schedules included); in float32 gradtx's is no farther
from optax's float64 trajectory than optax's own float32 one (a few ulps aside).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close, pseudo_gradients
from tests.registry import TRANSFORMATION_CASES

STEPS = 30
CASES = [pytest.param(c, id=c.id) for c in TRANSFORMATION_CASES if c.optax]


def model(dtype=jnp.float32) -> dict:
    return {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(3, 4),
        "b": jnp.full((4,), 0.1, dtype),
        "layers": [jnp.ones((2, 2), dtype), jnp.asarray(0.3, dtype)],
    }


def trajectory(tx, params: dict) -> list:
    """The updates of STEPS jitted steps; the gradients are fixed pseudo-random trees."""
    grads = [pseudo_gradients(params, k) for k in range(STEPS)]

    @jax.jit
    def run(params, grads):
        def step(carry, g):
            p, state = carry
            updates, state = tx.update(g, state, p)
            # Move params with a small descent step whatever the sign convention of the block.
            return (jax.tree.map(lambda x, u: x - 0.01 * u, p, updates), state), updates

        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
        return jax.lax.scan(step, (params, tx.init(params)), stacked)[1]

    return run(params, grads)


# Where optax's float64 run is not a float64 computation, or the two differ by a documented choice:
# the float64 trajectories are then not compared (the float32 rule still is).
OPTAX_ROUNDS = "optax evaluates it from an int32 count in float32 arithmetic, so its float64 run is rounded to float32"
NOT_FLOAT64 = {
    "scale_by_learning_rate[schedule]": f"the schedule: {OPTAX_ROUNDS} (equal from int64 counts: test_schedules.py)",
    "scale_by_schedule": f"the schedule: {OPTAX_ROUNDS} (equal from int64 counts: test_schedules.py)",
    "scale_by_factored_rms": f"the decay rate 1 - (k + 1)^-0.8: {OPTAX_ROUNDS}",
    "adafactor": f"the decay rate 1 - (k + 1)^-0.8: {OPTAX_ROUNDS}",
    "MultiSteps": f"the running mean's weight 1 / (k + 1): {OPTAX_ROUNDS}",
    "scale_by_adam[bf16-mu]": "mu is stored in bfloat16 in both: a float64 run of it is a bfloat16 run",
    "yogi": "m starts at 0 (the authors' code), optax's at initial_accumulator_value: mu_init=1e-6 gives"
    " optax's numbers (FLOAT64_ONLY below)",
}
# Not one algorithm in float64, so no float64 truth to measure float32 runs against.
OTHER_ALGORITHM = {"scale_by_adam[bf16-mu]", "yogi"}
# Compared in float64 besides the registry's cases: the documented differences above, switched off.
FLOAT64_ONLY = {
    "yogi[mu_init=1e-6]": lambda m: m.yogi(1e-2, mu_init=1e-6) if m is gradtx else m.yogi(1e-2),
    "scale_by_yogi[initial_accumulator_value=0]": lambda m: m.chain(
        m.scale_by_yogi(initial_accumulator_value=0.0), m.scale_by_learning_rate(1e-2)
    ),
}


def assert_float32_no_less_accurate(ours32, theirs32, truth64, what: str) -> None:
    """Leaf by leaf, gradtx's float32 trajectory is no farther from the float64 truth than optax's
    float32 one, plus four float32 ulps of the leaf's scale."""
    ours_at, theirs_at = (dict(jax.tree_util.tree_flatten_with_path(t)[0]) for t in (ours32, theirs32))
    for path, truth in jax.tree_util.tree_flatten_with_path(truth64)[0]:
        truth = np.asarray(truth)
        ours, theirs = np.asarray(ours_at[path], np.float64), np.asarray(theirs_at[path], np.float64)
        ulps = 4 * float(np.finfo(np.float32).eps) * (float(np.max(np.abs(truth))) or 1.0)
        error_ours, error_theirs = float(np.max(np.abs(ours - truth))), float(np.max(np.abs(theirs - truth)))
        assert error_ours <= error_theirs + ulps, (
            f"{what}{jax.tree_util.keystr(path)}: float32 error {error_ours:.3g} vs optax's {error_theirs:.3g}"
        )


def _both(make, dtype) -> tuple:
    ours = trajectory(make(gradtx), model(dtype))
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        return ours, trajectory(make(optax), model(dtype))


@pytest.mark.parametrize("name", list(FLOAT64_ONLY))
def test_documented_differences_switched_off_are_optax_in_float64(name):
    (ours64, theirs64), (ours32, theirs32) = (
        _both(FLOAT64_ONLY[name], jnp.float64),
        _both(FLOAT64_ONLY[name], jnp.float32),
    )
    assert_trees_all_close(ours64, theirs64, rtol=1e-9, atol=1e-12, what=f"{name} in float64")
    assert_float32_no_less_accurate(ours32, theirs32, theirs64, name)


@pytest.mark.parametrize("case", CASES)
def test_matches_optax_and_is_its_algorithm_in_float64(case):
    (ours64, theirs64), (ours32, theirs32) = _both(case.make, jnp.float64), _both(case.make, jnp.float32)
    assert_trees_all_close(ours32, theirs32, rtol=case.rtol, atol=case.rtol / 10, what=f"{case.id} in float32")
    assert {x.dtype for x in jax.tree.leaves(ours64)} == {jnp.dtype(jnp.float64)}, "a float64 run stays float64"
    if case.id in NOT_FLOAT64:
        if case.id not in OTHER_ALGORITHM:  # optax's float64 run is rounded: gradtx's float64 is the truth
            assert_float32_no_less_accurate(ours32, theirs32, ours64, case.id)
        return
    assert_trees_all_close(ours64, theirs64, rtol=1e-9, atol=1e-12, what=f"{case.id} in float64")
    assert_float32_no_less_accurate(ours32, theirs32, theirs64, case.id)


def test_optax_chain_accepts_gradtx_transformations():
    params = model()
    mixed = optax.chain(gradtx.clip_by_global_norm(1.0), optax.scale_by_adam(), gradtx.scale_by_learning_rate(0.1))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.scale_by_learning_rate(0.1))
    with jax.numpy_dtype_promotion("standard"):
        assert_trees_all_close(trajectory(mixed, params), trajectory(pure, params), rtol=1e-6, atol=1e-7)


def test_gradtx_chain_accepts_optax_transformations():
    params = model()
    mixed = gradtx.chain(optax.clip_by_global_norm(1.0), gradtx.scale_by_adam(), optax.scale_by_learning_rate(0.1))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.scale_by_learning_rate(0.1))
    with jax.numpy_dtype_promotion("standard"):
        assert_trees_all_close(trajectory(mixed, params), trajectory(pure, params), rtol=2e-5, atol=2e-6)


def test_gradtx_chain_forwards_extra_args_only_to_members_that_take_them():
    seen = {}

    def record(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    takes_extra = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), record)
    tx = gradtx.chain(optax.scale(2.0), takes_extra, gradtx.scale(0.5))
    params = {"w": jnp.ones(2, jnp.float32)}
    # Op by op: called eagerly, the update would run compiled, and `record` would see a tracer.
    with jax.numpy_dtype_promotion("standard"), jax.disable_jit():
        updates, _ = tx.update(params, tx.init(params), params, value=1.0)
    assert seen == {"value": 1.0}
    assert_trees_all_close(updates, params)


def test_state_moves_between_libraries():
    """gradtx's chain state is a tuple of its members' states, as optax's: one can resume the other."""
    params = model()
    ours, theirs = gradtx.adam(0.1), optax.adam(0.1)
    state = ours.init(params)
    grads = pseudo_gradients(params, 0)
    _, state = ours.update(grads, state, params)
    with jax.numpy_dtype_promotion("standard"):
        reference_state = theirs.update(grads, theirs.init(params), params)[1]
    leaves = jax.tree.leaves(state)
    assert len(leaves) == len(jax.tree.leaves(reference_state))
    assert_trees_all_close(leaves, jax.tree.leaves(reference_state), rtol=1e-6)
