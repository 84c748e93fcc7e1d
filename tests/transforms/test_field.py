"""The rest of the field: Lion, Rprop, RAdam, AdaBelief, Yogi, NovoGrad and gradient noise.

- Against NumPy loops written from the papers' equations (float64, rtol 1e-10): Lion (Chen et al.,
  2023, Program 1), Rprop (iRprop-, Igel & Huesken 2000), RAdam (Liu et al., 2020, Algorithm 2),
  AdaBelief (Zhuang et al., 2020, Algorithm 2), Yogi (Zaheer et al., 2018, Algorithm 2 with the
  authors' bias correction and initial v) and NovoGrad (Ginsburg et al., 2019, Algorithm 1).
- Against optax for the options the registry does not cover (Lion's modes, Nesterov RAdam and
  AdaBelief, NovoGrad's mu_dtype), and the two documented differences: optax's Rprop applies each
  step one update late, and optax's Yogi moves params with zero gradients.
- Gradient noise: its statistics (mean 0, variance eta / t^gamma, fresh per step and leaf), the key
  forms optax accepts, vmap over seeds, complex noise.
- Edges: zero gradients (eps = 0 included), the first update from init in closed form, bfloat16
  params keep bfloat16 updates, complex params, validation messages.

optax agreement of the defaults, jit/vmap/dtype/checkpoint contracts are the registry's
(tests/registry.py); torch.optim.RAdam and Rprop are in tests/test_optimizers_torch.py.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.common import assert_close, run

STEPS = 24
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def gradient_steps(dtype=np.float64, seed: int = 0, complex_: bool = False) -> dict:
    """Gradients for STEPS steps, stacked on a leading axis: large for 6 steps, then small, so that
    the signs flip (Rprop) and Yogi's v both grows and shrinks."""
    rng = np.random.default_rng(seed)
    size = np.where(np.arange(STEPS) < 6, 3.0, 0.5)

    def leaf(shape):
        g = rng.normal(size=(STEPS, *shape)) + 0.3  # a drift, so that signs also persist
        if complex_:
            g = g + 1j * rng.normal(size=(STEPS, *shape))
        return (g * size.reshape(-1, *([1] * len(shape)))).astype(dtype)

    return {k: leaf(s) for k, s in SHAPES.items()}


def params_like(grads: dict, value: float = 0.0) -> dict:
    rng = np.random.default_rng(1)
    return {k: jnp.asarray(value * rng.normal(size=g.shape[1:]), g.dtype) for k, g in grads.items()}


def _raises(error, message):
    return pytest.raises(error, match=re.escape(message))


# ---------------------------------------------------------------------------------------------------
# NumPy loops from the papers' equations: loop(list of gradient arrays, param array) -> list of updates


def lion_np(b1=0.9, b2=0.99, mode="hard", smooth_beta=1.0):
    sign = {"hard": np.sign, "smooth": lambda c: np.tanh(smooth_beta * c)}.get(
        mode, lambda c: np.where(np.abs(c) < 1, c, np.sign(c))
    )

    def loop(gs, w):
        m, out = 0.0, []
        for g in gs:
            c = b1 * m + (1 - b1) * g  # interpolate
            out.append(sign(c) if np.isrealobj(c) or mode != "hard" else c / np.abs(c))
            m = b2 * m + (1 - b2) * g  # then update the momentum
        return out

    return loop


def rprop_np(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0):
    def loop(gs, w):
        step, g_prev, out = np.full(gs[0].shape, learning_rate), np.zeros(gs[0].shape), []
        for g in gs:
            prod = g * g_prev
            step = np.where(
                prod > 0,
                np.minimum(step * eta_plus, max_step_size),
                np.where(prod < 0, np.maximum(step * eta_minus, min_step_size), step),
            )
            g = np.where(prod < 0, 0.0, g)  # iRprop-: after a sign change, no step and g forgotten
            out.append(step * np.sign(g))
            g_prev = g
        return out

    return loop


def radam_np(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, nesterov=False):
    def loop(gs, w):
        m, v, out = 0.0, 0.0, []
        rho_inf = 2 / (1 - b2) - 1
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * np.abs(g) ** 2
            m_hat = m / (1 - b1**t)
            if nesterov:
                m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
            if rho >= threshold:
                r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                out.append(r * m_hat / (np.sqrt(v / (1 - b2**t) + eps_root) + eps))
            else:
                out.append(m_hat)
        return out

    return loop


def belief_np(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
    def loop(gs, w):
        m, s, out = 0.0, 0.0, []
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            s = b2 * s + (1 - b2) * np.abs(g - m) ** 2 + eps_root
            m_hat = m / (1 - b1**t)
            if nesterov:
                m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            out.append(m_hat / (np.sqrt(s / (1 - b2**t)) + eps))
        return out

    return loop


def yogi_np(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6):
    def loop(gs, w):
        m, v, out = 0.0, np.full(gs[0].shape, initial_accumulator_value), []
        for k, g in enumerate(gs):
            t = k + 1
            m = b1 * m + (1 - b1) * g
            v = v - (1 - b2) * np.sign(v - np.abs(g) ** 2) * np.abs(g) ** 2
            out.append((m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t) + eps_root) + eps))
        return out

    return loop


def novograd_np(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0):
    def loop(gs, w):
        m, v, out = 0.0, 0.0, []
        for k, g in enumerate(gs):
            norm_sq = np.sum(np.abs(g) ** 2)  # one number for the whole layer (leaf)
            v = norm_sq if k == 0 else b2 * v + (1 - b2) * norm_sq
            m = b1 * m + (g / (np.sqrt(v + eps_root) + eps) + weight_decay * w)
            out.append(m)
        return out

    return loop


REFERENCE_CASES = [
    ("scale_by_lion", {}, lion_np),
    ("scale_by_lion", dict(b1=0.5, b2=0.9), lion_np),
    ("scale_by_lion", dict(mode="smooth", smooth_beta=2.0), lion_np),
    ("scale_by_lion", dict(mode="refined"), lion_np),
    ("scale_by_rprop", dict(learning_rate=0.01), rprop_np),
    ("scale_by_rprop", dict(learning_rate=0.5, eta_minus=0.3, eta_plus=1.5, min_step_size=0.1, max_step_size=1.0),
     rprop_np),
    ("scale_by_radam", {}, radam_np),
    ("scale_by_radam", dict(b2=0.9, eps=1e-4, eps_root=1e-8, nesterov=True), radam_np),
    ("scale_by_radam", dict(b1=0.5, b2=0.99, threshold=4.0), radam_np),
    ("scale_by_belief", {}, belief_np),
    ("scale_by_belief", dict(b1=0.8, b2=0.99, eps=1e-8, eps_root=0.0, nesterov=True), belief_np),
    ("scale_by_yogi", {}, yogi_np),
    ("scale_by_yogi", dict(b1=0.5, b2=0.9, eps=1e-6, eps_root=1e-8, initial_accumulator_value=0.5), yogi_np),
    ("scale_by_novograd", {}, novograd_np),
    ("scale_by_novograd", dict(b1=0.5, b2=0.9, eps=1e-4, eps_root=1e-6, weight_decay=0.1), novograd_np),
]  # fmt: skip


def _id(case) -> str:
    name, kwargs, _ = case
    return f"{name}({','.join(f'{k}={v}' for k, v in kwargs.items())})"


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=map(_id, REFERENCE_CASES))
def test_matches_numpy_loop_of_the_paper(case):
    name, kwargs, reference = case
    grads = gradient_steps()
    params = params_like(grads, 1.0)  # NovoGrad's weight decay reads them
    ours, _ = run(getattr(gradtx, name)(**kwargs), grads, params)
    loop = reference(**kwargs)
    want = {k: np.stack(loop(list(g), np.asarray(params[k]))) for k, g in grads.items()}
    assert_close(ours, want, rtol=1e-10, atol=1e-13)


def test_the_references_exercise_both_branches():
    """The loops above mean something only if Rprop's signs both persist and flip, RAdam's rho_t
    crosses the threshold, and Yogi's v both grows and shrinks."""
    g = gradient_steps()["w"]
    flips = np.sign(g[1:]) * np.sign(g[:-1])
    assert (flips > 0).any() and (flips < 0).any()
    rho = [2 / 0.001 - 1 - 2 * t * 0.999**t / (1 - 0.999**t) for t in range(1, STEPS + 1)]
    assert min(rho) < 5 < max(rho)
    v, moves = 1e-6, set()
    for x in g:
        moves.add(float(np.sign(v - x[0, 0] ** 2)))
        v = v - 0.001 * np.sign(v - x[0, 0] ** 2) * x[0, 0] ** 2
    assert moves == {-1.0, 1.0}


def test_complex_params_lion_and_novograd():
    """Lion's sign of a complex c is c / |c|; NovoGrad's norm is sum |g|^2; first moments stay complex
    with a real accumulator_dtype."""
    grads = gradient_steps(np.complex64, complex_=True)
    reference = jax.tree.map(lambda g: g.astype(np.complex128), grads)
    for tx, loop in [
        (gradtx.scale_by_lion(accumulator_dtype=jnp.float32), lion_np()),
        (gradtx.scale_by_novograd(mu_dtype=jnp.float32), novograd_np()),
    ]:
        ours, state = run(tx, grads)
        assert all(u.dtype == jnp.complex64 for u in jax.tree.leaves(ours))
        assert all(m.dtype == jnp.complex64 for m in jax.tree.leaves(state.mu))
        want = {k: np.stack(loop(list(g), 0.0)) for k, g in reference.items()}
        assert_close(ours, want, rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------------------
# optax: the options the registry leaves out, and the documented differences


OPTAX_CASES = [
    ("scale_by_lion", dict(mode="smooth", smooth_beta=3.0)),
    ("scale_by_lion", dict(mode="refined")),
    ("scale_by_radam", dict(nesterov=True, b2=0.99)),
    ("scale_by_belief", dict(nesterov=True)),
    ("scale_by_novograd", dict(b1=0.5, eps_root=1e-6, weight_decay=0.1)),  # optax's mu_dtype fails to trace
]


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[_id((n, k, None)) for n, k in OPTAX_CASES])
def test_matches_optax(case):
    name, kwargs = case
    grads = gradient_steps(np.float32)
    params = params_like(grads, 1.0)
    ours, _ = run(getattr(gradtx, name)(**kwargs), grads, params)
    theirs, _ = run(getattr(optax, name)(**kwargs), grads, params, standard=True)
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(ours))
    assert_close(ours, theirs, rtol=2e-5, atol=1e-6)


def test_optax_rprop_applies_each_step_one_update_late():
    """optax's scale_by_rprop keeps the same state as gradtx's but returns the previous step's
    update (zeroed where the sign flips now): its first update is 0. gradtx and torch apply the step
    of the current gradient (torch agrees in tests/test_optimizers_torch.py)."""
    grads = gradient_steps(np.float32)
    ours, our_state = run(gradtx.scale_by_rprop(0.01), grads)
    theirs, their_state = run(optax.scale_by_rprop(0.01), grads, standard=True)
    assert_close(our_state.step_sizes, their_state.step_sizes, rtol=1e-6)
    assert_close(our_state.prev_updates, their_state.prev_updates, rtol=1e-6)
    for k, g in grads.items():
        ours_k, theirs_k = np.asarray(ours[k]), np.asarray(theirs[k])
        flip_next = np.sign(g[1:]) * np.sign(ours_k[:-1]) < 0
        np.testing.assert_array_equal(theirs_k[0], 0.0)
        np.testing.assert_allclose(theirs_k[1:], np.where(flip_next, 0.0, ours_k[:-1]), rtol=1e-6, err_msg=k)
        assert not np.allclose(theirs_k, ours_k)


def test_yogi_starts_m_at_zero_where_optax_moves_params_without_gradients():
    params = {"w": jnp.ones(3, jnp.float32)}
    zeros = {"w": jnp.zeros(3, jnp.float32)}
    ours, _ = gradtx.scale_by_yogi().update(zeros, gradtx.scale_by_yogi().init(params))
    with jax.numpy_dtype_promotion("standard"):
        theirs, _ = optax.scale_by_yogi().update(zeros, optax.scale_by_yogi().init(params))
    np.testing.assert_array_equal(np.asarray(ours["w"]), 0.0)
    assert np.all(np.asarray(theirs["w"]) > 1e-5)  # 0.9e-6 / (1 - 0.9) / (sqrt(1e-3) + 1e-3)


# ---------------------------------------------------------------------------------------------------
# Gradient noise


def test_noise_has_the_annealed_variance_and_is_fresh_per_step_and_leaf():
    eta, gamma = 0.5, 0.55
    tx = gradtx.add_noise(eta, gamma, key=7)
    zeros = {"a": jnp.zeros(20_000, jnp.float64), "b": jnp.zeros(20_000, jnp.float64)}
    state, draws = tx.init(zeros), []
    for t in (1, 2, 3):
        u, state = tx.update(zeros, state)
        for leaf in u.values():
            x = np.asarray(leaf)
            sigma = np.sqrt(eta / t**gamma)
            assert abs(x.mean()) < 4 * sigma / np.sqrt(x.size)
            assert abs(x.std() / sigma - 1) < 0.03, (t, x.std(), sigma)
            draws.append(x / sigma)
    correlations = np.corrcoef(np.stack(draws))[np.triu_indices(len(draws), 1)]
    assert np.max(np.abs(correlations)) < 0.05  # six draws (3 steps x 2 leaves), none repeated
    assert int(state.count) == 3 and state.rng_key.dtype == jnp.uint32


def test_noise_key_forms():
    """A seed, a typed key, a raw key and optax's older `seed` name give the same noise; the
    transformation is equal, hashable and its repr rebuilds it."""
    grads = {"w": jnp.zeros(5, jnp.float32)}

    def first(tx):
        return np.asarray(tx.update(grads, tx.init(grads))[0]["w"])

    by_seed = gradtx.add_noise(0.1, 0.55, 3)
    assert gradtx.add_noise(0.1, 0.55, seed=3) == by_seed
    assert gradtx.add_noise(0.1, 0.55, np.int64(3)) == by_seed
    for key in (jax.random.key(3), jax.random.PRNGKey(3)):
        tx = gradtx.add_noise(0.1, 0.55, key)
        assert tx == gradtx.add_noise(0.1, 0.55, key) and hash(tx) == hash(gradtx.add_noise(0.1, 0.55, key))
        assert eval(repr(tx), {"add_noise": gradtx.add_noise}) == tx
        np.testing.assert_array_equal(first(tx), first(by_seed))
    assert not np.array_equal(first(by_seed), first(gradtx.add_noise(0.1, 0.55, 4)))
    assert gradtx.add_noise(0.1, 0.55) == gradtx.add_noise(0.1, 0.55, 0)  # optax warns and uses 0
    with _raises(TypeError, "add_noise: pass key or its older name seed, not both"):
        gradtx.add_noise(0.1, 0.55, 1, seed=2)
    with _raises(TypeError, "add_noise: key must be an int seed or a PRNG key, got 0.5"):
        gradtx.add_noise(0.1, 0.55, 0.5)
    with _raises(ValueError, "add_noise: eta must be in [0, inf), got -1.0"):
        gradtx.add_noise(-1.0, 0.55)


def test_noise_vmaps_over_seeds():
    grads = {"w": jnp.zeros(4, jnp.float32)}

    def noise(seed):
        tx = gradtx.noisy_sgd(1.0, eta=1.0, key=seed)
        return tx.update(grads, tx.init(grads))[0]["w"]

    batched = jax.vmap(noise)(jnp.arange(3))
    for seed in range(3):
        np.testing.assert_array_equal(np.asarray(batched[seed]), np.asarray(noise(seed)))
    assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[1]))


def test_complex_noise_splits_its_variance_between_real_and_imaginary_parts():
    tx = gradtx.add_noise(2.0, 0.0)
    zeros = {"z": jnp.zeros(40_000, jnp.complex64)}
    u, _ = tx.update(zeros, tx.init(zeros))
    z = np.asarray(u["z"])
    assert z.dtype == np.complex64
    for part in (z.real, z.imag):
        assert abs(part.std() / np.sqrt(1.0) - 1) < 0.03  # sigma^2 / 2 = 1 each


# ---------------------------------------------------------------------------------------------------
# Edges: the first update, zero gradients, bfloat16, validation


def test_first_update_from_init_in_closed_form():
    g = {"w": jnp.asarray([2.0, -0.5, 1e-3, -7.0], jnp.float64)}
    p = {"w": jnp.asarray([1.0, 2.0, -1.0, 0.5], jnp.float64)}
    x, w = np.asarray(g["w"]), np.asarray(p["w"])
    norm = np.sqrt(np.sum(x**2))
    expected = {
        "lion": (gradtx.scale_by_lion(), np.sign(x)),  # sign((1 - b1) g)
        "rprop": (gradtx.scale_by_rprop(0.01), 0.01 * np.sign(x)),
        "radam": (gradtx.scale_by_radam(), x),  # rho_1 = 1 < 5: u = m^ = g
        "belief": (gradtx.scale_by_belief(eps=0.0, eps_root=0.0), np.sign(x) / 0.9),  # s^ = b1^2 g^2
        "yogi": (gradtx.scale_by_yogi(initial_accumulator_value=0.0, eps=0.0), np.sign(x)),  # v^ = g^2
        "novograd": (gradtx.scale_by_novograd(eps=0.0, weight_decay=0.1), x / norm + 0.1 * w),
    }
    for name, (tx, want) in expected.items():
        u, state = tx.update(g, tx.init(p), p)
        np.testing.assert_allclose(np.asarray(u["w"]), want, rtol=1e-12, err_msg=name)
    state = gradtx.scale_by_novograd().init(p)
    assert state.nu["w"].shape == () and state.nu["w"].dtype == jnp.float64  # one number per leaf


ZERO_CASES = [
    gradtx.scale_by_lion(mode="smooth"),
    gradtx.scale_by_rprop(1.0, min_step_size=0.0),
    gradtx.scale_by_radam(b2=0.9, threshold=4.0),
    gradtx.scale_by_belief(eps=0.0),
    gradtx.scale_by_belief(eps_root=0.0),
    gradtx.scale_by_yogi(initial_accumulator_value=0.0, eps_root=1e-8),
    gradtx.scale_by_novograd(eps=0.0, eps_root=0.0),
]


@pytest.mark.parametrize("tx", ZERO_CASES, ids=[repr(tx)[:60] for tx in ZERO_CASES])
def test_zero_gradients_give_zero_finite_updates(tx):
    params = {"w": jnp.ones((2, 3), jnp.float32), "s": jnp.ones((), jnp.float64)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(8):  # RAdam with b2 = 0.9 is rectified from t = 5
        updates, state = step(zeros, state, params)
        for leaf in jax.tree.leaves((updates, state)):
            assert np.all(np.isfinite(np.asarray(leaf)))
        for leaf in jax.tree.leaves(updates):
            assert not np.any(np.asarray(leaf))


def test_novograd_with_zero_eps_has_finite_gradients_through_update():
    tx = gradtx.scale_by_novograd(eps=0.0, eps_root=0.0)
    params = {"a": jnp.zeros(3, jnp.float64), "b": jnp.zeros(2, jnp.float64)}

    def f(g):
        return sum(jnp.sum(u) for u in jax.tree.leaves(tx.update(g, tx.init(params), params)[0]))

    grad = jax.grad(f)({"a": jnp.asarray([0.0, 1.0, -2.0]), "b": jnp.zeros(2)})
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(grad))


# (optimizer, dtype of its first moment): the params' bfloat16 unless an accumulator_dtype says otherwise
BF16_CASES = [
    (gradtx.lion(1e-3, mu_dtype=jnp.float32), jnp.float32),
    (gradtx.rprop(1e-3), None),
    (gradtx.radam(1e-3, accumulator_dtype=jnp.float32), jnp.float32),
    (gradtx.adabelief(1e-3), jnp.bfloat16),
    (gradtx.yogi(1e-2), jnp.bfloat16),
    (gradtx.novograd(1e-2, weight_decay=1e-3), jnp.bfloat16),
    (gradtx.noisy_sgd(1e-2), None),
    (gradtx.signum(1e-3, accumulator_dtype=jnp.float32), jnp.float32),
]


@pytest.mark.parametrize("tx, first_moment", BF16_CASES, ids=[repr(c[0])[6:40] for c in BF16_CASES])
def test_bf16_params_keep_bf16_updates_and_float32_statistics(tx, first_moment):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.float32).reshape(2, 3).astype(jnp.bfloat16)}
    state = tx.init(params)
    dtypes = jax.tree.map(lambda x: x.dtype, state)
    for k in range(2):
        grads = {"w": (jnp.arange(6, dtype=jnp.float32).reshape(2, 3) - 2.5 + k).astype(jnp.bfloat16)}
        updates, state = tx.update(grads, state, params)
        assert updates["w"].dtype == jnp.bfloat16
        assert jax.tree.map(lambda x: x.dtype, state) == dtypes
        assert np.all(np.isfinite(np.asarray(updates["w"], np.float32)))
        params = gradtx.apply_updates(params, updates)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        names = {getattr(k, "name", None) for k in path}
        if names & {"nu", "step_sizes"}:  # second moments and step sizes: real and at least float32
            assert leaf.dtype == jnp.float32, (jax.tree_util.keystr(path), leaf.dtype)
        if names & {"mu", "ema"}:
            assert leaf.dtype == first_moment, (jax.tree_util.keystr(path), leaf.dtype)


def test_validation_messages():
    with _raises(ValueError, "scale_by_lion: b2 must be in [0, 1), got 1.0"):
        gradtx.scale_by_lion(b2=1.0)
    with _raises(ValueError, "scale_by_lion: mode must be one of ('hard', 'smooth', 'refined'), got 'soft'"):
        gradtx.scale_by_lion(mode="soft")
    with _raises(TypeError, "lion: pass accumulator_dtype or its alias mu_dtype, not both"):
        gradtx.lion(1e-3, mu_dtype=jnp.float32, accumulator_dtype=jnp.float32)
    with _raises(ValueError, "radam: threshold must be in [4, inf), got 3.0"):
        gradtx.radam(1e-3, threshold=3.0)
    with _raises(ValueError, "adabelief: eps must be in [0, inf), got -1e-16"):
        gradtx.adabelief(1e-3, eps=-1e-16)
    with _raises(ValueError, "scale_by_yogi: initial_accumulator_value must be in [0, inf), got -1e-06"):
        gradtx.scale_by_yogi(initial_accumulator_value=-1e-6)
    with _raises(ValueError, "novograd: weight_decay must be in [0, inf), got -0.1"):
        gradtx.novograd(1e-2, weight_decay=-0.1)
    with _raises(ValueError, "scale_by_novograd: update needs params, got None"):
        tx = gradtx.scale_by_novograd(weight_decay=0.1)
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
    with _raises(ValueError, "rprop: eta_minus must be in (0, 1], got 1.5"):
        gradtx.rprop(1e-3, eta_minus=1.5)
    with _raises(ValueError, "rprop: min_step_size must be <= max_step_size, got 1.0 > 0.5"):
        gradtx.rprop(1e-3, min_step_size=1.0, max_step_size=0.5)
    with _raises(TypeError, "scale_by_rprop: complex params have no sign to keep or flip"):
        gradtx.rprop(1e-3).init({"z": jnp.zeros(2, jnp.complex64)})
    for name in ("lion", "radam", "adabelief", "yogi", "novograd", "noisy_sgd", "sign_sgd", "signum", "rprop"):
        with _raises(ValueError, f"{name}: learning_rate must be in [0, inf), got -0.1"):
            getattr(gradtx, name)(-0.1)


def test_optimizers_are_the_documented_chains():
    tx = gradtx.lion(1e-3, weight_decay=0.1)
    assert tx == gradtx.chain(
        gradtx.scale_by_lion(), gradtx.add_decayed_weights(0.1), gradtx.scale_by_learning_rate(1e-3)
    )
    assert gradtx.rprop(0.1) == gradtx.chain(gradtx.scale_by_rprop(0.1), gradtx.scale(-1.0))
    assert gradtx.sign_sgd(0.1) == gradtx.chain(gradtx.scale_by_sign(), gradtx.scale_by_learning_rate(0.1))
    assert gradtx.signum(0.1, 0.8) == gradtx.chain(
        gradtx.ema(0.8, debias=False), gradtx.scale_by_sign(), gradtx.scale_by_learning_rate(0.1)
    )
    assert gradtx.noisy_sgd(0.1, key=2) == gradtx.chain(
        gradtx.add_noise(0.01, 0.55, 2), gradtx.scale_by_learning_rate(0.1)
    )
    assert gradtx.novograd(0.1).hyperparams.args[0] == gradtx.scale_by_novograd(eps=1e-6)
