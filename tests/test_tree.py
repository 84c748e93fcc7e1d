"""gradtx.tree against NumPy, with the dtype policy: compute in >= float32, return the leaf's dtype."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from gradtx import tree

RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4))
B = RNG.normal(size=(3, 4))
V = RNG.uniform(0.1, 2.0, size=(3, 4))


def t(x, dtype=jnp.float32):
    return {"x": jnp.asarray(x).astype(dtype), "none": None, "list": [jnp.asarray(x).astype(dtype)[0]]}


def leaf(tr):
    return np.asarray(tr["x"].astype(jnp.float64))


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda: tree.add(t(A), t(B)), A + B),
        (lambda: tree.sub(t(A), t(B)), A - B),
        (lambda: tree.mul(t(A), t(B)), A * B),
        (lambda: tree.scale(0.5, t(A)), 0.5 * A),
        (lambda: tree.add_scale(t(A), 0.3, t(B)), A + 0.3 * B),
        (lambda: tree.lerp(t(A), t(B), 0.2, 0.7), 0.2 * A + 0.7 * B),
        (lambda: tree.ema(t(A), t(B), 0.9), 0.9 * A + 0.1 * B),
        (lambda: tree.bias_correction(t(A), 0.9, jnp.asarray(3, jnp.int32)), A / (1 - 0.9**3)),
        (lambda: tree.abs_sq(t(A)), A**2),
        (lambda: tree.div_sqrt(t(A), t(V), 1e-3), A / (np.sqrt(V) + 1e-3)),
        (lambda: tree.div_sqrt(t(A), t(V), eps_root=1e-3), A / np.sqrt(V + 1e-3)),
        (lambda: tree.maximum(t(A), t(B)), np.maximum(A, B)),
    ],
)
def test_leafwise_math_matches_numpy_and_keeps_none(fn, expected):
    out = fn()
    assert out["none"] is None and out["x"].dtype == jnp.float32
    np.testing.assert_allclose(leaf(out), expected, rtol=1e-6, atol=1e-6)


def test_norm_and_sum_sq_over_mixed_dtypes_and_complex():
    c = RNG.normal(size=3) + 1j * RNG.normal(size=3)
    mixed = {
        "a": jnp.asarray(A, jnp.bfloat16),
        "b": jnp.asarray(B, jnp.float32),
        "c": jnp.asarray(c, jnp.complex64),
    }
    expected = np.sum(np.asarray(mixed["a"].astype(jnp.float32)) ** 2) + np.sum(B**2) + np.sum(np.abs(c) ** 2)
    np.testing.assert_allclose(float(tree.sum_sq(mixed)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(tree.norm(mixed)), np.sqrt(expected), rtol=1e-5)
    assert tree.norm(mixed).dtype == jnp.float32
    assert float(tree.norm({})) == 0.0 and float(tree.norm({"x": None})) == 0.0


def test_bfloat16_second_moment_decays():
    # Stored in bfloat16, 0.999 nu rounds back to nu: the moment would never decay. gradtx stores it
    # in float32 (second_moment_like); 300 steps of zero gradient must shrink it by 0.999^300.
    nu = tree.second_moment_like({"v": jnp.ones(1, jnp.bfloat16)}, 1.0)
    for _ in range(300):
        nu = tree.ema(nu, {"v": jnp.zeros(1, jnp.bfloat16)}, 0.999)
    np.testing.assert_allclose(float(nu["v"][0]), 0.999**300, rtol=1e-4)


def test_low_precision_leaves_are_computed_in_float32():
    # 0.999 in bfloat16 is 1.0: an EMA computed in bfloat16 would never move. Computed in float32
    # and rounded once, a large enough change survives.
    avg = {"v": jnp.asarray([1.0], jnp.bfloat16)}
    new = {"v": jnp.asarray([100.0], jnp.bfloat16)}
    out = tree.ema(avg, new, 0.999)["v"]
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(out[0]), float(jnp.asarray(0.999 * 1.0 + 0.001 * 100.0, jnp.bfloat16)))
    assert float(out[0]) > 1.0


def test_complex_second_moments_are_real():
    z = {"z": jnp.asarray([3 + 4j], jnp.complex64)}
    sq = tree.abs_sq(z)["z"]
    assert sq.dtype == jnp.float32 and float(sq[0]) == 25.0
    assert tree.second_moment_like(z)["z"].dtype == jnp.float32
    assert tree.second_moment_like({"h": jnp.ones(2, jnp.bfloat16)}, 0.1)["h"].dtype == jnp.float32
    assert tree.real_dtype(jnp.complex128) == jnp.float64 and tree.compute_dtype(jnp.float16) == jnp.float32


def test_creation_and_casting():
    params = {"a": jnp.ones((2, 3), jnp.bfloat16), "b": None}
    assert tree.zeros_like(params)["a"].dtype == jnp.bfloat16
    assert tree.zeros_like(params, jnp.float32)["a"].dtype == jnp.float32
    assert float(tree.full_like(params, 0.5)["a"][0, 0]) == 0.5
    assert tree.cast(params, jnp.float32)["a"].dtype == jnp.float32
    assert tree.cast(params, None) is params
    assert tree.cast_like(tree.cast(params, jnp.float32), params)["a"].dtype == jnp.bfloat16
    assert tree.size(params) == 6
