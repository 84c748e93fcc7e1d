"""Adam-atan2 against the adam-atan2-pytorch package 0.4.1 (`adam_atan2_pytorch.AdamAtan2`), in float64.

40 steps of tests/torch_trajectories.py's model (matrices, a batch of matrices, a bias, a scalar).
rtol 1e-10 (atol 1e-14); the largest relative difference measured, over every leaf and step, was
4.0e-13 with the defaults and 2.1e-13 with the other settings (float64 rounding).
`adam_atan2(lr, b1, b2, a, b, weight_decay)` reproduces AdamAtan2(lr, betas=(b1, b2), a, b,
weight_decay) (decoupled_wd=False, its default; no cautious factor, no regenerative
regularization) at every setting. float32: gradtx's path is no farther from the float64 truth
than the package's float32 path.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.torch_trajectories import (
    assert_float32_no_less_accurate,
    assert_paths_equal,
    max_relative_error,
    run_gradtx,
    run_torch,
)

adam_atan2_pytorch = pytest.importorskip("adam_atan2_pytorch")
STEPS = 40

CASES = {
    "defaults": (lambda: gradtx.adam_atan2(1e-2), lambda ps: adam_atan2_pytorch.AdamAtan2(ps, lr=1e-2)),
    "betas,a,b,decay": (
        lambda: gradtx.adam_atan2(1e-2, b1=0.8, b2=0.95, a=1.0, b=2.0, weight_decay=0.1),
        lambda ps: adam_atan2_pytorch.AdamAtan2(ps, lr=1e-2, betas=(0.8, 0.95), a=1.0, b=2.0, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_adam_atan2_pytorch(name):
    ours, theirs = CASES[name]
    reference = run_torch(theirs, STEPS)
    path = run_gradtx(ours(), STEPS)
    assert_paths_equal(path, reference, f"AdamAtan2 {name}")
    assert max_relative_error(path, reference) < 1e-10


def test_float32_no_less_accurate_than_adam_atan2_pytorch():
    ours, theirs = CASES["defaults"]
    truth = run_torch(theirs, STEPS)
    assert_float32_no_less_accurate(
        run_gradtx(ours(), STEPS, jnp.float32), run_torch(theirs, STEPS, "float32"), truth, "AdamAtan2"
    )


def test_bounded_where_adam_divides_by_eps_and_adams_ratio_where_small():
    tx = gradtx.scale_by_adam_atan2(a=1.0, b=1.0)
    g = {"w": jnp.asarray([0.0, 1e-30, -3.0])}
    u, _ = tx.update(g, tx.init(g))
    # step 1: m^ = g, sqrt(v^) = |g|: atan2(g, |g|) = sign(g) pi / 4, and 0 at g = 0 (no 0 / 0)
    np.testing.assert_allclose(u["w"], [0.0, np.pi / 4, -np.pi / 4], rtol=1e-15)
    big_b = gradtx.scale_by_adam_atan2(a=1.0, b=1e6)  # m^ / (b sqrt(v^)) small: atan2 is the ratio
    u, _ = big_b.update(g, big_b.init(g))
    np.testing.assert_allclose(u["w"], [0.0, 1e-6, -1e-6], rtol=1e-12)


def test_complex_params_keep_the_phase():
    tx = gradtx.scale_by_adam_atan2(a=1.0)
    g = {"z": jnp.asarray([3 + 4j, 0j], jnp.complex128)}
    u, state = tx.update(g, tx.init(g))
    assert state.nu["z"].dtype == jnp.float64 and u["z"].dtype == jnp.complex128
    np.testing.assert_allclose(u["z"], [(3 + 4j) / 5 * np.pi / 4, 0], rtol=1e-15)
