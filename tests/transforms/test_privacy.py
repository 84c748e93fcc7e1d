"""DP-SGD's aggregation and dpsgd against optax.contrib (float64 rtol 1e-9, float32, the same noise
for the same seed), a NumPy loop of the clipping rule, and the contract checks the registry-driven
tests cannot run on per-example gradients (jit equals eager, state fixed, equal/hashable/picklable,
repr rebuilds, errors)."""

from __future__ import annotations

import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax.contrib
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close, assert_trees_same_structure_and_dtypes
from tests import loss_trajectories as tj
from tests.registry import PER_EXAMPLE

BATCH = 4


SCALES = (0.5, 8.0, 1.0, 0.1)  # example 1 is large: it gets clipped


def example_grads(params, noise):
    """B examples' gradients at params: (p - 1/2) scaled per example, plus the given noise."""
    scales = jnp.asarray(SCALES)
    return jax.tree.map(lambda p, e: scales.reshape(-1, *[1] * p.ndim).astype(p.dtype) * (p - 0.5) + e, params, noise)


def example_noise(params, k: int):
    rng = np.random.default_rng(k)
    return jax.tree.map(lambda p: np.asarray(rng.normal(size=(BATCH, *p.shape)), p.dtype), params)


def per_example(params, k: int):
    return example_grads(params, example_noise(params, k))


def trajectory(tx, params, steps: int = tj.STEPS):
    """(updates, params) at every step, one jitted step called `steps` times."""

    @jax.jit
    def step(p, state, noise):
        u, state = tx.update(example_grads(p, noise), state, p)
        return u, jax.tree.map(lambda x, v: x + v, p, u), state

    state, out = tx.init(params), []
    for k in range(steps):
        u, params, state = step(params, state, example_noise(params, k))
        out.append((u, params))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *out)


DPSGD = {
    "dpsgd": lambda m: m.dpsgd(0.5, l2_norm_clip=1.0, noise_multiplier=0.3, seed=7),
    "dpsgd-momentum": lambda m: m.dpsgd(0.2, 2.0, 0.1, seed=3, momentum=0.9, nesterov=True),
}


@pytest.fixture(scope="module")
def runs() -> dict:
    out = {}
    for dtype, names in ((jnp.float64, list(DPSGD)), (jnp.float32, ["dpsgd-momentum"])):
        for name in names:
            out["gradtx", dtype, name] = trajectory(DPSGD[name](gradtx), tj.model(dtype))
            with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # optax's dpsgd passes its own seed= on
                out["optax", dtype, name] = trajectory(DPSGD[name](optax.contrib), tj.model(dtype))
    return out


@pytest.mark.parametrize("name", list(DPSGD))
def test_dpsgd_matches_optax_with_the_same_noise(runs, name):
    ours, theirs = runs["gradtx", jnp.float64, name], runs["optax", jnp.float64, name]
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    assert float(jnp.abs(ours[1]["w"][-1] - ours[1]["w"][0]).max()) > 1e-2
    if ("gradtx", jnp.float32, name) in runs:
        ours32, theirs32 = runs["gradtx", jnp.float32, name], runs["optax", jnp.float32, name]
        tj.assert_float32_no_less_accurate(ours32, theirs32, theirs, name)


def test_aggregate_matches_optax_and_the_clipping_rule():
    params = tj.model()
    grads = per_example(params, 0)
    ours = gradtx.differentially_private_aggregate(l2_norm_clip=8.0, noise_multiplier=0.4, key=11)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.contrib.differentially_private_aggregate(8.0, 0.4, key=11)
        s_theirs = theirs.init(params)
        want = []
        for _ in range(2):  # the key advances: two draws
            u, s_theirs = theirs.update(grads, s_theirs, params)
            want.append(u)
    s_ours = ours.init(params)
    for k in range(2):
        u, s_ours = ours.update(grads, s_ours, params)
        assert_trees_all_close(u, want[k], rtol=1e-12, atol=1e-15, what=f"draw {k}")
    # Without noise: the mean of the examples, each scaled to norm <= C (NumPy, example by example).
    flat = [np.asarray(x) for x in jax.tree.leaves(grads)]
    norms = np.sqrt(sum((x.reshape(BATCH, -1) ** 2).sum(axis=1) for x in flat))
    factors = np.minimum(1.0, 8.0 / norms)
    assert (factors < 1).any() and (factors == 1).any()
    clean, _ = gradtx.differentially_private_aggregate(8.0, 0.0).update(grads, ours.init(params))
    for got, x in zip(jax.tree.leaves(clean), flat, strict=True):
        np.testing.assert_allclose(got, np.tensordot(factors, x, axes=1) / BATCH, rtol=1e-13)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in PER_EXAMPLE])
def test_keeps_the_contract(case):
    tx = case.build()
    params = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.bfloat16).reshape(2, 3), "n": jnp.arange(2), "z": None}
    state = tx.init(params)
    assert_trees_same_structure_and_dtypes(jax.eval_shape(tx.init, params), state, "eval_shape(init)")
    traces = []

    def step(g, state, params):
        traces.append(None)
        return tx.update(g, state, params)

    jstep = jax.jit(step)
    for k in range(2):
        g = {"w": per_example({"w": params["w"]}, k)["w"], "n": None, "z": None}
        with jax.disable_jit():
            u, eager_state = tx.update(g, state, params)
        u_jit, state = jstep(g, state, params)
        assert_trees_all_close((u_jit, state), (u, eager_state), rtol=2e-2, atol=2e-2)
        assert_trees_same_structure_and_dtypes(state, tx.init(params), f"state at step {k}")
        assert u["w"].shape == (2, 3) and u["w"].dtype == jnp.bfloat16 and u["z"] is None
    assert len(traces) == 1
    other = case.build()
    assert tx == other and hash(tx) == hash(other) and pickle.loads(pickle.dumps(tx)) == tx
    assert eval(repr(tx), vars(gradtx)) == tx
    assert gradtx.lint(tx) == [] or case.name == "differentially_private_aggregate"


def test_per_example_gradients_are_checked_and_nan_stays_visible():
    tx = gradtx.dpsgd(0.1, 1.0, 0.0, seed=0)
    params = {"w": jnp.ones(3), "b": jnp.ones(())}
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"dpsgd: expects per-example gradients, .*\['b'\] is a scalar"):
        tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(())}, state, params)
    with pytest.raises(ValueError, match="dpsgd: the per-example gradients' batch axes differ in size"):
        tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state, params)
    with pytest.raises(ValueError, match=r"dpsgd: the gradients do not match params: \['w'\] has shape \(4,\)"):
        tx.update({"w": jnp.ones((2, 4)), "b": jnp.ones(2)}, state, params)
    u, _ = tx.update({"w": jnp.asarray([[1.0, jnp.nan, 0.0], [1.0, 1.0, 1.0]]), "b": jnp.ones(2)}, state, params)
    # Example 0's norm is NaN, so its factor is 1 (as optax's): the NaN reaches the update where it was.
    assert bool(jnp.isnan(u["w"][1])) and bool(jnp.isfinite(u["b"]))
    with pytest.raises(ValueError, match=r"dpsgd: momentum must be in \[0, 1\], got 1.5"):
        gradtx.dpsgd(0.1, 1.0, 1.0, seed=0, momentum=1.5)
    with pytest.raises(TypeError, match=r"dpsgd: seed must be an int seed or a PRNG key, got nan"):
        gradtx.dpsgd(0.1, 1.0, 1.0, seed=float("nan"))
    with pytest.raises(ValueError, match=r"differentially_private_aggregate: l2_norm_clip must be in \[0, inf\)"):
        gradtx.differentially_private_aggregate(-1.0, 1.0)
