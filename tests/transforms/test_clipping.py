"""clip and clip_by_global_norm against NumPy and optax, clip_by_leaf_norm against Keras's formula (NumPy);
zero thresholds and zero gradients stay finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 30
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def gradient_steps(dtype=np.float64, seed: int = 0) -> dict:
    """Gradients for STEPS steps (leading axis), their size swept from 0.05x to 3x so that the
    global norm lies below the thresholds on some steps and above on others; step 0 is all zero."""
    rng = np.random.default_rng(seed)
    size = np.linspace(0.05, 3.0, STEPS)
    size[0] = 0.0
    return {
        k: (rng.normal(size=(STEPS, *s)) * size.reshape(-1, *[1] * len(s))).astype(dtype) for k, s in SHAPES.items()
    }


def run(tx, grads: dict, standard: bool = False) -> dict:
    """tx's updates for each step of `grads` (stacked), one compiled scan."""
    params = jax.tree.map(lambda g: jnp.zeros_like(g[0]), grads)

    def scan(gs):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        return jax.lax.scan(step, tx.init(params), gs)[1]

    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))
    return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))


def assert_close(ours: dict, reference: dict, rtol: float, atol: float = 0.0) -> None:
    for key in reference:
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol, atol, err_msg=key)


def clip_by_global_norm_np(grads: dict, c: float) -> dict:
    """u = g * c / ||g|| if ||g|| > c else g, the norm over all leaves of one step."""
    out = {k: np.empty_like(g) for k, g in grads.items()}
    for step in range(STEPS):
        norm = np.sqrt(sum(np.sum(g[step] ** 2) for g in grads.values()))
        for k, g in grads.items():
            out[k][step] = g[step] * c / norm if norm > c else g[step]
    return out


@pytest.mark.parametrize("max_delta", [0.0, 0.5])
def test_clip_matches_numpy(max_delta):
    grads = gradient_steps()
    expected = {k: np.minimum(np.maximum(g, -max_delta), max_delta) for k, g in grads.items()}
    assert_close(run(gradtx.clip(max_delta), grads), expected, 0.0)


@pytest.mark.parametrize("max_norm", [0.0, 1.0, 4.0])
def test_clip_by_global_norm_matches_numpy(max_norm):
    grads = gradient_steps()
    expected = clip_by_global_norm_np(grads, max_norm)
    if max_norm == 4.0:  # the sweep must clip some steps and leave others alone
        norms = np.sqrt(sum(np.sum(g**2, axis=tuple(range(1, g.ndim))) for g in grads.values()))
        assert (norms > 4.0).any() and (norms[1:] < 4.0).any()
    assert_close(run(gradtx.clip_by_global_norm(max_norm), grads), expected, 1e-12)


def test_global_norm_is_over_all_leaves():
    """Each leaf below the threshold, the tree above it: every leaf is scaled by the same factor."""
    g = {"a": jnp.array([3.0, 0.0], jnp.float64), "b": jnp.array([0.0, 4.0], jnp.float64)}
    tx = gradtx.clip_by_global_norm(4.5)
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["a"], [3.0 * 0.9, 0.0], rtol=1e-12)
    np.testing.assert_allclose(u["b"], [0.0, 4.0 * 0.9], rtol=1e-12)


@pytest.mark.parametrize(
    "make",
    [lambda m: m.clip(0.5), lambda m: m.clip_by_global_norm(1.0), lambda m: m.clip_by_global_norm(4.0)],
    ids=["clip", "global-norm-1", "global-norm-4"],
)  # fmt: skip
def test_matches_optax(make):
    grads = gradient_steps(np.float32)
    ours = run(make(gradtx), grads)
    assert all(u.dtype == jnp.float32 for u in ours.values())
    assert_close(ours, run(make(optax), grads, standard=True), 1e-5, 1e-6)


def test_zero_threshold_and_zero_gradients_are_finite():
    """optax gives NaN for max_norm = 0 with zero gradients (0 / 0) and NaN gradients through update
    at zero gradients; gradtx gives zeros, and finite derivatives."""
    zeros = {"w": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    ones = jax.tree.map(jnp.ones_like, zeros)
    for tx in (gradtx.clip_by_global_norm(0.0), gradtx.clip(0.0)):
        for g in (zeros, ones):
            u, _ = jax.jit(tx.update)(g, tx.init(g))
            assert all((np.asarray(x) == 0).all() for x in jax.tree.leaves(u)), tx
    for max_norm in (0.0, 1.0):
        tx = gradtx.clip_by_global_norm(max_norm)

        def total(w, tx=tx):
            return jnp.sum(tx.update({"w": w}, tx.init({"w": w}))[0]["w"])

        for w in (jnp.zeros(3, jnp.float32), jnp.full(3, 2.0, jnp.float32), jnp.full(3, 0.1, jnp.float32)):
            assert np.isfinite(np.asarray(jax.grad(total)(w))).all(), (max_norm, w)
        # Below the threshold the map is the identity, so its derivative is 1 per coordinate.
        if max_norm:
            np.testing.assert_allclose(jax.grad(total)(jnp.zeros(3, jnp.float32)), np.ones(3))


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: gradtx.clip(-1.0), ValueError, "clip: max_delta must be in [0, inf), got -1.0"),
        (
            lambda: gradtx.clip_by_global_norm(-0.5),
            ValueError,
            "clip_by_global_norm: max_norm must be in [0, inf), got -0.5",
        ),
        (lambda: gradtx.clip(float("nan")), ValueError, "clip: max_delta must be in [0, inf), got nan"),
        (lambda: gradtx.clip(lambda k: 1.0), TypeError, "clip: max_delta must be a number"),  # type: ignore[arg-type]
    ],
)
def test_validation_messages(build, error, message):
    with pytest.raises(error) as e:
        build()
    assert str(e.value).startswith(message)


def test_bf16_keeps_dtype_and_none_leaves_pass_through():
    g = {"w": jnp.full((2, 3), 3.0, jnp.bfloat16), "frozen": None, "b": jnp.ones(3, jnp.bfloat16)}
    for tx in (gradtx.clip(1.0), gradtx.clip_by_global_norm(1.0)):
        u, state = jax.jit(tx.update)(g, tx.init(g))
        assert u["frozen"] is None and state == gradtx.EmptyState(), tx
        assert u["w"].dtype == u["b"].dtype == jnp.bfloat16, tx
    u, _ = gradtx.clip_by_global_norm(1.0).update(g, gradtx.EmptyState())
    norm = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in (u["w"], u["b"])))
    np.testing.assert_allclose(norm, 1.0, rtol=1e-2)  # bfloat16 resolution


def test_max_norm_may_be_traced_under_vmap():
    g = {"w": jnp.array([3.0, 4.0], jnp.float32)}
    out = jax.vmap(lambda c: gradtx.clip_by_global_norm(c).update(g, gradtx.EmptyState())[0]["w"])(
        jnp.array([1.0, 10.0], jnp.float32)
    )
    np.testing.assert_allclose(out, [[0.6, 0.8], [3.0, 4.0]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# adaptive_grad_clip, the per-example clips and global_norm (issue 10), against optax in float64 and
# NumPy loops written from the papers (Brock et al., 2021; Abadi et al., 2016; McMahan et al., 2018)

from tests.trajectories import compare_with_optax, gradients, model  # noqa: E402


def agc_model() -> dict:
    """Every default unit layout: dense (in, out), multi-head (in, heads, out), conv (H, W, in, out),
    conv3d (D, H, W, in, out), a vector, a (1, n) row (one unit: one dimension longer than 1), a scalar."""
    rng = np.random.default_rng(3)
    shapes = {"dense": (3, 4), "heads": (3, 2, 4), "conv": (3, 3, 2, 4), "conv3d": (2, 2, 2, 2, 3),
              "b": (4,), "row": (1, 5), "s": ()}  # fmt: skip
    return {k: jnp.asarray(rng.normal(size=s), jnp.float64) for k, s in shapes.items()}


def test_adaptive_grad_clip_matches_optax_and_clips_some_units_only():
    params = agc_model()
    grads = gradients(params, scale=np.linspace(0.01, 1.0, 32))  # units cross the bound during the run
    make = lambda m: m.adaptive_grad_clip(0.3, eps=1e-3)
    (us, _ps, _), _ = compare_with_optax(make, params, grads)
    # Some units are clipped (u != g) and others are not, at some steps each.
    clipped = [np.asarray(us[k]) != np.asarray(grads[k]) for k in params]
    assert any(c.any() for c in clipped) and any((~c).any() for c in clipped)


def test_adaptive_grad_clip_with_axis_matches_optax():
    params = {"kernel": model()["conv"], "heads": agc_model()["heads"]}  # axis applies to every leaf
    make = lambda m: m.adaptive_grad_clip(0.1, axis=(0, 1))
    compare_with_optax(make, params, gradients(params), float32=False)


def test_adaptive_grad_clip_one_step_against_numpy():
    """A dense kernel's units are its columns: u = g l max(||w||, eps) / ||g|| where that is below 1."""
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) * np.array([0.01, 1.0, 10.0])
    lam, eps = 0.5, 1e-3
    bound = lam * np.maximum(np.linalg.norm(w, axis=0), eps)
    norm = np.linalg.norm(g, axis=0)
    expected = np.where(norm < bound, g, g * bound / norm)
    assert (norm < bound).any() and (norm > bound).any()
    tx = gradtx.adaptive_grad_clip(lam, eps)
    u, _ = tx.update(jnp.asarray(g), tx.init(jnp.asarray(w)), jnp.asarray(w))
    np.testing.assert_allclose(u, expected, rtol=1e-12)


def test_adaptive_grad_clip_nan_stays_nan_and_zero_params_use_eps():
    tx = gradtx.adaptive_grad_clip(0.5, eps=0.1)
    w = {"a": jnp.zeros(3, jnp.float64), "b": jnp.ones(2, jnp.float64)}
    g = {"a": jnp.asarray([1.0, 0.0, 0.0]), "b": jnp.asarray([jnp.nan, 1.0])}
    u, _ = tx.update(g, tx.init(w), w)
    np.testing.assert_allclose(u["a"], [0.05, 0.0, 0.0], rtol=1e-12)  # bound 0.5 * max(0, 0.1)
    assert np.isnan(np.asarray(u["b"])).all()  # a NaN unit norm: NaN out, never a silent number


def test_adaptive_grad_clip_errors():
    with pytest.raises(ValueError, match=r"^adaptive_grad_clip: clipping must be in \[0, inf\), got -1"):
        gradtx.adaptive_grad_clip(-1.0)
    with pytest.raises(TypeError, match=r"^adaptive_grad_clip: axis must be None, an int or a tuple of ints"):
        gradtx.adaptive_grad_clip(0.1, axis="rows")  # type: ignore[arg-type]
    tx = gradtx.adaptive_grad_clip(0.1)
    p = jnp.ones((2,) * 6)
    with pytest.raises(ValueError, match=r"adaptive_grad_clip: a leaf of shape \(2, 2, 2, 2, 2, 2\) has no default"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="adaptive_grad_clip: update needs params"):
        tx.update(p, tx.init(p))


def per_example_batch() -> dict:
    """6 examples: two with tiny gradients (unclipped), one all zero, three large."""
    rng = np.random.default_rng(1)
    size = np.array([0.01, 0.02, 0.0, 1.0, 2.0, 5.0])
    return {
        "w": jnp.asarray(rng.normal(size=(6, 3, 2)) * size[:, None, None]),
        "b": jnp.asarray(rng.normal(size=(6, 4)) * size[:, None]),
    }


def clip_sum_numpy(leaves: list, c: float) -> tuple[list, int]:
    """sum_i g_i min(1, c / ||g_i||) over the examples i of `leaves` (||g_i|| over all of them)."""
    norms = np.sqrt(sum(np.sum(np.asarray(g).reshape(len(g), -1) ** 2, axis=1) for g in leaves))
    s = np.array([1.0 if n == 0 or n <= c else c / n for n in norms])
    return [np.tensordot(s, np.asarray(g), axes=1) for g in leaves], int(np.sum(s < 1))


@pytest.mark.parametrize("c", [0.0, 0.5, np.inf])
def test_per_example_global_norm_clip_against_numpy_and_optax(c):
    grads = per_example_batch()
    summed, clipped = gradtx.per_example_global_norm_clip(grads, c)
    expected, n = clip_sum_numpy([grads["b"], grads["w"]], c)
    np.testing.assert_allclose(summed["b"], expected[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(summed["w"], expected[1], rtol=1e-12, atol=1e-15)
    assert int(clipped) == n and clipped.dtype == jnp.int32
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.per_example_global_norm_clip(grads, c)
    np.testing.assert_allclose(summed["w"], theirs[0]["w"], rtol=1e-9, atol=1e-15)
    assert int(theirs[1]) == n


@pytest.mark.parametrize("uniform", [True, False])
def test_per_example_layer_norm_clip_against_numpy_and_optax(uniform):
    grads, c = per_example_batch(), 1.0
    sums, counts = gradtx.per_example_layer_norm_clip(grads, c, uniform=uniform)
    sizes = {"b": 4, "w": 6}
    for k, g in grads.items():
        c_l = c / np.sqrt(2) if uniform else c * np.sqrt(sizes[k] / 10)
        expected, n = clip_sum_numpy([g], c_l)
        np.testing.assert_allclose(sums[k], expected[0], rtol=1e-12, atol=1e-15)
        assert int(counts[k]) == n
    with jax.numpy_dtype_promotion("standard"):
        theirs_sums, theirs_counts = optax.per_example_layer_norm_clip(grads, c, uniform=uniform)
    for k in grads:
        np.testing.assert_allclose(sums[k], theirs_sums[k], rtol=1e-9, atol=1e-15)
        assert int(counts[k]) == int(theirs_counts[k])


def test_per_example_clips_nan_and_errors():
    grads = per_example_batch()
    grads["w"] = grads["w"].at[4, 0, 0].set(jnp.nan)
    summed, _ = gradtx.per_example_global_norm_clip(grads, 1.0)
    assert np.isnan(np.asarray(summed["w"])).all() and np.isnan(np.asarray(summed["b"])).all()
    with pytest.raises(ValueError, match=r"^per_example_global_norm_clip: grads must hold per-example gradients"):
        gradtx.per_example_global_norm_clip({"a": jnp.ones((3, 2)), "b": jnp.ones((4,))}, 1.0)
    with pytest.raises(ValueError, match=r"^per_example_layer_norm_clip: global_l2_norm_clip must be in \[0, inf\]"):
        gradtx.per_example_layer_norm_clip(per_example_batch(), -1.0)
    with pytest.raises(TypeError, match=r"^per_example_layer_norm_clip: uniform must be True or False"):
        gradtx.per_example_layer_norm_clip(per_example_batch(), 1.0, uniform=1)  # type: ignore[arg-type]


def test_global_norm_is_optax_global_norm_and_tree_norm():
    g = model()
    with jax.numpy_dtype_promotion("standard"), pytest.warns(DeprecationWarning):
        theirs = optax.global_norm(g)
    expected = np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(g)))
    np.testing.assert_allclose(gradtx.global_norm(g), expected, rtol=1e-14)
    np.testing.assert_allclose(gradtx.global_norm(g), theirs, rtol=1e-14)
    assert gradtx.global_norm(g) == gradtx.tree.norm(g)


def test_clip_by_leaf_norm_clips_each_leaf_by_its_own_norm():
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)), "b": 0.01 * rng.normal(size=5), "c": np.asarray(-7.0), "z": np.zeros(3)}
    for c in (0.0, 0.1, 1.0, 100.0):
        tx = gradtx.clip_by_leaf_norm(c)
        got, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, grads), tx.init(grads))
        for k, g in grads.items():
            norm = np.linalg.norm(g)
            want = g * (c / norm if norm > c else 1.0)  # Keras: g c / max(||g||, c)
            np.testing.assert_allclose(np.asarray(got[k]), want, rtol=1e-12, atol=0, err_msg=f"{c} {k}")
    # finite derivatives through update at zero gradients, and complex leaves clipped by |g|
    tx = gradtx.clip_by_leaf_norm(1.0)
    d = jax.grad(lambda g: jnp.sum(tx.update({"z": g}, tx.init(None))[0]["z"]))(jnp.zeros(3))
    assert bool(jnp.all(jnp.isfinite(d)))
    u, _ = tx.update({"c": jnp.asarray([3 + 4j])}, tx.init(None))
    np.testing.assert_allclose(np.asarray(u["c"]), [0.6 + 0.8j], rtol=1e-6)
