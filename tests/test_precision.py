"""bfloat16 params trained as if float32: gradtx.stochastic_round, stochastic_rounding, kahan_summation.

- stochastic_round is unbiased: for values between two bfloat16 (float16, float32) neighbours, the
  number rounded up over 2^16 draws is binomial with p = the distance to the lower one / the gap; a
  z-test at 5 standard deviations for each of 24 values fails by chance with probability 1.4e-5 (a
  fixed seed, so the test is deterministic). NaN, infinities and representable values are kept.
- On a quadratic whose steps are below half of bfloat16's spacing, plain bfloat16 SGD does not
  move; with Kahan summation it follows the float64 trajectory to within a few bfloat16 spacings,
  with stochastic rounding within noise that averages out, against a float64 reference.
- torch-optimi's AdamW(kahan_sum=True) in bfloat16 follows the same trajectory as
  kahan_summation(adamw) in bfloat16 (an independent implementation of the same method).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

N = 2**16


@pytest.mark.parametrize(
    "source, target",
    [(jnp.float32, jnp.bfloat16), (jnp.float32, jnp.float16), (jnp.float64, jnp.float32)],
    ids=["f32->bf16", "f32->f16", "f64->f32"],
)
def test_stochastic_round_is_unbiased(source, target):
    eps = float(jnp.finfo(target).eps)
    fractions = np.arange(1, 9) / 9
    values = np.concatenate([1 + fractions * eps, -(2 + 2 * fractions * eps), 1e-3 * (1 + fractions * eps)])
    key = jax.random.PRNGKey(0)
    for i, x in enumerate(values):
        xs = jnp.full(N, x, source)
        rounded = jax.jit(gradtx.stochastic_round, static_argnums=1)(xs, target, jax.random.fold_in(key, i))
        assert rounded.dtype == target
        r = np.asarray(rounded.astype(jnp.float64))
        lo, hi = np.min(r), np.max(r)
        assert len(np.unique(r)) == 2 and lo <= float(xs[0]) <= hi, (x, np.unique(r))
        p = (float(xs[0]) - lo) / (hi - lo)
        ups = np.sum(r == hi)
        z = (ups - N * p) / np.sqrt(N * p * (1 - p))
        assert abs(z) < 5, (x, p, ups / N)


def test_stochastic_round_keeps_nan_infinities_and_representable_values():
    xs = jnp.asarray([np.nan, np.inf, -np.inf, 1.0, -0.5, 0.0, 3.0], jnp.float32)
    for target in (jnp.bfloat16, jnp.float16):
        r = gradtx.stochastic_round(xs, target, jax.random.PRNGKey(1))
        np.testing.assert_array_equal(np.asarray(r.astype(jnp.float32)), np.asarray(xs))


# ---------------------------------------------------------------------------------------------------
# Training bfloat16 params


TARGET = np.linspace(0.5, 1.5, 4096)


def run(tx, dtype, steps=400):
    """SGD on 0.5 ||w - t||^2 from w = 1 - t / 2... as one scan; returns w after each step (float64)."""
    w0 = jnp.asarray(1.0 + 0.25 * np.sin(np.arange(4096)), dtype)
    t = jnp.asarray(TARGET, dtype)

    def body(carry, _):
        w, state = carry
        u, state = tx.update(w - t, state, w)
        w = gradtx.apply_updates(w, u)
        return (w, state), w.astype(jnp.float64)

    return np.asarray(jax.jit(lambda w: jax.lax.scan(body, (w, tx.init(w)), None, length=steps)[1])(w0))


def test_kahan_and_stochastic_rounding_follow_float64_where_plain_bfloat16_stalls():
    """lr = 2e-4: a step moves w by 2e-4 |w - t| < 1e-4, below half of bfloat16's spacing at 1
    (2^-8): plain bfloat16 never moves."""
    sgd = gradtx.sgd(2e-4)
    exact = run(sgd, jnp.float64)
    plain = run(sgd, jnp.bfloat16)
    kahan = run(gradtx.kahan_summation(sgd), jnp.bfloat16)
    stochastic = run(gradtx.stochastic_rounding(sgd, key=0), jnp.bfloat16)
    moved = np.abs(exact[-1] - exact[0])
    assert np.all(plain[-1] == plain[0]), "plain bfloat16 should not move"
    error = {name: np.abs(w[-1] - exact[-1]) for name, w in [("plain", plain), ("kahan", kahan), ("sr", stochastic)]}
    spacing = 2.0**-7  # bfloat16's spacing in [1, 2)
    assert error["plain"].mean() > 0.5 * moved.mean()
    # Kahan: the weights are bfloat16, so up to half a spacing off the exact sum (kept in c).
    assert error["kahan"].max() <= 2 * spacing and error["kahan"].mean() < 0.15 * error["plain"].mean()
    # Stochastic rounding: unbiased noise of a few spacings per weight, averaging out over 4096 weights.
    assert abs(np.mean(stochastic[-1] - exact[-1])) < 0.05 * error["plain"].mean()
    assert error["sr"].mean() < 0.5 * error["plain"].mean()


def test_kahan_summation_matches_torch_optimi():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import optimi
        import torch
    lr, steps = 1e-3, 60
    w0 = (1.0 + 0.25 * np.sin(np.arange(4096))).astype(np.float32)
    t = TARGET.astype(np.float32)
    p = torch.nn.Parameter(torch.from_numpy(w0).to(torch.bfloat16))
    opt = optimi.AdamW([p], lr=lr, weight_decay=0.0, kahan_sum=True)
    theirs = []
    for _ in range(steps):
        p.grad = (p.detach() - torch.from_numpy(t).to(torch.bfloat16)).to(torch.bfloat16)
        opt.step()
        theirs.append(p.detach().float().numpy().copy())
    tx = gradtx.kahan_summation(gradtx.adamw(lr, weight_decay=0.0))
    w, tb = jnp.asarray(w0, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16)
    state = tx.init(w)
    step = jax.jit(lambda w, s: (lambda u, s: (gradtx.apply_updates(w, u), s))(*tx.update(w - tb, s, w)))
    plain_tx = gradtx.adamw(lr, weight_decay=0.0)
    plain, plain_state = w, plain_tx.init(w)
    for _ in range(steps):
        w, state = step(w, state)
        u, plain_state = plain_tx.update(plain - tb, plain_state, plain)
        plain = gradtx.apply_updates(plain, u)
    ours = np.asarray(w.astype(jnp.float32))
    # Both are bfloat16 weights with a bfloat16 compensation: equal to a bfloat16 spacing, and far
    # closer to each other than either is to plain bfloat16 AdamW.
    difference = np.abs(ours - theirs[-1])
    assert np.max(difference) <= 2.0**-7, np.max(difference)
    assert difference.mean() < 0.2 * np.abs(np.asarray(plain.astype(jnp.float32)) - theirs[-1]).mean()


def test_wrappers_leave_float32_params_alone_and_need_params():
    params = {"w": jnp.linspace(-1, 1, 8, dtype=jnp.float32)}
    for wrapped in (gradtx.kahan_summation(gradtx.adam(1e-2)), gradtx.stochastic_rounding(gradtx.adam(1e-2))):
        state = wrapped.init(params)
        u, _ = wrapped.update(params, state, params)
        expected, _ = gradtx.adam(1e-2).update(params, gradtx.adam(1e-2).init(params), params)
        np.testing.assert_array_equal(np.asarray(u["w"]), np.asarray(expected["w"]))
        with pytest.raises(ValueError, match="needs params"):
            wrapped.update(params, state)
    assert gradtx.kahan_summation(gradtx.adam(1e-2)).init(params).compensation["w"] is None
    with pytest.raises(TypeError, match="key must be a non-negative int seed"):
        gradtx.stochastic_rounding(gradtx.adam(1e-2), key=1.5)


@pytest.mark.parametrize("wrapper", [gradtx.kahan_summation, gradtx.stochastic_rounding], ids=["kahan", "sr"])
def test_a_params_tuple_of_two_leaves_is_a_tree_not_a_pair(wrapper):
    """A model that is a 2-tuple (a None and a bfloat16 scalar; two arrays) gets one update per leaf."""
    tx = wrapper(gradtx.sgd(0.5))
    for params in ((None, jnp.asarray(1.0, jnp.bfloat16)), (jnp.ones(2, jnp.bfloat16), jnp.ones(3, jnp.float32))):
        grads = jax.tree.map(jnp.ones_like, params)
        updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        assert jax.tree.structure(updates) == jax.tree.structure(grads)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert u.shape == p.shape and u.dtype == p.dtype
            np.testing.assert_allclose(np.asarray(u, np.float32), -0.5)
