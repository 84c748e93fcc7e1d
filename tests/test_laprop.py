"""LaProp against pytorch_optimizer 4.1.0's `LaProp` and a NumPy loop of the paper's Algorithm 1, in float64.

40 steps of tests/torch_trajectories.py's model (matrices, a batch of matrices, a bias, a scalar).

- pytorch_optimizer: rtol 1e-10 (atol 1e-14), largest relative difference measured 1.6e-12 with
  the defaults, 3.1e-14 with b1 > b2 (float64 rounding). Its LaProp adds eps and a fixed 1e-15
  inside the root before v's bias correction, which is `laprop(lr, b1, b2, eps, eps_root=1e-15,
  eps_hat=True)`; it is run with foreach=False: its default foreach path keeps each step's
  1 / (1 - b1^t) in a float32 tensor (its `_get_step_sizes`), 6e-8 relative off in float64 runs
  (measured: 1.7e-9 in the params here).
- The paper's form (the default, eps after the bias correction): a NumPy loop of the equations,
  rtol 1e-10; it differs from pytorch_optimizer's by 2e-8 in the params here (the eps-hat placement).
float32: gradtx's path is no farther from the float64 truth than pytorch_optimizer's float32 path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.torch_trajectories import (
    INIT,
    X,
    Y,
    assert_float32_no_less_accurate,
    assert_paths_equal,
    loss,
    max_relative_error,
    run_gradtx,
    run_torch,
)

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
STEPS = 40

CASES = {
    "defaults": (
        lambda: gradtx.laprop(1e-2, eps=1e-15, eps_root=1e-15, eps_hat=True),
        lambda ps: pytorch_optimizer.LaProp(ps, lr=1e-2, foreach=False),
    ),
    "betas,eps": (  # b1 > b2 is allowed: the momentum is of already-normalized gradients
        lambda: gradtx.laprop(3e-3, b1=0.95, b2=0.9, eps=1e-6, eps_root=1e-15, eps_hat=True),
        lambda ps: pytorch_optimizer.LaProp(ps, lr=3e-3, betas=(0.95, 0.9), eps=1e-6, foreach=False),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_pytorch_optimizer_laprop(name):
    ours, theirs = CASES[name]
    reference = run_torch(theirs, STEPS)
    path = run_gradtx(ours(), STEPS)
    assert_paths_equal(path, reference, f"LaProp {name}")
    assert max_relative_error(path, reference) < 1e-10


def test_float32_no_less_accurate_than_pytorch_optimizer():
    ours, theirs = CASES["defaults"]
    truth = run_torch(theirs, STEPS)
    assert_float32_no_less_accurate(
        run_gradtx(ours(), STEPS, jnp.float32), run_torch(theirs, STEPS, "float32"), truth, "LaProp"
    )


def _papers_laprop(lr, b1, b2, eps, steps) -> dict:
    """Ziyin et al. (2020), Algorithm 1, in NumPy: n <- b2 n + (1 - b2) g^2; m <- b1 m + (1 - b1) g /
    (sqrt(n / (1 - b2^t)) + eps); W <- W - lr_t m / (1 - b1^t), lr_t = lr(t - 1)."""
    grad = jax.jit(jax.grad(lambda p: loss(p, jnp.tanh, jnp.sin, jnp.asarray(X), jnp.asarray(Y))))
    w = {k: np.asarray(v, np.float64) for k, v in INIT.items()}
    m, n = ({k: np.zeros_like(v) for k, v in w.items()} for _ in range(2))
    path: dict = {k: [] for k in w}
    for t in range(1, steps + 1):
        g = {k: np.asarray(v) for k, v in grad(w).items()}
        for k in w:
            n[k] = b2 * n[k] + (1 - b2) * g[k] ** 2
            m[k] = b1 * m[k] + (1 - b1) * g[k] / (np.sqrt(n[k] / (1 - b2**t)) + eps)
            w[k] = w[k] - lr(t - 1) * m[k] / (1 - b1**t)
            path[k].append(w[k])
    return {k: np.stack(v) for k, v in path.items()}


def test_default_form_is_the_papers_algorithm_also_with_a_schedule():
    """The rate multiplies m^ at each step, outside the momentum (the paper's form; the authors' code
    weighs each normalized gradient in m by its step's rate, which differs once the rate changes)."""
    reference = _papers_laprop(lambda k: 1e-2 * 0.9**k, 0.9, 0.999, 1e-8, STEPS)
    tx = gradtx.laprop(gradtx.exponential_decay(1e-2, 1, 0.9), eps=1e-8)
    assert_paths_equal(run_gradtx(tx, STEPS), reference, "LaProp, the paper's form")
