"""MADGRAD against its authors' package (`madgrad`, torch, float64, rtol 1e-10) and optax.contrib.

optax takes sqrt(k + 1) of its int32 step count in float32, also in a float64 run
(`jnp.sqrt(count + 1)`), so its float64 trajectory carries float32 rounding in lambda; the
authors' code and gradtx take it in the params' precision. Against optax: float64 to the size of
that rounding, float32 no less accurate (both measured against the authors' float64 run).
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

CASES = {  # name: (gradtx/optax builder, the authors' MADGRAD arguments)
    "madgrad": (lambda m, c: c.madgrad(0.05), dict(lr=0.05)),
    "madgrad-decay": (lambda m, c: c.madgrad(0.05, momentum=0.5, weight_decay=1e-2, eps=1e-4),
                      dict(lr=0.05, momentum=0.5, weight_decay=1e-2, eps=1e-4)),
    "madgrad-no-momentum": (lambda m, c: c.madgrad(0.02, momentum=0.0), dict(lr=0.02, momentum=0.0)),
}  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs({k: make for k, (make, _) in CASES.items()})


@pytest.fixture(scope="module")
def authors() -> dict:
    from madgrad import MADGRAD

    return {k: tj.stacked(tj.torch_run(lambda t, a=a: MADGRAD(t, **a), tj.model())) for k, (_, a) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_authors_package_in_float64(runs, authors, name):
    got = runs("gradtx", jnp.float64, name)[1]
    assert_trees_all_close(got, authors[name], rtol=1e-10, atol=1e-14, what=name)
    assert float(jnp.abs(got["w"][-1] - got["w"][0]).max()) > 1e-2  # the params moved


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_up_to_its_float32_step_count_and_float32_is_no_less_accurate(runs, authors, name):
    ours, theirs = runs("gradtx", jnp.float64, name), runs("optax", jnp.float64, name)
    assert tj.closeness(ours[1], theirs[1]) < 1e-5  # lambda's float32 rounding, carried by the sums
    if name == "madgrad-decay":
        ours32, theirs32 = runs("gradtx", jnp.float32, name)[1], runs("optax", jnp.float32, name)[1]
        tj.assert_float32_no_less_accurate(ours32, theirs32, authors[name], name)


def test_nan_gradients_give_nan_updates_and_errors_name_the_argument():
    tx = gradtx.madgrad(0.1)
    params = {"w": jnp.ones(2)}
    u, _ = tx.update({"w": jnp.asarray([jnp.nan, 1.0])}, tx.init(params), params)
    assert bool(jnp.isnan(u["w"][0])) and bool(jnp.isfinite(u["w"][1]))
    with pytest.raises(ValueError, match=r"madgrad: momentum must be in \[0, 1\), got 1.0"):
        gradtx.madgrad(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"madgrad: eps must be in \(0, inf\), got 0.0"):
        gradtx.madgrad(0.1, eps=0.0)
