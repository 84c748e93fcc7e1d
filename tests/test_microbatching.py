"""gradtx.microbatching against optax.microbatching (float64, rtol 1e-9) and against the function
evaluated on the whole batch: microbatch with each accumulator and a tree of them, an early stop
(num_real_microbatches, traced), micro_vmap against jax.vmap, micro_grad against per-example
jax.grad and, with clipping, against per_example_global_norm_clip; the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.microbatching as omb
import pytest

import gradtx
from gradtx import microbatching as gmb

B, M = 12, 3  # 12 examples, microbatches of 3: 4 microbatches
RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(B, 5)))
Y = jnp.asarray(RNG.normal(size=(B,)))
W = jnp.asarray(RNG.normal(size=(5,)))


def stats(w, x, y):
    """(residuals, sum of squares, mean loss, a tree): outputs for each kind of accumulator."""
    r = x @ w - y
    return r, jnp.sum(r**2), 0.5 * jnp.mean(r**2), {"max": jnp.max(jnp.abs(r)), "n": jnp.asarray(len(r))}


def strategy(m):
    at = m.AccumulationType
    return (at.CONCAT, at.SUM, at.MEAN, {"max": at.RUNNING_MEAN, "n": at.SUM})


def test_microbatch_matches_the_whole_batch_and_optax():
    ours = jax.jit(gradtx.microbatch(stats, argnums=(1, 2), microbatch_size=M, accumulator=strategy(gmb)))(W, X, Y)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.microbatch(stats, argnums=(1, 2), microbatch_size=M, accumulator=strategy(omb))(W, X, Y)
    whole = stats(W, X, Y)
    np.testing.assert_allclose(ours[0], whole[0], rtol=1e-12)  # CONCAT puts the examples back in order
    np.testing.assert_allclose(ours[1], whole[1], rtol=1e-12)
    np.testing.assert_allclose(ours[2], whole[2], rtol=1e-12)  # the mean of equal-size microbatch means
    assert int(ours[3]["n"]) == B
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    # RUNNING_MEAN of each microbatch's max: microbatch i holds examples i, i + 4, i + 8 (column-major)
    r = np.abs(np.asarray(whole[0])).reshape(M, B // M)  # [j, i] = example i + 4 j
    np.testing.assert_allclose(ours[3]["max"], r.max(axis=0).mean(), rtol=1e-12)


def test_an_early_stop_averages_the_microbatches_computed():
    at = gmb.AccumulationType
    f = lambda k: gradtx.microbatch(lambda x: jnp.mean(x), 0, 2, at.RUNNING_MEAN, num_real_microbatches=k)(
        jnp.arange(8.0)
    )  # microbatches (0, 4), (1, 5), (2, 6), (3, 7)
    np.testing.assert_allclose(jax.jit(f)(jnp.asarray(2)), np.mean([0, 4, 1, 5]), rtol=1e-12)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.microbatch(
            lambda x: jnp.mean(x), 0, 2, omb.AccumulationType.RUNNING_MEAN, num_real_microbatches=2
        )
        np.testing.assert_allclose(theirs(jnp.arange(8.0)), 2.5, rtol=1e-12)


def test_reshape_batch_axis_matches_optax():
    x = jnp.arange(2 * 6 * 3).reshape(2, 6, 3)
    for axis in (0, 1):
        size = x.shape[axis] // 2
        np.testing.assert_array_equal(gradtx.reshape_batch_axis(x, size, axis), omb.reshape_batch_axis(x, size, axis))


def test_micro_vmap_equals_jax_vmap_and_reduces():
    f = lambda x, w: jnp.tanh(x @ w)
    full = jax.vmap(f, (0, None))(X, W)
    np.testing.assert_allclose(gradtx.micro_vmap(f, (0, None), microbatch_size=M)(X, W), full, rtol=1e-12)
    at = gmb.AccumulationType
    for acc, want in ((at.SUM, full.sum()), (at.MEAN, full.mean())):
        np.testing.assert_allclose(
            gradtx.micro_vmap(f, (0, None), microbatch_size=4, accumulator=acc)(X, W), want, rtol=1e-12
        )
    both = gradtx.micro_vmap(lambda a, b: a * b, microbatch_size=4)(X, X)  # one int: every argument batched
    np.testing.assert_allclose(both, X * X, rtol=1e-12)


def loss(w, x, y):
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def test_micro_grad_against_per_example_grads_and_optax():
    per_example = jax.vmap(jax.grad(loss), (None, 0, 0))(W, X[:, None], Y[:, None])
    grads, aux = gradtx.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=M)(W, X, Y)
    np.testing.assert_allclose(grads, per_example.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(aux.values, 0.5 * (X @ W - Y) ** 2, rtol=1e-12)
    with jax.numpy_dtype_promotion("standard"):
        theirs, their_aux = omb.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=M)(W, X, Y)
    np.testing.assert_allclose(grads, theirs, rtol=1e-9)
    np.testing.assert_allclose(aux.values, their_aux.values, rtol=1e-9)


def clip_to_four(g):
    return g * jnp.minimum(1.0, 4.0 / jnp.linalg.norm(g))  # the examples' gradient norms are 0.5 to 15


def test_micro_grad_with_per_example_clipping_is_dp_sgd_clipping():
    grads, aux = gradtx.micro_grad(
        loss, batch_argnums=(1, 2), microbatch_size=4, transform_fn=clip_to_four, metrics_fn=jnp.linalg.norm
    )(W, X, Y)
    per_example = jax.vmap(jax.grad(loss), (None, 0, 0))(W, X[:, None], Y[:, None])
    summed, clipped = gradtx.per_example_global_norm_clip(per_example, 4.0)
    np.testing.assert_allclose(grads, summed, rtol=1e-12)
    np.testing.assert_allclose(aux.metrics, jnp.linalg.norm(per_example, axis=1), rtol=1e-12)
    assert 0 < int(clipped) < B


def test_errors():
    f = gradtx.microbatch(lambda x: x, 0, 5)
    with pytest.raises(
        ValueError, match=r"^microbatch: the batch size 12 is not a positive multiple of microbatch_size=5"
    ):
        f(X)
    with pytest.raises(ValueError, match=r"^microbatch: the batch arguments must have one batch size"):
        gradtx.microbatch(lambda x, y: x, (0, 1), 3)(X, X[:6])
    with pytest.raises(ValueError, match=r"^microbatch: a MEAN accumulator needs floating results"):
        gradtx.microbatch(lambda x: x, 0, 3, gmb.AccumulationType.MEAN)(jnp.arange(12))
    with pytest.raises(TypeError, match=r"^microbatch: accumulator must be an AccumulationType"):
        gradtx.microbatch(lambda x: x, 0, 3, "sum")
    with pytest.raises(ValueError, match=r"^microbatch: microbatch_size must be in \[1, inf\), got 0"):
        gradtx.microbatch(lambda x: x, 0, 0)
    assert gradtx.microbatch(loss, 1, None) is loss
