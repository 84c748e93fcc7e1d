"""CAME against the authors' package, came-pytorch 0.1.3 (`came_pytorch.CAME`), in float64.

40 steps of tests/torch_trajectories.py's model: two matrices and a batch of matrices (factored:
the row and column statistics of v and of the instability S), a bias and a scalar (unfactored: v
whole, the step m itself). rtol 1e-10 (atol 1e-14); the largest relative difference measured, over
every leaf and step, was 1.7e-12 with the defaults and 5.7e-13 with the other settings (float64
rounding). `came(lr, b1, b2, b3, eps1, eps2, clipping_threshold, weight_decay)` reproduces
CAME(lr, betas=(b1, b2, b3), eps=(eps1, eps2), clip_threshold, weight_decay) at every setting.
float32: gradtx's path is no farther from the float64 truth than the package's float32 path.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.torch_trajectories import (
    INIT,
    assert_float32_no_less_accurate,
    assert_paths_equal,
    max_relative_error,
    run_gradtx,
    run_torch,
)

came_pytorch = pytest.importorskip("came_pytorch")
STEPS = 40

CASES = {
    "defaults": (lambda: gradtx.came(1e-3), lambda ps: came_pytorch.CAME(ps, lr=1e-3)),
    "betas,eps,clip,decay": (
        lambda: gradtx.came(
            2e-3, b1=0.8, b2=0.99, b3=0.999, eps1=1e-20, eps2=1e-12, clipping_threshold=0.5, weight_decay=0.1
        ),
        lambda ps: came_pytorch.CAME(
            ps, lr=2e-3, betas=(0.8, 0.99, 0.999), eps=(1e-20, 1e-12), clip_threshold=0.5, weight_decay=0.1
        ),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_came_pytorch(name):
    ours, theirs = CASES[name]
    reference = run_torch(theirs, STEPS)
    path = run_gradtx(ours(), STEPS)
    assert_paths_equal(path, reference, f"CAME {name}")
    assert max_relative_error(path, reference) < 1e-10


def test_float32_no_less_accurate_than_came_pytorch():
    ours, theirs = CASES["defaults"]
    truth = run_torch(theirs, STEPS)
    assert_float32_no_less_accurate(
        run_gradtx(ours(), STEPS, jnp.float32), run_torch(theirs, STEPS, "float32"), truth, "CAME"
    )


def test_matrices_keep_a_row_and_a_column_statistic():
    state = gradtx.scale_by_came().init({k: jnp.asarray(v) for k, v in INIT.items()})
    shapes = {k: (state.v_row[k].shape, state.v_col[k].shape, state.v[k].shape) for k in INIT}
    assert shapes["w1"] == ((6,), (3,), (1,)) and shapes["k"] == ((2, 3), (2, 5), (1,))
    assert shapes["b"] == ((1,), (1,), (4,)) and shapes["s"] == ((1,), (1,), ())
    assert state.s_row["w2"].shape == (4,) and state.s_col["w2"].shape == (6,) and state.s_row["b"].shape == (1,)
    # min_dim_size_to_factor: a 6 x 3 matrix is kept whole once 3 is below it (as Adafactor's rule)
    state = gradtx.scale_by_came(min_dim_size_to_factor=4).init({"w1": jnp.asarray(INIT["w1"])})
    assert state.v["w1"].shape == (6, 3) and state.v_row["w1"].shape == (1,)


def test_a_column_vector_factored_is_its_unfactored_second_moment():
    """r c^T / mean(r) of an n x 1 matrix is G2 itself: the factored and whole v^ give one u (before
    the instability, which the whole leaf does not have: no clipping, b1 = 0 makes out = u there)."""
    g = {"w": jnp.asarray(np.linspace(-1, 2, 5).reshape(5, 1))}
    for factored in (True, False):
        tx = gradtx.scale_by_came(b1=0.0, clipping_threshold=None, factored=factored)
        u, _ = tx.update(g, tx.init(g))
        expected = g["w"] / np.sqrt(0.001 * (g["w"] ** 2 + 1e-30))
        if factored:  # b1 = 0: m = u, so U = eps2 everywhere and S^ = (1 - b3) eps2 after one step
            expected = expected / np.sqrt(1e-4 * 1e-16)
        np.testing.assert_allclose(u["w"], expected, rtol=1e-12)
