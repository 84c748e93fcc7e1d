"""SM3 against optax (on models without rank-0 leaves, where optax fails) and against a NumPy loop of
SM3-II from the paper (Anil et al., 2019, Algorithm 2, with the momentum of optax's version)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.transforms.common import run
from tests.transforms.trajectories import check_against_optax

STEPS = 20


def test_sm3_matches_optax():
    check_against_optax(gradtx.sm3(0.05, momentum=0.8), optax.sm3(0.05, momentum=0.8), scalar=False)


def test_scale_by_sm3_with_an_ema_matches_optax():
    check_against_optax(
        gradtx.scale_by_sm3(b2=0.9, eps=1e-6), optax.scale_by_sm3(b2=0.9, eps=1e-6), apply=False, scalar=False
    )


def sm3_np(gs, b1=0.9, eps=1e-8):
    """SM3-II on one leaf (any rank): the cover is one set per index of each axis. nu' = min over
    the covering sets of mu + g^2; mu_r = max of nu' over its set; then optax's momentum."""
    shape = gs[0].shape
    ndim = len(shape)
    mus = [np.zeros(shape if ndim < 2 else (d,)) for d in (shape if ndim >= 2 else [None])]
    nu, out = np.zeros(shape, gs[0].dtype), []
    for g in gs:
        if ndim < 2:
            acc = mus[0] + np.abs(g) ** 2
            mus = [acc]
        else:
            covers = [mu.reshape([-1 if a == r else 1 for a in range(ndim)]) for r, mu in enumerate(mus)]
            acc = np.minimum.reduce(np.broadcast_arrays(*covers)) + np.abs(g) ** 2
            mus = [acc.max(axis=tuple(a for a in range(ndim) if a != r)) for r in range(ndim)]
        step = np.where(acc == 0, 0, g / np.sqrt(np.where(acc == 0, 1, acc) + eps))
        nu = b1 * nu + (1 - b1) * step
        out.append(nu)
    return np.stack(out)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)], ids=str)
def test_scale_by_sm3_matches_the_paper(shape):
    rng = np.random.default_rng(len(shape))
    grads = {"w": rng.normal(size=(STEPS, *shape)) * rng.uniform(0.1, 3.0, size=(STEPS, *shape))}
    ours = run(gradtx.scale_by_sm3(), grads)[0]["w"]
    np.testing.assert_allclose(ours, sm3_np(list(grads["w"])), rtol=1e-12, atol=1e-15)


def test_complex_params_keep_a_real_cover_and_a_complex_momentum():
    rng = np.random.default_rng(7)
    g = rng.normal(size=(STEPS, 3, 2)) + 1j * rng.normal(size=(STEPS, 3, 2))
    updates, state = run(gradtx.scale_by_sm3(), {"w": g})
    assert state.nu["w"].dtype == jnp.complex128 and all(m.dtype == jnp.float64 for m in state.mu["w"])
    np.testing.assert_allclose(updates["w"], sm3_np(list(g)), rtol=1e-12, atol=1e-15)


def test_the_statistics_take_a_vector_an_axis():
    params = {"w": jnp.zeros((3, 4, 5)), "b": jnp.zeros(7), "s": jnp.zeros(())}
    state = gradtx.scale_by_sm3().init(params)
    assert [m.shape for m in state.mu["w"]] == [(3,), (4,), (5,)]
    assert [m.shape for m in state.mu["b"]] == [(7,)] and [m.shape for m in state.mu["s"]] == [()]


def test_nan_gradients_stay_visible_in_later_updates():
    tx = gradtx.scale_by_sm3()
    state = tx.init({"w": jnp.zeros((2, 2))})
    u, state = tx.update({"w": jnp.asarray([[1.0, jnp.nan], [2.0, 3.0]])}, state)
    u, state = tx.update({"w": jnp.ones((2, 2))}, state)
    u = np.asarray(u["w"])
    # The NaN entered row 0's and column 1's statistics, so every coordinate they cover is NaN now.
    assert np.isnan(u[0, 0]) and np.isnan(u[0, 1]) and np.isnan(u[1, 1]) and np.isfinite(u[1, 0])


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"^sm3: momentum must be in \[0, 1\), got 1.0"):
        gradtx.sm3(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"^scale_by_sm3: b2 must be in \[0, 1\], got 1.5"):
        gradtx.scale_by_sm3(b2=1.5)
