"""DoG and DoWG against optax.contrib in float64 (rtol 1e-9) and float32, and DoG against its
authors' package (`dog-optimizer`, torch, float64, rtol 1e-10)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {
    "dog": lambda m, c: c.dog(),
    "dog-decay": lambda m, c: c.dog(0.5, weight_decay=1e-2),
    "dog-learning_rate": lambda m, c: c.dog(init_step=("learning_rate", 1e-2), eps=1e-6),
    "dowg": lambda m, c: c.dowg(init_estim_sq_dist=1e-2, weight_decay=1e-3),
}
FLOAT32 = ("dog", "dowg")  # the float32 rule on one of each: every case costs a compilation


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_in_float64_and_is_no_less_accurate_in_float32(runs, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-5  # the params moved (DoG starts slowly)
    if name in FLOAT32:
        ours32, theirs32 = runs("gradtx", jnp.float32, name), runs("optax", jnp.float32, name)
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_dog_matches_the_authors_package(runs, weight_decay):
    from dog import DoG

    name = "dog" if weight_decay == 0 else "dog-decay"
    lr = 1.0 if weight_decay == 0 else 0.5
    want = tj.torch_run(lambda t: DoG(t, reps_rel=1e-6, lr=lr, weight_decay=weight_decay, eps=1e-8), tj.model())
    got = runs("gradtx", jnp.float64, name)[1]
    assert_trees_all_close(got, tj.stacked(want), rtol=1e-10, atol=1e-15, what=name)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"dog: init_step must be a pair \(kind, value\) with kind one of"):
        gradtx.dog(init_step=("guess", 1.0))
    with pytest.raises(ValueError, match=r"dog: init_step must be in \(0, inf\), got 0.0"):
        gradtx.dog(init_step=("distance", 0.0))
    with pytest.raises(ValueError, match=r"dowg: eps must be in \(0, inf\), got 0.0"):
        gradtx.dowg(eps=0.0)
    with pytest.raises(ValueError, match="scale_by_dog: update needs params"):
        tx = gradtx.scale_by_dog()
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_nan_gradients_give_nan_updates():
    for tx in (gradtx.dog(), gradtx.dowg()):
        params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
        u, _ = tx.update({"w": jnp.asarray([1.0, jnp.nan, 0.0]), "b": jnp.ones(2)}, tx.init(params), params)
        assert np.isnan(np.asarray(u["w"])).all() and np.isnan(np.asarray(u["b"])).all()  # one global norm
