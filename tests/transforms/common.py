"""Helpers the transformation tests share: run a transformation over stacked steps, compare by leaf."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def run(tx, grads: dict, params: dict | None = None, standard: bool = False) -> tuple[dict, object]:
    """tx's updates at each step of `grads` (stacked on axis 0) and its final state, params held fixed
    (zeros by default): one compiled scan. `standard`: optax relies on implicit dtype promotion."""
    params = jax.tree.map(lambda g: jnp.zeros_like(g[0]), grads) if params is None else params

    def scan(gs):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        state, updates = jax.lax.scan(step, tx.init(params), gs)
        return updates, state

    grads = jax.tree.map(jnp.asarray, grads)
    if standard:
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(grads)
    return jax.jit(scan)(grads)


def assert_close(ours: dict, reference: dict, rtol: float, atol: float = 0.0) -> None:
    for key in reference:
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol, atol, err_msg=key)
