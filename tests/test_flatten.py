"""flatten against optax (float64 trajectories at rtol 1e-9, float32 no less accurate, the same state)
and against the unflattened transformation (a coordinate-wise or whole-tree transformation cannot
tell the difference); mixed dtypes come back in each leaf's dtype; keyword arguments reach inside."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from tests.trajectories import assert_close, assert_same_layout, compare_with_optax, gradients, model, trajectories


def test_flatten_matches_optax():
    (_, _, state), (_, _, theirs) = compare_with_optax(lambda m: m.flatten(m.adam(0.1)))
    assert state[0].mu.shape == (3 * 4 + 4 + 3 * 3 * 2 * 4 + 1,)
    assert_same_layout(state, theirs)


def test_flatten_equals_the_transformation_on_the_tree():
    params = model()
    grads = gradients(params)
    inner = gradtx.chain(gradtx.clip_by_global_norm(2.0), gradtx.adam(0.1))
    ours, plain = (trajectories(tx, [(params, grads)])[0] for tx in (gradtx.flatten(inner), inner))
    assert_close(ours[:2], plain[:2], rtol=1e-12, atol=1e-15)


def test_mixed_dtypes_come_back_in_their_own():
    params = {"w": jnp.ones((2, 3), jnp.float32), "h": jnp.ones(3, jnp.bfloat16), "n": jnp.arange(2)}
    grads = {"w": jnp.full((2, 3), 0.5, jnp.float32), "h": jnp.full(3, 0.25, jnp.bfloat16), "n": None}
    tx = gradtx.flatten(gradtx.sgd(0.1, momentum=0.9))
    state = tx.init(params)
    assert state[0].trace.dtype == jnp.float32 and state[0].trace.shape == (9,)  # integers hold no state
    u, state = jax.jit(tx.update)(grads, state, params)
    assert u["w"].dtype == jnp.float32 and u["h"].dtype == jnp.bfloat16 and u["n"] is None
    np.testing.assert_allclose(np.asarray(u["h"], np.float32), -0.025, rtol=1e-2)


def needs_loss(updates, state, params=None, *, loss, **extra_args):
    return jax.tree.map(lambda u: u * loss, updates), state


def test_keyword_arguments_reach_the_inner_transformation():
    tx = gradtx.flatten(gradtx.GradientTransformationExtraArgs(gradtx.init_empty_state, needs_loss))
    g = {"a": jnp.ones(2), "b": jnp.ones(())}
    u, _ = tx.update(g, tx.init(g), loss=3.0)
    np.testing.assert_allclose(u["a"], [3.0, 3.0])
    assert u["b"].shape == ()
