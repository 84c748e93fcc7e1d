"""gradtx.rollback against a hand-computed sequence, eagerly and under jit, and its dtypes.

The sequence: SGD with learning rate 1 on one parameter w (so each good step moves w by -g), the
gradients and losses given by hand, factor 2, decay 0.5 (so the debiased average of the good
losses is A_1 = L_1, A_2 = A_1 + (L_2 - A_1) 0.5 / 0.75, A_3 = A_2 + (L_3 - A_2) 0.5 / 0.875, ...).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close

NAN = float("nan")
# loss at w_k, then (w_{k+1}, rollbacks, consecutive, rolled_back, average, n) written out by hand
SEQUENCE = [
    # loss  w_next  total consecutive back  average            n
    (4.0,   -1.0,   0,    0,          False, 4.0,               1),  # first loss: good; w <- 0 - 1
    (2.0,   -2.0,   0,    0,          False, 4 - 2 * 2 / 3,     2),  # 2 <= 2 x 4: good
    (100.0, -1.0,   1,    1,          True,  4 - 2 * 2 / 3,     2),  # spike: back to w = -1
    (3.0,   -2.0,   1,    1,          False, None,              3),  # restored: step; consecutive kept
    (NAN,   -1.0,   2,    2,          True,  None,              3),  # not finite: back to -1
    (3.0,   -2.0,   2,    2,          False, None,              4),  # restored: step
    (50.0,  -3.0,   2,    0,          False, 50.0,              1),  # spike, but 2 rollbacks already: give up
    (60.0,  -4.0,   2,    0,          False, 50 + 10 * 0.5 / 0.75, 2),  # 60 <= 2 x 50: good
]  # fmt: skip


def _averages() -> list[float]:
    out, a, n = [], 0.0, 0
    for loss, _, _, _, _, given, count in SEQUENCE:
        if given is not None and (n == 0 or count == 1):
            a, n = given, count
        elif count > n:  # a good loss joined the average
            n = count
            a = a + (loss - a) * 0.5 / (1 - 0.5**n)
        out.append(a)
    return out


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_rollback_follows_the_hand_computed_sequence(jit):
    tx = gradtx.rollback(gradtx.sgd(1.0), factor=2.0, decay=0.5, max_consecutive_rollbacks=2)
    update = jax.jit(tx.update) if jit else tx.update
    w = jnp.asarray(0.0, jnp.float64)
    state = tx.init(w)
    for (loss, w_next, total, consecutive, back, _, n), average in zip(SEQUENCE, _averages(), strict=True):
        u, state = update(jnp.asarray(1.0, jnp.float64), state, w, loss=jnp.asarray(loss, jnp.float64))
        w = gradtx.apply_updates(w, u)
        assert float(w) == w_next
        assert (int(state.rollbacks), int(state.consecutive), bool(state.rolled_back)) == (total, consecutive, back)
        assert int(state.num_losses) == n
        assert math.isclose(float(state.loss_average), average, rel_tol=1e-15)


def test_rollback_restores_the_inner_state_the_good_params_were_stepped_from():
    tx = gradtx.rollback(gradtx.sgd(0.1, momentum=0.9), factor=1.5)
    inner = gradtx.sgd(0.1, momentum=0.9)
    params = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
    grads = [jax.tree.map(lambda x, k=k: (k + 1.0) * jnp.ones_like(x), params) for k in range(4)]
    state, inner_state, p = tx.init(params), inner.init(params), params
    u, state = tx.update(grads[0], state, p, loss=1.0)  # good: one momentum step
    u_ref, inner_after_0 = inner.update(grads[0], inner_state, p)
    assert_trees_all_close(u, u_ref, rtol=0)
    p1 = gradtx.apply_updates(p, u)
    u, state = tx.update(grads[1], state, p1, loss=1.2)  # good (<= 1.5): saved p1 with inner_after_0
    p2 = gradtx.apply_updates(p1, u)
    u, state = tx.update(grads[2], state, p2, loss=9.0)  # spike: back to p1 and inner_after_0
    assert_trees_all_close(gradtx.apply_updates(p2, u), p1, rtol=1e-15)
    assert_trees_all_close(state.inner_state, inner_after_0, rtol=0)
    # The next step from p1 is the inner optimizer's step from (p1, inner_after_0) with the new gradient.
    u, state = tx.update(grads[3], state, p1, loss=1.1)
    u_ref, _ = inner.update(grads[3], inner_after_0, p1)
    assert_trees_all_close(u, u_ref, rtol=0)


def test_rollback_in_a_scanned_training_loop_undoes_a_spike():
    """A quadratic trained by SGD; one corrupted batch (gradient x 1e3) throws it off; rollback
    lands back where the run without the corrupted batch would be, one batch later."""

    def loss_fn(w, target):
        return jnp.sum((w - target) ** 2)

    targets = jnp.ones((12, 3)) + 0.01 * jnp.arange(12.0)[:, None]
    scale = jnp.ones(12).at[5].set(1e3)  # batch 5's gradient is corrupted

    def train(tx):
        def step(carry, xs):
            w, state = carry
            target, s = xs
            loss, g = jax.value_and_grad(loss_fn)(w, target)
            u, state = tx.update(g * s, state, w, loss=loss)
            return (gradtx.apply_updates(w, u), state), loss

        (w, state), losses = jax.lax.scan(step, (jnp.zeros(3), tx.init(jnp.zeros(3))), (targets, scale))
        return w, state, losses

    _, state, losses = jax.jit(train, static_argnums=0)(gradtx.rollback(gradtx.sgd(0.2)))
    assert int(state.rollbacks) == 1 and not bool(state.rolled_back)
    _, _, plain = jax.jit(train, static_argnums=0)(gradtx.sgd(0.2))
    assert float(jnp.max(plain)) > 1e3 and float(jnp.max(losses)) > 1e3  # the spike is seen once
    assert float(losses[-1]) < 1e-2 and float(plain[-1]) > 1.0  # ... and undone


def test_rollback_errors_name_the_wrapper_and_the_keyword():
    tx = gradtx.rollback(gradtx.sgd(0.1))
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match=r"rollback: update needs the loss .* loss=loss"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match="rollback: update needs params"):
        tx.update(params, tx.init(params), None, loss=1.0)
    with pytest.raises(ValueError, match="rollback: loss must be a scalar"):
        tx.update(params, tx.init(params), params, loss=jnp.ones(2))
    with pytest.raises(ValueError, match=r"rollback: factor must be in \[1, inf\), got 0.5"):
        gradtx.rollback(gradtx.sgd(0.1), factor=0.5)
    with pytest.raises(TypeError, match="max_consecutive_rollbacks must be an integer"):
        gradtx.rollback(gradtx.sgd(0.1), max_consecutive_rollbacks=2.5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64], ids=["f32", "bf16", "f64"])
def test_rollback_keeps_dtypes_and_averages_in_the_params_compute_dtype(dtype):
    tx = gradtx.rollback(gradtx.adam(1e-3), factor=2.0)
    params = {"w": jnp.ones((2, 3), dtype)}
    state = tx.init(params)
    want = jnp.float64 if dtype == jnp.float64 else jnp.float32
    assert state.loss_average.dtype == want and state.good_params["w"].dtype == dtype
    u, new = jax.jit(tx.update)(params, state, params, loss=jnp.asarray(2.0, jnp.float32))
    assert u["w"].dtype == dtype
    assert jax.tree.map(lambda x: x.dtype, new) == jax.tree.map(lambda x: x.dtype, state)
    # A negative loss (a log-likelihood): spikes are judged against A + (factor - 1) |A|.
    for loss, back in ((-10.0, False), (-9.0, False), (5.0, True)):
        _, state = tx.update(params, state, params, loss=loss)
        assert bool(state.rolled_back) is back


def test_rollback_under_vmap_over_learning_rates():
    def run(lr):
        tx = gradtx.rollback(gradtx.sgd(lr), factor=2.0)
        w, state = jnp.asarray(3.0), tx.init(jnp.asarray(3.0))
        for _ in range(6):
            loss, g = jax.value_and_grad(lambda w: w**2)(w)
            u, state = tx.update(g, state, w, loss=loss)
            w = gradtx.apply_updates(w, u)
        return w, state.rollbacks

    ws, rollbacks = jax.jit(jax.vmap(run))(jnp.asarray([0.1, 1.5]))
    # lr 1.5 overshoots (w -> -2 w, the loss x 4 > 2 x average): every other step rolls back
    assert list(np.asarray(rollbacks)) == [0, 3] and abs(float(ws[0])) < 1.0
