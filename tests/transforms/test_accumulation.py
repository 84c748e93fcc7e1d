"""apply_every against optax (float64 trajectories at rtol 1e-9, the same state) and a NumPy loop:
the sum of each cycle's k gradients at its k-th step, zero between; a NaN stays in the sum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.trajectories import assert_same_layout, compare_with_optax, gradients, model, trajectory


def test_apply_every_in_a_chain_matches_optax():
    (_, _, state), (_, _, theirs) = compare_with_optax(lambda m: m.chain(m.apply_every(3), m.adam(0.1)))
    assert_same_layout(state, theirs)


def test_apply_every_against_numpy():
    params = model()
    grads = gradients(params)
    k = 4
    us = trajectory(gradtx.apply_every(k), params, grads, lr=0.0)[0]
    for name, g in grads.items():
        g = np.asarray(g)
        want = np.zeros_like(g)
        for t in range(k - 1, len(g), k):
            want[t] = g[t - k + 1 : t + 1].sum(axis=0)  # the cycle's sum, at its last step
        np.testing.assert_allclose(us[name], want, rtol=1e-12, atol=1e-14, err_msg=name)


def test_apply_every_keeps_a_nan_visible_as_optax():
    tx = gradtx.apply_every(2)
    g = [jnp.asarray([1.0, 2.0]), jnp.asarray([jnp.nan, 1.0]), jnp.asarray([1.0, 1.0]), jnp.asarray([1.0, 1.0])]
    ours, theirs = [], []
    state, their_state = tx.init(g[0]), optax.apply_every(2).init(g[0])
    for x in g:
        u, state = tx.update(x, state)
        with jax.numpy_dtype_promotion("standard"):
            v, their_state = optax.apply_every(2).update(x, their_state)
        ours.append(np.asarray(u))
        theirs.append(np.asarray(v))
    np.testing.assert_array_equal(np.stack(ours), np.stack(theirs))
    assert np.isnan(ours[1][0]) and np.isnan(ours[3][0])  # NaN in, NaN out, and it stays


def test_apply_every_validates_k():
    with pytest.raises(TypeError, match=r"^apply_every: k must be an integer in \[1, inf\), got 2.5"):
        gradtx.apply_every(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^apply_every: k must be in \[1, inf\), got 0"):
        gradtx.apply_every(0)
