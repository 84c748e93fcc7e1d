"""centralize against optax (float64 trajectories at rtol 1e-9) and a NumPy loop from the paper
(Yong et al., 2020: each output's weight gradient minus its mean); vectors pass, NaN stays NaN."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import gradtx
from tests.trajectories import compare_with_optax, gradients, model


def test_centralize_in_a_chain_matches_optax():
    compare_with_optax(lambda m: m.chain(m.centralize(), m.sgd(0.1, momentum=0.9)))


def test_centralize_against_numpy():
    params = model()
    g = {k: v[0] for k, v in gradients(params, steps=1).items()}
    tx = gradtx.centralize()
    u, state = tx.update(g, tx.init(params))
    for k, x in g.items():
        x = np.asarray(x)
        want = x - x.reshape(len(x), -1).mean(axis=1).reshape(-1, *[1] * (x.ndim - 1)) if x.ndim > 1 else x
        np.testing.assert_allclose(u[k], want, rtol=1e-12, atol=1e-15)
        if x.ndim > 1:  # each row (everything but axis 0) now sums to zero
            np.testing.assert_allclose(np.asarray(u[k]).reshape(len(x), -1).sum(axis=1), 0.0, atol=1e-12)
    assert state == gradtx.EmptyState()


def test_centralize_keeps_nan_and_dtype():
    g = {"w": jnp.asarray([[1.0, jnp.nan], [2.0, 4.0]], jnp.bfloat16), "b": jnp.asarray([jnp.nan, 1.0])}
    u, _ = gradtx.centralize().update(g, gradtx.EmptyState())
    assert u["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.isnan(np.asarray(u["w"], np.float32)), [[True, True], [False, False]])
    np.testing.assert_allclose(np.asarray(u["w"][1], np.float32), [-1.0, 1.0])
    assert np.isnan(np.asarray(u["b"][0])) and float(u["b"][1]) == 1.0
