"""Layerwise transformations and LAMB, LARS, Adafactor against NumPy loops written from the papers'
equations (float64) and against optax's same-named functions (float32); the trust ratio's zero-norm
convention, params required, the factoring rule, dtypes, traced hyperparameters, validation.

The model has a matrix, a vector, a 3-d leaf and a scalar. Its gradients are those of
|w - 0.5|^2 / 2 plus fixed noise, read at the current params, so the params move and every ratio
||w|| / ||u|| changes from step to step.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 24
SHAPES = {"w": (5, 8), "v": (8,), "k": (3, 2, 4), "s": ()}
_rng = np.random.default_rng(0)
INIT = {k: _rng.normal(size=s) for k, s in SHAPES.items()}
NOISE = {k: 0.3 * _rng.normal(size=(STEPS, *s)) for k, s in SHAPES.items()}  # stacked on a step axis
BIG = np.random.default_rng(2).normal(size=(130, 128))  # a leaf that the defaults factor (two dims >= 128)
BIG_NOISE = 0.3 * np.random.default_rng(3).normal(size=(STEPS, 130, 128))


def model(dtype=jnp.float64, shapes=None) -> dict:
    if shapes is None:
        return {k: jnp.asarray(x).astype(dtype) for k, x in INIT.items()}
    rng = np.random.default_rng(1)
    return {k: jnp.asarray(rng.normal(size=s)).astype(dtype) for k, s in shapes.items()}


def train(tx, params: dict, descend: bool = True, standard: bool = False, noise: dict | None = None):
    """(params after each step, updates of each step), STEPS jitted steps in one scan.

    descend=True applies the updates (an optimizer); False moves the params by -0.01 u whatever the
    block's sign convention (a transformation that is not an optimizer).
    """
    noise = NOISE if noise is None else noise

    def run(params, noise):
        def step(carry, e):
            p, state = carry
            g = jax.tree.map(lambda x, n: x - 0.5 + n.astype(x.dtype), p, e)  # grad of |x - 0.5|^2 / 2, + noise
            u, state = tx.update(g, state, p)
            p = gradtx.apply_updates(p, u) if descend else jax.tree.map(lambda x, v: x - 0.01 * v, p, u)
            return (p, state), (p, u)

        return jax.lax.scan(step, (params, tx.init(params)), noise)[1]

    noise = {k: jnp.asarray(v) for k, v in noise.items() if k in params}
    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(run)(params, noise)
    return jax.jit(run)(params, noise)


def assert_close(ours, reference, rtol: float, atol: float = 0.0, what: str = "") -> None:
    for key in reference:
        np.testing.assert_allclose(
            np.asarray(ours[key], np.float64), np.asarray(reference[key], np.float64), rtol, atol, err_msg=what + key
        )


def _raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def no_bias(params) -> dict:
    """A mask: every leaf but the vector 'v' (a bias)."""
    return {k: k != "v" for k in params}


def capped_decay(i, decay_rate):
    """Zhai et al. (2021)'s decay: Adafactor's 1 - (i + 1)^(-0.8), capped at decay_rate."""
    return jnp.minimum(decay_rate, 1 - (jnp.asarray(i).astype(jnp.float32) + 1) ** -0.8)


# ---------------------------------------------------------------------------------------------------
# NumPy loops from the papers (float64)


def norm(x) -> float:
    return float(np.sqrt(np.sum(np.abs(x) ** 2)))


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.abs(x) ** 2)))


def gradient(x: np.ndarray, key: str, k: int) -> np.ndarray:
    return x - 0.5 + NOISE[key][k]


def lars_np(lr, eta, beta, m, paper_denominator: bool):
    """You et al. (2017), Algorithm 1, one trust ratio a layer:
    lambda = eta ||w|| / (||g|| + beta ||w||);  v <- m v + lr lambda (g + beta w);  w <- w - v.
    With paper_denominator=False, ||g + beta w|| in the denominator (optax's and gradtx's form)."""
    w = {k: x.copy() for k, x in INIT.items()}
    v = {k: np.zeros_like(x) for k, x in INIT.items()}
    out = []
    for k in range(STEPS):
        for key in w:
            g = gradient(w[key], key, k)
            denominator = norm(g) + beta * norm(w[key]) if paper_denominator else norm(g + beta * w[key])
            local_lr = eta * norm(w[key]) / denominator
            v[key] = m * v[key] + lr * local_lr * (g + beta * w[key])
            w[key] = w[key] - v[key]
        out.append({key: x.copy() for key, x in w.items()})
    return out


def lamb_np(lr, b1, b2, eps, lam, decays: dict):
    """You et al. (2019), Algorithm 2 with phi the identity, one trust ratio a layer:
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m^, v^ = m / (1 - b1^t), v / (1 - b2^t);
    r = m^ / (sqrt(v^) + eps);  x <- x - lr ||x|| / ||r + lam x|| (r + lam x)."""
    x = {k: v.copy() for k, v in INIT.items()}
    m = {k: np.zeros_like(v) for k, v in INIT.items()}
    v = {k: np.zeros_like(a) for k, a in INIT.items()}
    out = []
    for t in range(1, STEPS + 1):
        for key in x:
            g = gradient(x[key], key, t - 1)
            m[key] = b1 * m[key] + (1 - b1) * g
            v[key] = b2 * v[key] + (1 - b2) * g**2
            r = (m[key] / (1 - b1**t)) / (np.sqrt(v[key] / (1 - b2**t)) + eps)
            step = r + (lam * x[key] if decays[key] else 0)
            x[key] = x[key] - lr * norm(x[key]) / norm(step) * step
        out.append({key: a.copy() for key, a in x.items()})
    return out


# Adafactor's factored leaves, laid out as (..., rows, columns): the 3-d leaf is factored over its two
# largest dimensions (3 and 4), one 3 x 4 matrix for each index of the middle dimension.
LAYOUT = {"w": (0, 1), "k": (1, 0, 2)}


def adafactor_np(rho, d=1.0, eps1=1e-30, eps2=1e-3):
    """Shazeer & Stern (2018), Algorithm 4 (matrices) and 5 (vectors), b2_t = 1 - t^(-0.8),
    relative step size alpha = max(eps2, RMS(X)) rho and update clipping at d:
        R <- b2 R + (1 - b2) (G^2 + eps1) 1_m          (row sums)
        C <- b2 C + (1 - b2) 1_n^T (G^2 + eps1)        (column sums)
        V^ = R C / (1_n^T R);   (vectors: V <- b2 V + (1 - b2)(G^2 + eps1))
        U = G / sqrt(V^);   U^ = U / max(1, RMS(U) / d);   X <- X - alpha U^."""
    x = {k: v.copy() for k, v in INIT.items()}
    R = {k: 0.0 for k in LAYOUT}
    C = {k: 0.0 for k in LAYOUT}
    V = {k: 0.0 for k in x if k not in LAYOUT}
    out = []
    for t in range(1, STEPS + 1):
        b2 = 1 - t**-0.8
        for key in x:
            g = gradient(x[key], key, t - 1)
            if key in LAYOUT:
                G = np.transpose(g, LAYOUT[key])
                R[key] = b2 * R[key] + (1 - b2) * np.sum(G**2 + eps1, axis=-1)
                C[key] = b2 * C[key] + (1 - b2) * np.sum(G**2 + eps1, axis=-2)
                v_hat = R[key][..., :, None] * C[key][..., None, :] / np.sum(R[key], axis=-1)[..., None, None]
                U = np.transpose(G / np.sqrt(v_hat), np.argsort(LAYOUT[key]))
            else:
                V[key] = b2 * V[key] + (1 - b2) * (g**2 + eps1)
                U = g / np.sqrt(V[key])
            U_hat = U / max(1.0, rms(U) / d)
            alpha = max(eps2, rms(x[key])) * rho
            x[key] = x[key] - alpha * U_hat
        out.append({key: a.copy() for key, a in x.items()})
    return out


def stacked(trajectory: list) -> dict:
    return {key: np.stack([p[key] for p in trajectory]) for key in trajectory[0]}


def test_lars_with_beta_0_is_the_papers_algorithm_1():
    params, _ = train(gradtx.lars(0.5, trust_coefficient=0.1, momentum=0.9), model())
    assert_close(params, stacked(lars_np(0.5, 0.1, 0.0, 0.9, paper_denominator=True)), rtol=1e-10, atol=1e-12)


def test_lars_weight_decay_divides_by_the_norm_of_the_decayed_gradient():
    """beta > 0: ||g + beta w|| (optax's form, stated in the docstring), not the paper's bound
    ||g|| + beta ||w||; the two differ, so the comparison tells them apart."""
    ours, _ = train(gradtx.lars(0.5, weight_decay=0.5, trust_coefficient=0.1), model())
    assert_close(ours, stacked(lars_np(0.5, 0.1, 0.5, 0.9, paper_denominator=False)), rtol=1e-10, atol=1e-12)
    paper = stacked(lars_np(0.5, 0.1, 0.5, 0.9, paper_denominator=True))
    assert not np.allclose(np.asarray(ours["w"]), paper["w"], rtol=1e-3)


def test_lamb_is_the_papers_algorithm_2():
    tx = gradtx.lamb(0.05, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1, mask=no_bias)
    params, _ = train(tx, model())
    reference = lamb_np(0.05, 0.8, 0.95, 1e-6, 0.1, decays={k: k != "v" for k in SHAPES})
    assert_close(params, stacked(reference), rtol=1e-10, atol=1e-12)


def test_adafactor_is_the_papers_algorithms_4_and_5():
    params, _ = train(gradtx.adafactor(0.05, min_dim_size_to_factor=2), model())
    assert_close(params, stacked(adafactor_np(0.05)), rtol=1e-9, atol=1e-12)


def test_factored_statistics_are_the_emas_of_row_and_column_means():
    """v_row, v_col: EMAs of the means of g^2 + eps over the largest and the second largest dimension;
    u = g / sqrt(v_row v_col^T / mean(v_row)) (the row/column sums of the paper give the same v^)."""
    rng = np.random.default_rng(5)
    grads = [rng.normal(size=(6, 4)) for _ in range(5)]  # the largest dimension is 0: rows are means over it
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=1e-3)
    state, update = tx.init(jnp.zeros((6, 4))), jax.jit(tx.update)
    r, c = np.zeros(4), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        u, state = update(jnp.asarray(g), state)
        d = 1 - t**-0.8
        r = d * r + (1 - d) * np.mean(g**2 + 1e-3, axis=0)
        c = d * c + (1 - d) * np.mean(g**2 + 1e-3, axis=1)
        np.testing.assert_allclose(np.asarray(u), g / np.sqrt(np.outer(c, r) / np.mean(r)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.v_row), r, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.v_col), c, rtol=1e-12)
    assert state.v.shape == (1,) and int(state.count) == 5


# ---------------------------------------------------------------------------------------------------
# optax's same-named functions, same arguments, float32

OPTAX_CASES = [
    ("scale_by_trust_ratio", {}, False),
    ("scale_by_trust_ratio", dict(min_norm=1.0, trust_coefficient=0.5, eps=1e-3), False),  # the scalar's norm < 1
    ("scale_by_param_block_norm", dict(min_scale=1.0), False),
    ("clip_by_block_rms", dict(threshold=0.5), False),
    ("scale_by_factored_rms", dict(decay_rate=0.5, min_dim_size_to_factor=3, epsilon=1e-3), False),
    ("scale_by_factored_rms", dict(min_dim_size_to_factor=2, decay_rate=0.9, decay_rate_fn=capped_decay), False),
    ("lamb", dict(learning_rate=0.05), True),
    ("lamb", dict(learning_rate=0.05, b1=0.8, eps_root=1e-8, weight_decay=0.1, mask=no_bias), True),
    ("lars", dict(learning_rate=0.5), True),
    (
        "lars",
        dict(learning_rate=0.5, weight_decay=0.1, weight_decay_mask=no_bias, trust_ratio_mask=no_bias, nesterov=True),
        True,
    ),
    ("adafactor", {}, True),
    (
        "adafactor",
        dict(
            learning_rate=0.05,
            min_dim_size_to_factor=2,
            momentum=0.9,
            weight_decay_rate=1e-3,
            weight_decay_mask=no_bias,
        ),
        True,
    ),
    ("adafactor", dict(learning_rate=0.05, multiply_by_parameter_scale=False, clipping_threshold=None), True),
]


def _id(case) -> str:
    name, kwargs, _ = case
    shown = ",".join(f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items())
    return f"{name}({shown})"


@pytest.mark.parametrize("case", OPTAX_CASES, ids=map(_id, OPTAX_CASES))
def test_matches_optax(case):
    name, kwargs, descend = case
    params = model(jnp.float32)
    if name == "adafactor" and not kwargs:  # the defaults: a leaf with two dimensions >= 128, factored
        params["big"] = jnp.asarray(BIG, jnp.float32)
    noise = {**NOISE, "big": BIG_NOISE}
    ours, our_updates = train(getattr(gradtx, name)(**kwargs), params, descend, noise=noise)
    theirs, their_updates = train(getattr(optax, name)(**kwargs), params, descend, standard=True, noise=noise)
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(our_updates))
    assert_close(our_updates, their_updates, rtol=2e-5, atol=1e-6, what="updates ")
    assert_close(ours, theirs, rtol=2e-5, atol=1e-6, what="params ")


@pytest.mark.parametrize(
    "shape",
    [(130, 128), (128, 130), (127, 300), (4, 128, 129), (129, 2, 128), (128, 128), (300,), (0, 200)],
)
def test_factoring_rule_and_state_shapes_match_optax(shape):
    """Factored where the two largest dimensions are both >= min_dim_size_to_factor (128), over those two."""
    params = {"x": jax.ShapeDtypeStruct(shape, jnp.float32)}
    ours = jax.eval_shape(gradtx.scale_by_factored_rms().init, params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.eval_shape(optax.scale_by_factored_rms().init, params)
    for field in ("v_row", "v_col", "v"):
        assert getattr(ours, field)["x"].shape == getattr(theirs, field)["x"].shape, field
    factored = len(shape) > 1 and sorted(shape)[-2] >= 128
    assert (ours.v["x"].shape == (1,)) == factored


def test_factored_state_is_optaxs():
    assert gradtx.FactoredState._fields == optax.FactoredState._fields == ("count", "v_row", "v_col", "v")


# ---------------------------------------------------------------------------------------------------
# The trust ratio at zero norms, and params required


@pytest.mark.parametrize("min_norm", [0.0, 0.5])
def test_trust_ratio_with_zero_params_or_zero_updates_is_finite(min_norm):
    """A zero block (zero-initialized, say) keeps its update: the ratio is 1, not 0 or 0 / 0; a zero
    update stays zero. With min_norm the norms are floored instead (optax's convention both ways)."""
    tx = gradtx.scale_by_trust_ratio(min_norm=min_norm)
    u = {"zero_w": jnp.asarray([3.0, -4.0]), "zero_u": jnp.zeros(2), "both": jnp.zeros(2), "normal": jnp.ones(2)}
    w = {"zero_w": jnp.zeros(2), "zero_u": jnp.asarray([1.0, 2.0]), "both": jnp.zeros(2), "normal": jnp.full(2, 3.0)}
    ours, _ = tx.update(u, tx.init(w), w)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _ = optax.scale_by_trust_ratio(min_norm=min_norm).update(u, optax.EmptyState(), w)
    for leaf in jax.tree.leaves(ours):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert_close(ours, theirs, rtol=1e-15)
    zero_w_ratio = 1.0 if min_norm == 0 else min_norm / 5.0  # max(||w||, m) / ||u|| = 0.5 / 5
    np.testing.assert_allclose(np.asarray(ours["zero_w"]), zero_w_ratio * np.asarray([3.0, -4.0]), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(ours["zero_u"]), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(ours["both"]), [0.0, 0.0])
    np.testing.assert_allclose(np.asarray(ours["normal"]), np.full(2, 3.0), rtol=1e-15)  # ||w|| / ||u|| = 3


def test_trust_ratio_of_a_zero_update_has_a_finite_derivative():
    """d u / d g through the ratio at g = 0 (the norm's sqrt has an infinite derivative there)."""
    tx = gradtx.scale_by_trust_ratio()
    w = jnp.asarray([1.0, 2.0])
    jacobian = jax.jacobian(lambda g: tx.update(g, tx.init(w), w)[0])(jnp.zeros(2))
    np.testing.assert_array_equal(np.asarray(jacobian), np.eye(2))  # ratio 1 at g = 0


NEEDS_PARAMS = [
    (gradtx.scale_by_trust_ratio(), "scale_by_trust_ratio"),
    (gradtx.scale_by_param_block_norm(), "scale_by_param_block_norm"),
    (gradtx.scale_by_param_block_rms(), "scale_by_param_block_rms"),
    (gradtx.lamb(1e-3), "add_decayed_weights"),  # its first member that reads params
    (gradtx.lamb(1e-3, mask=no_bias), "add_decayed_weights"),
    (gradtx.lars(0.1), "add_decayed_weights"),
    (gradtx.adafactor(), "scale_by_param_block_rms"),
]


@pytest.mark.parametrize("tx, builder", NEEDS_PARAMS, ids=[repr(tx)[:48] for tx, _ in NEEDS_PARAMS])
def test_update_without_params_names_the_transformation(tx, builder):
    params = {"w": jnp.ones((2, 3)), "v": jnp.ones(3)}
    with _raises(ValueError, f"{builder}: update needs params, got None. Call tx.update(grads, state, params)."):
        tx.update(params, tx.init(params))


def test_factored_rms_needs_no_params():
    """optax's scale_by_factored_rms raises without params, though it reads only their shapes."""
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
    g = {"w": jnp.ones((2, 3))}
    with_params, _ = tx.update(g, tx.init(g), g)
    without, _ = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(np.asarray(with_params["w"]), np.asarray(without["w"]))


# ---------------------------------------------------------------------------------------------------
# Dtypes

# The optimizers hold every block but scale_by_param_block_norm.
ALL = [
    gradtx.scale_by_param_block_norm(),
    gradtx.lamb(0.05, weight_decay=0.1),
    gradtx.lars(0.5, weight_decay=0.1),
    gradtx.adafactor(0.05, min_dim_size_to_factor=2, momentum=0.9),
]


@pytest.mark.parametrize("tx", ALL, ids=[repr(tx)[:48] for tx in ALL])
def test_bf16_params_keep_bf16_updates_close_to_float32(tx):
    params = model(jnp.bfloat16)
    grads = jax.tree.map(lambda x, n: x - 0.5 + jnp.asarray(n[0]).astype(x.dtype), params, NOISE)
    state, update = tx.init(params), jax.jit(tx.update)
    updates, new_state = update(grads, state, params)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    f32 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
    reference, _ = update(f32(grads), tx.init(f32(params)), f32(params))  # the same bf16 numbers, in float32
    scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(reference))
    assert_close(updates, reference, rtol=1e-2, atol=1e-2 * scale)


# DESIGN.md section 4: second moments are real and at least float32 (written out, not computed).
MOMENT_DTYPE = {
    jnp.float32: jnp.float32,
    jnp.bfloat16: jnp.float32,
    jnp.float16: jnp.float32,
    jnp.float64: jnp.float64,
    jnp.complex64: jnp.float32,
}


@pytest.mark.parametrize("dtype", list(MOMENT_DTYPE), ids=lambda d: jnp.dtype(d).name)
def test_factored_moments_are_real_and_at_least_float32(dtype):
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
    params = {"m": jnp.ones((3, 4), dtype), "v": jnp.ones(4, dtype)}
    g = {"m": jnp.asarray(np.arange(12).reshape(3, 4) + 1j).astype(dtype) if dtype == jnp.complex64 else params["m"]}
    g["v"] = jnp.asarray([1 + 1j, -2, 3j, 0.5]).astype(dtype) if dtype == jnp.complex64 else params["v"] * 2
    state = tx.init(params)
    u, state = jax.jit(tx.update)(g, state, params)
    for leaf in jax.tree.leaves((state.v_row, state.v_col, state.v)):
        assert leaf.dtype == MOMENT_DTYPE[dtype]
    assert u["m"].dtype == u["v"].dtype == dtype
    if dtype == jnp.complex64:  # step 1 (decay 0): u = g / sqrt(|g|^2 + eps) = g / |g| for the vector
        gv = np.asarray(g["v"], np.complex128)
        np.testing.assert_allclose(np.asarray(u["v"]), gv / np.abs(gv), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Decay schedule, step offset, traced hyperparameters, validation


def test_step_offset_is_finite_before_the_offset_and_optaxs_after():
    """A count below step_offset is taken as 0 (decay 0: v = g^2 + eps) where optax's default gives NaN;
    from a count past the offset it is optax's."""
    params = {"w": jnp.asarray(INIT["w"], jnp.float32), "v": jnp.asarray(INIT["v"], jnp.float32)}
    ours = gradtx.scale_by_factored_rms(step_offset=3, min_dim_size_to_factor=2)
    theirs = optax.scale_by_factored_rms(step_offset=3, min_dim_size_to_factor=2)
    g = jax.tree.map(lambda x: x * 2, params)
    state, update = ours.init(params), jax.jit(ours.update)
    for _ in range(3):
        _, state = update(g, state, params)
        g2 = jax.tree.map(lambda x: np.asarray(x, np.float64) ** 2 + 1e-30, g)
        np.testing.assert_allclose(np.asarray(state.v["v"]), g2["v"], rtol=1e-6)
    with jax.numpy_dtype_promotion("standard"):
        their_state = theirs.init(params)
        assert np.isnan(np.asarray(theirs.update(g, their_state, params)[0]["v"])).all()  # count 0 < offset
        their_state = their_state._replace(count=jnp.asarray(7, jnp.int32))
        their_update = jax.jit(theirs.update)
        our_state = ours.init(params)._replace(count=jnp.asarray(7, jnp.int32))
        for k in range(3):
            gk = jax.tree.map(lambda x, k=k: x * (k + 1), g)
            u_theirs, their_state = their_update(gk, their_state, params)
            u_ours, our_state = update(gk, our_state, params)
            assert_close(u_ours, u_theirs, rtol=2e-6)


def test_custom_decay_rate_fn_is_kept_in_repr_and_equality():
    tx = gradtx.scale_by_factored_rms(decay_rate=0.9, decay_rate_fn=capped_decay)
    assert "decay_rate_fn=capped_decay" in repr(tx)
    assert tx == gradtx.scale_by_factored_rms(decay_rate=0.9, decay_rate_fn=capped_decay)
    assert tx != gradtx.scale_by_factored_rms(decay_rate=0.9)
    assert "decay_rate_fn" not in repr(gradtx.scale_by_factored_rms())  # the default, shown by omission


SWEEPS = {
    "trust_coefficient": lambda h: gradtx.scale_by_trust_ratio(trust_coefficient=h, eps=h / 10),
    "min_scale,threshold": lambda h: gradtx.chain(gradtx.clip_by_block_rms(h), gradtx.scale_by_param_block_rms(h)),
    "decay_rate": lambda h: gradtx.scale_by_factored_rms(decay_rate=h, min_dim_size_to_factor=2, epsilon=h / 1e3),
}


@pytest.mark.parametrize("name", list(SWEEPS))
def test_vmap_over_a_traced_hyperparameter_equals_separate_runs(name):
    """Hyperparameters under jax.vmap (tracers) give the runs with each value (one compiled run each way)."""
    values = jnp.asarray([0.3, 0.6, 1.2], jnp.float64)
    run = lambda h: train(SWEEPS[name](h), model(jnp.float32), descend=False)[1]
    got, one = jax.jit(jax.vmap(run))(values), jax.jit(run)
    for i, h in enumerate(values):
        assert_close(jax.tree.map(lambda x, i=i: x[i], got), one(h), rtol=2e-6, atol=1e-7)


def test_validation_messages():
    with _raises(ValueError, "scale_by_trust_ratio: min_norm must be in [0, inf), got -1.0"):
        gradtx.scale_by_trust_ratio(min_norm=-1.0)
    with _raises(ValueError, "scale_by_trust_ratio: eps must be in [0, inf), got -1e-06"):
        gradtx.scale_by_trust_ratio(eps=-1e-6)
    with _raises(ValueError, "scale_by_param_block_rms: min_scale must be in [0, inf), got -0.001"):
        gradtx.scale_by_param_block_rms(-1e-3)
    with _raises(ValueError, "clip_by_block_rms: threshold must be in [0, inf), got -1.0"):
        gradtx.clip_by_block_rms(-1.0)
    with _raises(ValueError, "scale_by_factored_rms: step_offset must be in [0, inf), got -5"):
        gradtx.scale_by_factored_rms(step_offset=-5)
    with _raises(TypeError, "scale_by_factored_rms: decay_rate must be a number in [0, inf), not a schedule"):
        gradtx.scale_by_factored_rms(decay_rate=capped_decay)
    with _raises(TypeError, "scale_by_factored_rms: decay_rate_fn must be a function (count, decay_rate) -> decay"):
        gradtx.scale_by_factored_rms(decay_rate_fn=0.8)
    with _raises(ValueError, "lamb: learning_rate must be in [0, inf), got -0.1"):
        gradtx.lamb(-0.1)
    with _raises(ValueError, "lars: learning_rate must be in [0, inf), got -0.1"):
        gradtx.lars(-0.1)
    with _raises(ValueError, "lars: momentum must be in [0, 1], got 9.0"):
        gradtx.lars(0.1, momentum=9.0)
    with _raises(ValueError, "adafactor: learning_rate must be in [0, inf), got -0.1"):
        gradtx.adafactor(-0.1)
    with _raises(TypeError, "adafactor: dtype_momentum must be a floating or complex dtype, got int32"):
        gradtx.adafactor(momentum=0.9, dtype_momentum=jnp.int32)
