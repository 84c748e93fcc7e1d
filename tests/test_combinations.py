"""Wrappers in combination, against the same composition built from optax (float64, rtol 1e-9),
compiled (jit) and batched (vmap over models, over learning rates):

- MultiSteps inside masked inside chain, the whole under apply_if_finite, with NaN gradients
  (steps skipped as a whole, the accumulation unharmed);
- freeze (and selective_transform) with inject_hyperparams: frozen params never move, the others
  follow the injected learning rate, a value set in the state between steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from tests.trajectories import _scan, assert_close, compare_with_optax, gradients, model

MASK = {"w": True, "b": False, "conv": True, "s": False}


def accumulate_masked(m):
    """apply_if_finite(chain(clip, masked(MultiSteps(adam, 3)), scale)): accumulation for w and conv only."""
    inner = m.MultiSteps(m.adam(0.1), 3, accumulator_dtype=jnp.float64).gradient_transformation()
    return m.apply_if_finite(m.chain(m.clip_by_global_norm(5.0), m.masked(inner, MASK), m.scale(0.5)), 3)


def nan_gradients() -> dict:
    g = gradients(model())
    g["w"] = g["w"].at[4, 0, 0].set(jnp.nan).at[5, 1, 2].set(jnp.nan)  # two non-finite steps in a row
    g["b"] = g["b"].at[10, 0].set(jnp.inf)  # in a leaf MultiSteps does not see: the step is skipped still
    return g


def test_multisteps_in_masked_in_chain_under_apply_if_finite_matches_optax_under_jit_and_vmap():
    grads = nan_gradients()
    (us, ps, state), (_, _, theirs) = compare_with_optax(accumulate_masked, grads=grads, float32=False)
    for step in (4, 5, 10):  # skipped: zero updates everywhere
        assert not any(np.asarray(u[step]).any() for u in us.values()), step
    assert int(state.total_notfinite) == 3 and bool(state.last_finite)
    steps = gradtx.tree.get(state, "gradient_step")  # MultiSteps took a step every 3 finite gradients
    assert int(steps) == (32 - 3) // 3 == int(optax.tree.get(theirs, "gradient_step"))
    assert np.all(np.isfinite(np.asarray(ps["w"])))

    # vmap over three models and their gradients, against optax's composition under the same vmap;
    # the first model of the batch is the run above.
    models = [jax.tree.map(lambda x, k=k: x * (1 + k), model()) for k in range(3)]
    models = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    batch = jax.tree.map(lambda g: jnp.stack([g, 0.5 * g, 2 * g]), grads)

    def run(m):
        tx = accumulate_masked(m)
        return jax.jit(jax.vmap(lambda p, g: _scan(tx, p, g, 0.1, {})[:2]))(models, batch)

    ours = run(gradtx)
    with jax.numpy_dtype_promotion("standard"):
        theirs_batched = run(optax)
    assert_close(ours, theirs_batched, rtol=1e-9, atol=1e-12, what="vmap (updates, params)")
    assert_close(jax.tree.map(lambda x: x[0], ours), (us, ps), rtol=1e-12, atol=1e-15, what="vmap vs one model")


FROZEN = {"w": False, "b": True, "conv": False, "s": True}


def halving(count: jax.Array) -> jax.Array:
    """A float32 schedule: the same number in both libraries (optax keeps a schedule's dtype)."""
    return jnp.asarray(0.1, jnp.float32) * jnp.exp2(-count.astype(jnp.float32) / 8)


def test_freeze_with_inject_hyperparams_matches_optax():
    make = lambda m: m.chain(m.freeze(FROZEN), m.inject_hyperparams(m.adam)(learning_rate=halving, b1=0.8))
    (_, ps, state), _ = compare_with_optax(make)
    for k, frozen in FROZEN.items():
        moved = np.abs(np.asarray(ps[k][-1]) - np.asarray(model()[k])).max()
        assert (moved == 0) == frozen, k
    np.testing.assert_allclose(gradtx.tree.get(state, "learning_rate"), halving(jnp.asarray(31)), rtol=1e-7)


def test_selective_transform_with_inject_hyperparams_under_vmap_over_learning_rates():
    params, grads = model(), gradients(model())
    lrs = jnp.asarray([0.3, 0.1, 0.01])

    def run(m):
        def one(lr):
            tx = m.selective_transform(
                m.inject_hyperparams(m.adamw)(learning_rate=lr, weight_decay=0.1), freeze_mask=FROZEN
            )
            return _scan(tx, params, grads, 1.0, {})

        return jax.jit(jax.vmap(one))(lrs)

    ours = run(gradtx)
    with jax.numpy_dtype_promotion("standard"):
        theirs = run(optax)
    assert_close(ours[:2], theirs[:2], rtol=1e-9, atol=1e-12, what="vmap over learning rates")
    np.testing.assert_array_equal(ours[1]["b"][:, -1], np.broadcast_to(params["b"], (3, 4)))  # no decay either
    lr_state = gradtx.tree.get(ours[2], "learning_rate")
    np.testing.assert_allclose(lr_state, lrs, rtol=1e-12)


def test_a_learning_rate_set_in_the_state_reaches_the_unfrozen_params_only():
    params, g = model(), jax.tree.map(lambda x: x[0], gradients(model(), steps=1))
    for m in (gradtx, optax):
        tx = m.chain(m.freeze(FROZEN), m.inject_hyperparams(m.sgd)(learning_rate=0.1))
        state = tx.init(params)
        state[1].hyperparams["learning_rate"] = jnp.asarray(0.01)
        with jax.numpy_dtype_promotion("standard"):
            u, _ = jax.jit(tx.update)(g, state, params)
        np.testing.assert_allclose(u["w"], -0.01 * g["w"], rtol=1e-12)
        assert not np.asarray(u["b"]).any()
