"""add_decayed_weights against a NumPy loop and optax (constant, schedule, masks); params checks,
None leaves, dtypes and validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.transforms.regularization import AddDecayedWeightsState

STEPS = 30
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}
LR = 0.1  # params move by -LR * u, so the decay term sees a changing model


def decay_ramp(count: jax.Array) -> jax.Array:
    """A weight-decay schedule written here."""
    return 0.1 / (1.0 + 0.2 * count.astype(jnp.float64))


def decay_ramp_np(k: int) -> float:
    return 0.1 / (1.0 + 0.2 * k)


def not_bias(params: dict) -> dict:
    """A callable mask: decay everything but "b"."""
    return {k: k != "b" for k in params}


def problem(dtype=np.float64, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    grads = {k: rng.normal(size=(STEPS, *s)).astype(dtype) for k, s in SHAPES.items()}
    return params, grads


def run(tx, params: dict, grads: dict, standard: bool = False) -> tuple[dict, dict]:
    """tx's updates and the params after each step, params <- params - LR u, one compiled scan."""

    def scan(p0, gs):
        def step(carry, g):
            p, state = carry
            u, state = tx.update(g, state, p)
            p = jax.tree.map(lambda x, y: (x - LR * y).astype(x.dtype), p, u)  # optax may promote u
            return (p, state), (u, p)

        return jax.lax.scan(step, (p0, tx.init(p0)), gs)[1]

    args = jax.tree.map(jnp.asarray, (params, grads))
    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(*args)
    return jax.jit(scan)(*args)


def add_decayed_weights_np(params: dict, grads: dict, lam, mask: dict) -> tuple[dict, dict]:
    """u = g + lambda W on the masked leaves, u = g elsewhere; W <- W - LR u."""
    us: dict[str, list] = {k: [] for k in params}
    ps: dict[str, list] = {k: [] for k in params}
    p = dict(params)
    for k in range(STEPS):
        for name in params:
            u = grads[name][k] + lam(k) * p[name] if mask[name] else grads[name][k]
            p[name] = p[name] - LR * u
            us[name].append(u)
            ps[name].append(p[name])
    return {k: np.stack(v) for k, v in us.items()}, {k: np.stack(v) for k, v in ps.items()}


def assert_close(ours: dict, reference: dict, rtol: float, atol: float = 0.0) -> None:
    for key in reference:
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol, atol, err_msg=key)


ALL = {"w": True, "b": True, "s": True}
NOT_B = {"w": True, "b": False, "s": True}


@pytest.mark.parametrize(
    "weight_decay, lam, mask, mask_np",
    [
        (0.05, lambda k: 0.05, None, ALL),
        (decay_ramp, decay_ramp_np, None, ALL),
        (0.05, lambda k: 0.05, NOT_B, NOT_B),
        (decay_ramp, decay_ramp_np, not_bias, NOT_B),
    ],
    ids=["constant", "schedule", "mask-tree", "mask-callable-schedule"],
)
def test_matches_numpy(weight_decay, lam, mask, mask_np):
    params, grads = problem()
    us, ps = run(gradtx.add_decayed_weights(weight_decay, mask), params, grads)
    us_np, ps_np = add_decayed_weights_np(params, grads, lam, mask_np)
    assert_close(us, us_np, 1e-12, 1e-14)
    assert_close(ps, ps_np, 1e-12, 1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.add_decayed_weights(0.05),
        lambda m: m.add_decayed_weights(decay_ramp),
        lambda m: m.add_decayed_weights(0.05, NOT_B),
        lambda m: m.add_decayed_weights(decay_ramp, not_bias),
    ],
    ids=["constant", "schedule", "mask-tree", "mask-callable-schedule"],
)
def test_matches_optax(make):
    params, grads = problem(np.float32)
    us, ps = run(make(gradtx), params, grads)
    assert all(u.dtype == jnp.float32 for u in us.values())
    us_ref, ps_ref = run(make(optax), params, grads, standard=True)
    assert_close(us, us_ref, 1e-5, 1e-6)
    assert_close(ps, ps_ref, 1e-5, 1e-6)


def test_state_is_empty_or_a_count_as_optax():
    params = {"w": jnp.ones(3, jnp.float32)}
    assert gradtx.add_decayed_weights(0.1).init(params) == gradtx.EmptyState()
    tx = gradtx.add_decayed_weights(decay_ramp)
    state = tx.init(params)
    assert isinstance(state, AddDecayedWeightsState) and state.count.dtype == jnp.int32
    for _ in range(3):
        _, state = tx.update(params, state, params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.add_decayed_weights(decay_ramp)
        their_state = theirs.init(params)
        for _ in range(3):
            _, their_state = theirs.update(params, their_state, params)
    assert state._fields == their_state._fields and int(state.count) == int(their_state.count) == 3


def test_mask_may_be_a_prefix_and_masked_leaves_are_unchanged():
    dense = {"w": jnp.ones((2, 2), jnp.float32), "b": jnp.ones(2, jnp.float32)}
    params = {"dense": dense, "norm": jnp.ones(2, jnp.float32)}
    grads = jax.tree.map(lambda p: 2 * p, params)
    tx = gradtx.add_decayed_weights(0.5, mask={"dense": True, "norm": False})
    u, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(u["norm"], grads["norm"])
    np.testing.assert_allclose(u["dense"]["w"], 2.5 * np.ones((2, 2)))
    np.testing.assert_allclose(u["dense"]["b"], 2.5 * np.ones(2))


def test_params_are_required():
    tx = gradtx.add_decayed_weights(0.1)
    g = {"w": jnp.ones(3, jnp.float32)}
    with pytest.raises(ValueError, match=r"add_decayed_weights: update needs params, got None"):
        tx.update(g, tx.init(g))


def test_validation_and_mask_errors():
    with pytest.raises(ValueError) as e:
        gradtx.add_decayed_weights(-0.1)
    assert str(e.value) == "add_decayed_weights: weight_decay must be in [0, inf), got -0.1"
    with pytest.raises(TypeError, match="add_decayed_weights: mask leaves must be Python bools"):
        gradtx.add_decayed_weights(0.1, mask={"w": 1.0})
    tx = gradtx.add_decayed_weights(0.1, mask={"w": True, "extra": False})
    params = {"w": jnp.ones(3, jnp.float32)}
    with pytest.raises(ValueError, match="mask must be a tree of bools with the params' structure"):
        tx.update(params, tx.init(params), params)


def test_none_leaves_bf16_and_zero_decay():
    params = {"w": jnp.full(3, 2.0, jnp.bfloat16), "frozen": jnp.ones(2, jnp.bfloat16), "empty": None}
    grads = {"w": jnp.ones(3, jnp.bfloat16), "frozen": None, "empty": None}  # no grad for a frozen leaf
    tx = gradtx.add_decayed_weights(0.25)
    u, state = jax.jit(tx.update)(grads, tx.init(params), params)
    assert u["frozen"] is None and u["empty"] is None and state == gradtx.EmptyState()
    assert u["w"].dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(u["w"], np.float32), 1.5)
    # As optax: a zero constant adds nothing, even where params are not finite.
    inf = {"w": jnp.full(2, jnp.inf, jnp.float32)}
    g = {"w": jnp.ones(2, jnp.float32)}
    np.testing.assert_array_equal(gradtx.add_decayed_weights().update(g, gradtx.EmptyState(), inf)[0]["w"], 1.0)


def test_weight_decay_may_be_traced_under_vmap():
    p = {"w": jnp.ones(2, jnp.float32)}
    out = jax.vmap(lambda lam: gradtx.add_decayed_weights(lam).update(p, gradtx.EmptyState(), p)[0]["w"])(
        jnp.array([0.0, 0.5], jnp.float32)
    )
    np.testing.assert_allclose(out, [[1.0, 1.0], [1.5, 1.5]])
