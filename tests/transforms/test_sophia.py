"""Sophia against optax.contrib 0.2.8 and against the authors' SophiaG (`sophia-opt` 0.2.2), in float64.

The problem: a small two-layer tanh regression (a kernel, a bias, an output kernel, a scalar), whose
Hessian has curvature of both signs, moved by its own updates for 32 steps. Hutchinson's estimate
reads `obj_fn=` (the loss of the params) at every update.

- optax.contrib's `sophia` / `scale_by_sophia` / `hutchinson_estimator_diag_hessian` (rtol 1e-9;
  measured max elementwise relative error 2e-13, params and state): the defaults, no clipping with a mask on the weight
  decay, a seeded estimator; the probes and the keys are optax's bit for bit (the same key). The
  float32 rule: gradtx's float32 run no farther from optax's float64 one than optax's float32 run.
- The authors' SophiaG (torch, float64, rtol 1e-10; measured max elementwise relative error 1.2e-12): the
  Hessian estimate fed identically, the square of a "sampled-label" gradient given to both (their
  `update_hessian()` after steps 0, k, 2k, ...; gradtx's estimator reads it as `hessian_grad=`), with
  gamma = rho * bs, eps = 1e-15 and bias_correction=False; both clipped and unclipped coordinates
  occur (checked).
- Hutchinson's estimate is the diagonal where the Hessian is diagonal; convergence on the
  ill-conditioned quadratic and Rosenbrock with Hutchinson's estimate.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close

jax.config.update("jax_enable_x64", True)
optax = pytest.importorskip("optax")

STEPS = 32
RNG = np.random.default_rng(11)
X = RNG.normal(size=(6, 3))
Y = RNG.normal(size=(6, 2))


def model(dtype: Any = jnp.float64) -> dict:
    rng = np.random.default_rng(3)
    return {
        "w": jnp.asarray(rng.normal(size=(3, 4)), dtype),
        "b": jnp.asarray(rng.normal(size=(4,)) * 0.1, dtype),
        "v": jnp.asarray(rng.normal(size=(4, 2)), dtype),
        "s": jnp.asarray(0.7, dtype),
    }


def loss(p: dict, y: Any = Y) -> jax.Array:
    x, y = jnp.asarray(X, p["w"].dtype), jnp.asarray(y, p["w"].dtype)
    out = jnp.tanh(x @ p["w"] + p["b"]) @ p["v"] * p["s"]
    return 0.5 * jnp.sum((out - y) ** 2) + 0.1 * jnp.sum(jnp.cos(p["w"]))


def run(tx: Any, params: dict) -> tuple:
    """(params at each step, final state): p <- p + u, g = grad loss(p), obj_fn = loss, in one scan."""

    def step(carry: Any, _: Any) -> Any:
        p, state = carry
        u, state = tx.update(jax.grad(loss)(p), state, p, obj_fn=loss)
        p = jax.tree.map(lambda x, v: x + v, p, u)
        return (p, state), p

    (_, state), ps = jax.lax.scan(step, (params, tx.init(params)), None, length=STEPS)
    return ps, state


OPTAX_CASES = {
    "sophia": lambda m, c: c.sophia(0.05, update_interval=3),
    "sophia-no-clip-mask": lambda m, c: c.sophia(
        0.02, b2=0.9, eps=0.5, gamma=2.0, clip_threshold=None, update_interval=2, weight_decay=0.1,
        weight_decay_mask={"w": True, "b": False, "v": True, "s": False},
        hessian_diagonal_fn=c.hutchinson_estimator_diag_hessian(random_seed=jax.random.PRNGKey(5)),
    ),
    # optax keeps scale_by_sophia in optax.contrib._sophia (not exported)
    "scale_by_sophia": lambda m, c: m.chain(
        (c if c is gradtx else optax.contrib._sophia).scale_by_sophia(
            b1=0.9, gamma=1.0, clip_threshold=0.5, update_interval=1
        ),
        m.scale(-0.02),
    ),
}  # fmt: skip


@functools.cache
def _both(name: str, dtype: Any) -> tuple:
    ours = jax.jit(lambda p: run(OPTAX_CASES[name](gradtx, gradtx), p))(model(dtype))
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        theirs = jax.jit(lambda p: run(OPTAX_CASES[name](optax, optax.contrib), p))(model(dtype))
    return ours, theirs


@pytest.mark.parametrize("name", list(OPTAX_CASES))
def test_matches_optax_contrib_in_float64(name):
    (ours, our_state), (theirs, their_state) = _both(name, jnp.float64)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-12, what=f"{name} params")
    leaves = lambda s: [x for x in jax.tree.leaves(s)]
    for a, b in zip(leaves(our_state), leaves(their_state), strict=True):
        if jnp.issubdtype(a.dtype, jnp.integer):  # the step count and the estimator's key: exact
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        else:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_float32_no_less_accurate_than_optax():
    from tests.test_optax_reference import assert_float32_no_less_accurate

    (ours32, _), (theirs32, _) = _both("sophia-no-clip-mask", jnp.float32)
    (_, _), (truth64, _) = _both("sophia-no-clip-mask", jnp.float64)
    assert_float32_no_less_accurate(ours32, theirs32, truth64, "sophia")


def test_hutchinson_probes_and_keys_are_optaxs_bit_for_bit():
    params = model()

    def estimates(c: Any, seed: Any) -> list:
        tx = c.hutchinson_estimator_diag_hessian(random_seed=seed)
        state, out = tx.init(params), []
        for _ in range(3):
            h, state = tx.update(params, state, params, obj_fn=loss)
            out.append((h, state.key))
        return out

    seed = jax.random.PRNGKey(7)
    ours = jax.jit(lambda: estimates(gradtx, seed))()
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.jit(lambda: estimates(optax.contrib, seed))()
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # No seed: both start from jax.random.PRNGKey(0) (the sophia cases above run from it).
    np.testing.assert_array_equal(
        gradtx.hutchinson_estimator_diag_hessian().init(params).key,
        optax.contrib.hutchinson_estimator_diag_hessian().init(params).key,
    )


def test_hutchinson_estimate_is_the_diagonal_where_the_hessian_is_diagonal():
    """z * (H z) = z^2 diag(H) = diag(H) for every probe when H is diagonal (a separable loss): the
    estimate is the diagonal's (E[z_i z_j] = 0 removes the rest in general), not H z or its sign."""
    params = {"w": jnp.asarray(X[:3, :2]), "s": jnp.asarray(0.3)}
    f = lambda p: jnp.sum(p["w"] ** 4 + jnp.sin(p["w"])) + jnp.cos(p["s"])
    diag = {"w": 12 * params["w"] ** 2 - jnp.sin(params["w"]), "s": -jnp.cos(params["s"])}
    tx = gradtx.hutchinson_estimator_diag_hessian(random_seed=1)
    h, state = jax.jit(lambda p: tx.update(p, tx.init(p), p, obj_fn=f))(params)
    assert_trees_all_close(h, diag, rtol=1e-12, atol=1e-14, what="z * (H z)")
    assert not np.array_equal(state.key, tx.init(params).key), "the state's key moves on"


# ---------------------------------------------------------------------------------------------------
# The authors' SophiaG


def _squared_hessian_grad_init(params: Any) -> Any:
    return gradtx.EmptyState()


def _squared_hessian_grad_update(updates: Any, state: Any, params: Any = None, *, hessian_grad: Any, **extra: Any):
    """Sophia-G's estimate as the authors compute it: the square of the gradient of sampled labels."""
    return jax.tree.map(lambda x: x * x, hessian_grad), state


SQUARED = gradtx.GradientTransformationExtraArgs(_squared_hessian_grad_init, _squared_hessian_grad_update)
LR, BETAS, RHO, BS, WD, K = 0.05, (0.9, 0.9), 0.04, 50, 0.1, 3


def _sampled_labels(k: int) -> np.ndarray:
    return Y + 0.5 * np.random.default_rng(100 + k).normal(size=Y.shape)


def test_clipping_rule_is_the_authors_sophiag_with_the_hessian_fed_identically():
    torch = pytest.importorskip("torch")
    sophia_opt = pytest.importorskip("sophia_opt")
    grad = jax.jit(jax.grad(loss))
    tx = gradtx.sophia(
        LR, *BETAS, eps=1e-15, weight_decay=WD, gamma=RHO * BS, update_interval=K,
        hessian_diagonal_fn=SQUARED, bias_correction=False,
    )  # fmt: skip
    step = jax.jit(lambda p, s, g, hg: tx.update(g, s, p, hessian_grad=hg))
    p, state, ours, ratios = model(), tx.init(model()), [], []
    for k in range(STEPS):
        g, hg = grad(p), grad(p, _sampled_labels(k))  # hg: the estimate's input, given each step, read at 0, K, ...
        m = jax.tree.map(lambda mu, g: BETAS[0] * mu + (1 - BETAS[0]) * g, state[0].mu, g)
        ratios += [np.abs(np.asarray(a)) / (RHO * BS * np.asarray(h) + 1e-15) for a, h in zip(
            jax.tree.leaves(m), jax.tree.leaves(state[0].nu), strict=True)]  # fmt: skip
        u, state = step(p, state, g, hg)
        p = gradtx.apply_updates(p, u)
        ours.append(p)

    names = list(model())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = [torch.tensor(np.asarray(model()[n]), requires_grad=True) for n in names]
        opt = sophia_opt.SophiaG(tensors, lr=LR, betas=BETAS, rho=RHO, weight_decay=WD)
        as_tree = lambda: {n: jnp.asarray(t.detach().numpy().copy()) for n, t in zip(names, tensors, strict=True)}
        theirs = []
        for k in range(STEPS):
            current = as_tree()
            g = grad(current)
            for n, t in zip(names, tensors, strict=True):
                t.grad = torch.tensor(np.asarray(g[n]))
            opt.step(bs=BS)
            if k % K == 0:  # the authors' loop refreshes h after a step, from the sampled labels' gradient
                hg = grad(current, _sampled_labels(k))
                for n, t in zip(names, tensors, strict=True):
                    t.grad = torch.tensor(np.asarray(hg[n]))
                opt.update_hessian()
            theirs.append(as_tree())
    finally:
        torch.set_default_dtype(default)
    # Measured max elementwise relative error 1.2e-12 (their gamma h + 1e-15 against max(gamma h, 1e-15)).
    assert_trees_all_close(ours, theirs, rtol=1e-10, atol=1e-13, what="SophiaG")
    kept = np.concatenate([r.ravel() for r in ratios[1:]])  # step 0: h = 0, every coordinate clipped
    assert 0.1 < np.mean(kept < 1) < 0.9, "both clipped and unclipped coordinates should occur"


# ---------------------------------------------------------------------------------------------------
# Convergence


@pytest.mark.parametrize(
    "f, w0, lr, steps, atol",
    [
        (lambda w: (w[0] - 1) ** 2 + 100 * (w[1] - 1) ** 2, [-1.0, -1.0], 0.05, 2_000, 1e-2),
        (lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2, [-1.2, 1.0], 0.02, 20_000, 5e-2),
    ],
    ids=["quadratic", "rosenbrock"],
)
def test_converges_with_hutchinsons_estimate(f, w0, lr, steps, atol):
    tx = gradtx.sophia(gradtx.cosine_decay_schedule(lr, steps), weight_decay=0.0, gamma=0.05, update_interval=1)

    @jax.jit
    def minimize(w):
        def step(carry, _):
            w, state = carry
            u, state = tx.update(jax.grad(f)(w), state, w, obj_fn=f)
            return (gradtx.apply_updates(w, u), state), None

        return jax.lax.scan(step, (w, tx.init(w)), None, length=steps)[0][0]

    np.testing.assert_allclose(minimize(jnp.asarray(w0, jnp.float64)), [1.0, 1.0], atol=atol)
