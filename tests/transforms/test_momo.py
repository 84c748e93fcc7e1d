"""MoMo and MoMo-Adam against optax.contrib in float64 (rtol 1e-9) and float32, and against the
authors' package (`momo-opt`, torch, float64, rtol 1e-10) without weight decay, where optax and
the authors' code agree. The loss at the current params is passed as `value=` to both libraries.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "momo": lambda m, c: c.momo(0.5),
    "momo-decay": lambda m, c: c.momo(0.5, beta=0.8, weight_decay=1e-2),
    "momo-adapt": lambda m, c: c.momo(1.0, lower_bound=-0.5, adapt_lower_bound=True),
    "momo_adam": lambda m, c: c.momo_adam(0.1),
    "momo_adam-decay": lambda m, c: c.momo_adam(0.1, b1=0.8, weight_decay=1e-2),
    "momo_adam-adapt": lambda m, c: c.momo_adam(0.5, lower_bound=-0.5, adapt_lower_bound=True),
}
FLOAT32 = ("momo-decay", "momo_adam-adapt")  # the float32 rule on one of each: every case costs a compilation


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES, value=frozenset(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-2  # the params moved
    if name in FLOAT32:
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


@pytest.mark.parametrize("name", ["momo", "momo-adapt", "momo_adam", "momo_adam-adapt"])
def test_matches_the_authors_package_without_weight_decay(runs, name):
    from momo import Momo, MomoAdam

    make = {
        "momo": lambda t: Momo(t, lr=0.5),
        "momo-adapt": lambda t: Momo(t, lr=1.0, lb=-0.5, use_fstar=True),
        "momo_adam": lambda t: MomoAdam(t, lr=0.1),
        "momo_adam-adapt": lambda t: MomoAdam(t, lr=0.5, lb=-0.5, use_fstar=True),
    }[name]
    want = tj.stacked(tj.torch_run(make, tj.model(), value=True))
    assert_trees_all_close(runs("gradtx", jnp.float64, name)[1], want, rtol=1e-10, atol=1e-14, what=name)


def test_the_step_reaches_the_lower_bound_on_a_linear_model():
    """One step from x with loss f and gradient g: tau = f / ||g||^2 (the Polyak step), capped at alpha."""
    x = jnp.asarray([1.0, -2.0, 0.5], jnp.float64)
    g = jnp.asarray([0.5, 1.0, -1.0], jnp.float64)
    for alpha, f in ((10.0, 2.0), (0.1, 2.0)):
        tx = gradtx.momo(alpha)
        u, state = tx.update(g, tx.init(x), x, value=f)
        np.testing.assert_allclose(u, -min(alpha, f / float(g @ g)) * g, rtol=1e-14)
        assert int(state.count) == 1 and float(state.barf) == f


def test_a_missing_value_names_the_keyword_and_nan_stays_visible():
    x = {"w": jnp.ones(2)}
    for tx in (gradtx.momo(), gradtx.momo_adam()):
        builder = tx.hyperparams.builder
        with pytest.raises(TypeError, match=rf"{builder}: update needs the loss .* value=loss"):
            tx.update(x, tx.init(x), x)
        u, _ = tx.update({"w": jnp.asarray([jnp.nan, 1.0])}, tx.init(x), x, value=1.0)
        assert np.isnan(np.asarray(u["w"])).all()  # one step size for all leaves
        u, _ = tx.update(x, tx.init(x), x, value=jnp.nan)
        assert np.isnan(np.asarray(u["w"])).all()
    with pytest.raises(ValueError, match=r"momo: beta must be in \[0, 1\), got 1.0"):
        gradtx.momo(beta=1.0)
