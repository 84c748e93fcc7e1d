"""L-BFGS (gradtx/transforms/lbfgs.py) against optax, torch.optim.LBFGS and scipy, in float64.

References and tolerances:
- optax.lbfgs / optax.scale_by_lbfgs (0.2.8), float64, rtol 1e-9: 30 steps on a multi-leaf problem
  (a Rosenbrock vector and a coupled quadratic matrix) with the zoom line search, with the
  backtracking one, with memory 3 and gamma = 1, and with a learning-rate schedule and no line
  search; gradtx's run goes through make_step (and value_and_grad_from_state), optax's through
  jax.value_and_grad by hand. Float32: gradtx's distance to optax's float64 run is at most optax's
  own float32 distance (x 1.05).
- torch.optim.LBFGS(line_search_fn="strong_wolfe", lr=1, history_size=m), float64, rtol 1e-10, on a
  least-squares problem whose first gradient has |g|_1 <= 1: the same iterates, step by step, with
  `lbfgs(memory_size=m, linesearch=scale_by_zoom_linesearch(25, initial_guess_strategy="one",
  approx_dec_rtol=None))`. Why these settings: torch's first step is -g min(1, 1/|g|_1) and optax's
  -g min(1, 1/|g|_2), equal for |g|_1 <= 1; both line searches try eta = 1 first and accept it under
  the same strong Wolfe test (c1 = 1e-4, c2 = 0.9) when the Hager-Zhang condition is off
  (approx_dec_rtol=None); here eta = 1 passes at every step, so the two interpolations (which
  differ) never run. The residual: torch drops a pair with <y, s> <= 1e-10, gradtx (and optax)
  keep it; the iterates agree up to the first such pair, and both then reach the least-squares
  solution (numpy.linalg.lstsq) to 1e-8. Iterations to max|g| <= 1e-6: equal.
- torch (same settings, default strong Wolfe) and scipy's L-BFGS-B (maxcor = m) on the Rosenbrock
  function from (-1.2, 1): the three line searches differ (optax's zoom, torch's cubic
  bracketing, Moré-Thuente), so the trajectories do; all three reach (1, 1) to 1e-6, and gradtx's
  iterations to max|g| <= 1e-8 are within 25% of each reference's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
import torch

import gradtx
from gradtx.testing import assert_trees_all_close

# ---------------------------------------------------------------------------------------------------
# The multi-leaf problem for the optax comparison

M = jnp.asarray([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]], jnp.float64)


def loss(p):
    x = p["x"]
    rosen = jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    y = p["y"]
    return rosen + 0.5 * jnp.sum(y * (M.astype(y.dtype) @ y)) + jnp.sum(y[0]) + 0.1 * jnp.sum(y**4)


def start(dtype=jnp.float64):
    return {
        "x": jnp.asarray([-1.2, 1.0, -0.5, 0.3], dtype),
        "y": jnp.asarray([[1.0, -2.0], [0.5, 0.0], [0.3, 1.5]], dtype),
    }


def optax_run(tx, steps, dtype=jnp.float64):
    """optax's documented loop: value_and_grad, update with value, grad, value_fn; apply."""

    @jax.jit
    def step(p, s):
        value, grad = jax.value_and_grad(loss)(p)
        u, s = tx.update(grad, s, p, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(p, u), s

    p = start(dtype)
    s, out = tx.init(p), []
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(steps):
            p, s = step(p, s)
            out.append(p)
    return out


def gradtx_run(tx, steps, dtype=jnp.float64, from_state=False):
    """make_step, or (from_state) value_and_grad_from_state and the update written by hand."""
    if from_state:
        value_and_grad = gradtx.value_and_grad_from_state(loss)

        @jax.jit
        def step(p, s):
            value, grad = value_and_grad(p, state=s)
            u, s = tx.update(grad, s, p, value=value, grad=grad, value_fn=loss)
            return gradtx.apply_updates(p, u), s, value

    else:
        step = gradtx.make_step(tx, loss, donate=False)
    p = start(dtype)
    s, out = tx.init(p), []
    for _ in range(steps):
        p, s, _ = step(p, s)
        out.append(p)
    return out


def decay(count):
    """0.05 * 0.7^(count / 5) in float64, written here: optax's exponential_decay returns float32."""
    return 0.05 * 0.7 ** (count.astype(jnp.float64) / 5)


CONFIGS = {
    "zoom": (lambda m: m.lbfgs(), False),
    "backtracking": (lambda m: m.lbfgs(linesearch=m.scale_by_backtracking_linesearch(20)), False),
    "memory-3-no-scaling-from-state": (lambda m: m.lbfgs(memory_size=3, scale_init_precond=False), True),
    "schedule-no-linesearch": (
        lambda m: m.lbfgs(decay, memory_size=5, linesearch=None),
        False,
    ),
}


@functools.cache
def optax_reference(name: str) -> list:
    """optax's float64 run of CONFIGS[name], computed once for the tests that compare with it."""
    with jax.numpy_dtype_promotion("standard"):
        return optax_run(CONFIGS[name][0](optax), 30)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float64_trajectory_equals_optax(name):
    make, from_state = CONFIGS[name]
    ours = gradtx_run(make(gradtx), 30, from_state=from_state)
    theirs = optax_reference(name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-12, what=name)
    assert float(loss(ours[-1])) < 0.5 * float(loss(start()))  # it did optimize


def test_float32_no_further_from_the_float64_run_than_optax_float32():
    steps = 8  # before the float32 line searches branch on rounding
    exact = optax_reference("zoom")[:steps]
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax_run(optax.lbfgs(), steps, jnp.float32)
    ours = gradtx_run(gradtx.lbfgs(), steps, jnp.float32)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(ours))

    def distance(run):
        return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b)))) for a, b in zip(
            jax.tree.leaves(run), jax.tree.leaves(exact), strict=True))  # fmt: skip

    assert distance(ours) <= 1.05 * distance(theirs) + 1e-7, (distance(ours), distance(theirs))


# ---------------------------------------------------------------------------------------------------
# torch.optim.LBFGS and scipy


def least_squares(seed: int = 5, n: int = 30, d: int = 5):
    """A x ~ b with singular values 1..2, scaled so that |grad f(0)|_1 = 0.9."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = u @ np.diag(np.linspace(1.0, 2.0, d)) @ v.T
    b = rng.normal(size=n)
    return a, b, 0.9 / np.abs(a.T @ b).sum()


def torch_lbfgs(f_torch, x0: np.ndarray, m: int, steps: int):
    """torch.optim.LBFGS one iteration per step() (max_iter=1), its own stopping tests off."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [x], lr=1, max_iter=1, max_eval=25, history_size=m, line_search_fn="strong_wolfe",
        tolerance_grad=0.0, tolerance_change=0.0,
    )  # fmt: skip

    def closure():
        opt.zero_grad()
        value = f_torch(x)
        value.backward()
        return value

    iterates, grads = [x0.copy()], []
    for _ in range(steps):
        closure()
        grads.append(x.grad.numpy().copy())
        opt.step(closure)
        iterates.append(x.detach().numpy().copy())
    return np.asarray(iterates), np.asarray(grads)


def gradtx_iterates(tx, f, x0: np.ndarray, steps: int):
    step = gradtx.make_step(tx, f, donate=False)
    w = jnp.asarray(x0)
    state, iterates, grads, evals = tx.init(w), [x0.copy()], [], []
    for _ in range(steps):
        grads.append(np.asarray(jax.grad(f)(w)))
        w, state, _ = step(w, state)
        iterates.append(np.asarray(w))
        evals.append(int(state[2].info.num_linesearch_steps))
    return np.asarray(iterates), np.asarray(grads), evals


def first_below(grads: np.ndarray, tol: float) -> int:
    """The first iteration whose gradient has max |g| <= tol."""
    return int(np.argmax(np.max(np.abs(grads), axis=1) <= tol))


def test_least_squares_iterates_equal_torch_strong_wolfe():
    a, b, c = least_squares()
    m, steps = 5, 14
    f = lambda w: c * 0.5 * jnp.sum((jnp.asarray(a) @ w - jnp.asarray(b)) ** 2)
    ta, tb = torch.tensor(a), torch.tensor(b)
    theirs, their_grads = torch_lbfgs(lambda x: c * 0.5 * torch.sum((ta @ x - tb) ** 2), np.zeros(5), m, steps)
    linesearch = gradtx.scale_by_zoom_linesearch(25, initial_guess_strategy="one", approx_dec_rtol=None)
    ours, our_grads, evals = gradtx_iterates(gradtx.lbfgs(memory_size=m, linesearch=linesearch), f, np.zeros(5), steps)
    # The first pair torch drops (<y, s> <= 1e-10): up to the iterate it changes, the runs are one.
    ys = [float(np.dot(their_grads[k + 1] - their_grads[k], theirs[k + 1] - theirs[k])) for k in range(steps - 1)]
    dropped = next(k for k, v in enumerate(ys) if v <= 1e-10)
    assert dropped >= 7, ys  # at least 8 iterations compared
    assert evals[: dropped + 1] == [1] * (dropped + 1)  # eta = 1 accepted at once: no interpolation ran
    np.testing.assert_allclose(ours[: dropped + 2], theirs[: dropped + 2], rtol=1e-10, atol=1e-14)
    assert first_below(our_grads, 1e-6) == first_below(their_grads, 1e-6) <= dropped
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    np.testing.assert_allclose(ours[-1], solution, atol=1e-8)
    np.testing.assert_allclose(theirs[-1], solution, atol=1e-8)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_rosenbrock_iterations_and_minimizer_against_torch_and_scipy():
    x0, m, tol, steps = np.asarray([-1.2, 1.0]), 10, 1e-8, 60
    ours, our_grads, _ = gradtx_iterates(gradtx.lbfgs(memory_size=m), rosenbrock, x0, steps)
    theirs, their_grads = torch_lbfgs(
        lambda x: torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), x0, m, steps
    )
    ours_n, torch_n = first_below(our_grads, tol), first_below(their_grads, tol)
    result = scipy.optimize.minimize(
        lambda v: float(rosenbrock(jnp.asarray(v))), x0, jac=lambda v: np.asarray(jax.grad(rosenbrock)(jnp.asarray(v))),
        method="L-BFGS-B", options=dict(maxcor=m, gtol=tol, ftol=0.0, maxiter=500),
    )  # fmt: skip
    assert result.success and np.max(np.abs(result.jac)) <= tol
    for n in (torch_n, result.nit):
        assert n > 0 and abs(ours_n - n) <= 0.25 * n, (ours_n, torch_n, result.nit)
    for x in (ours[ours_n], theirs[torch_n], result.x):
        np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# make_step, vmap, NaN, errors


def test_make_step_passes_the_loss_with_aux_and_integer_leaves():
    """has_aux: the line search sees the loss, not (loss, aux); an integer leaf reaches the loss
    inside the line search's trial steps (value_fn puts it back)."""
    params = {"w": jnp.asarray([3.0, -1.0]), "n": jnp.asarray(2, jnp.int32)}
    f = lambda p: jnp.sum((p["w"] - p["n"].astype(jnp.float64)) ** 2) + jnp.sum(p["w"] ** 4) / 10
    tx = gradtx.lbfgs()
    leaves = jax.tree.leaves(tx.init(params))
    assert len({x.unsafe_buffer_pointer() for x in leaves}) == len(leaves)  # none shared: each can be donated
    plain = gradtx.make_step(tx, f, donate=False)
    with_aux = gradtx.make_step(tx, lambda p: (f(p), {"n": p["n"]}), has_aux=True, donate=False)
    a = b = params
    sa = sb = tx.init(params)
    for _ in range(12):
        a, sa, _ = plain(a, sa)
        b, sb, (_, aux) = with_aux(b, sb)
    assert_trees_all_close(b, a, rtol=0, what="has_aux")
    assert int(a["n"]) == 2 and int(aux["n"]) == 2
    assert float(jnp.abs(jax.grad(lambda w: f({"w": w, "n": params["n"]}))(a["w"])).max()) < 1e-8  # converged


def test_vmap_over_starting_points_equals_separate_runs():
    tx = gradtx.lbfgs(memory_size=4)

    def run(w):
        step = lambda carry, _: (gradtx.make_step(tx, rosenbrock, donate=False)(*carry)[:2], None)
        return jax.lax.scan(step, (w, tx.init(w)), None, length=12)[0][0]

    starts = jnp.asarray([[-1.2, 1.0], [0.5, 0.5], [2.0, -1.0]])
    batched = jax.jit(jax.vmap(run))(starts)
    separate = jax.jit(run)
    for i in range(3):
        np.testing.assert_allclose(batched[i], separate(starts[i]), rtol=1e-12)


def test_nan_gradients_give_nan_updates_and_stay_in_the_state():
    tx = gradtx.scale_by_lbfgs(memory_size=3)
    w = jnp.asarray([1.0, 2.0])
    state = tx.init(w)
    u, state = tx.update(jnp.asarray([0.5, -1.0]), state, w)
    assert bool(jnp.all(jnp.isfinite(u)))
    u, state = tx.update(jnp.asarray([jnp.nan, 1.0]), state, w + u)
    assert bool(jnp.all(jnp.isnan(u)))
    u, _ = tx.update(jnp.asarray([0.5, -1.0]), state, w)  # finite again, but the memory holds the NaN
    assert bool(jnp.all(jnp.isnan(u)))
    # Through the whole optimizer: a NaN loss or gradient at params gives a NaN step, not a zero one.
    opt, f = gradtx.lbfgs(), lambda v: jnp.sum(v**2)
    for value, grad in ((jnp.nan, 2 * w), (f(w), jnp.asarray([jnp.nan, 4.0]))):
        u, _ = jax.jit(opt.update)(grad, opt.init(w), w, value=value, grad=grad, value_fn=jax.tree_util.Partial(f))
        assert bool(jnp.all(jnp.isnan(u))), u


def test_a_missing_loss_is_named_when_traced():
    tx, w = gradtx.lbfgs(), jnp.ones(2)
    f = lambda v: jnp.sum(v**2)
    step = jax.jit(lambda g, s, p, **kw: tx.update(g, s, p, **kw))
    with pytest.raises(TypeError, match=r"scale_by_zoom_linesearch: update was called without the keyword arguments"
                       r" value, grad, value_fn\. .*value_fn=loss_fn.*gradtx\.make_step\(tx, loss_fn\)"):  # fmt: skip
        step(w, tx.init(w), w)
    with pytest.raises(TypeError, match=r"without the keyword argument grad\. "):
        step(w, tx.init(w), w, value=f(w), value_fn=jax.tree_util.Partial(f))
    with pytest.raises(ValueError, match="scale_by_lbfgs: update needs params"):
        tx.update(w, tx.init(w), None, value=1.0, grad=w, value_fn=f)
    with pytest.raises(ValueError, match=r"lbfgs: memory_size must be in \[1, inf\), got 0"):
        gradtx.lbfgs(memory_size=0)
    with pytest.raises(TypeError, match=r"lbfgs: memory_size must be an integer in .*, got 2\.5"):
        gradtx.lbfgs(memory_size=2.5)
    with pytest.raises(TypeError, match="lbfgs: linesearch must be a gradient transformation or None"):
        gradtx.lbfgs(linesearch="zoom")
    with pytest.raises(ValueError, match="lbfgs: learning_rate must be"):
        gradtx.lbfgs(learning_rate=-1.0)
