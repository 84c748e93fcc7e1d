"""The line searches (gradtx/transforms/linesearch.py, zoom.py) alone, after a gradient step.

References and tolerances:
- optax.scale_by_zoom_linesearch / optax.scale_by_backtracking_linesearch (0.2.8), float64, rtol
  1e-9: 15 steps of chain(sgd(1.0), line search) on an ill-conditioned quadratic, the Rosenbrock
  function and the steep Zakharov function, with the defaults and with the options (initial guess,
  maximum step, Armijo only, no curvature condition, store_grad, infinite increase factor,
  tolerances). Compared: the params, the step sizes, the values and the evaluations per search.
- The conditions themselves, evaluated here with jax.grad: the zoom's step meets the strong Wolfe
  conditions; the backtracking step is the largest eta_0 0.8^j that meets the Armijo condition.
- The deliberate difference from optax (after a search that ends with step size 0, optax's next
  search starts from 0 and never moves again; gradtx's starts from 1 or max_learning_rate) is
  shown on both libraries.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close

LAMBDAS = jnp.asarray([1.0, 10.0, 30.0, 100.0], jnp.float64)


def quadratic(x):
    return 0.5 * jnp.sum(LAMBDAS * x**2)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def zakharov(x):
    s = jnp.sum(0.5 * jnp.arange(1, x.size + 1, dtype=x.dtype) * x)
    return jnp.sum(x**2) + s**2 + s**4


FUNCTIONS = {
    "quadratic": (quadratic, [1.0, 1.0, 1.0, 1.0]),
    "rosenbrock": (rosenbrock, [-1.2, 1.0]),
    "zakharov": (zakharov, [1.0, 2.0, 3.0]),
}
SEARCHES = {
    "zoom": lambda m: m.scale_by_zoom_linesearch(15),
    "zoom-one-max-armijo": lambda m: m.scale_by_zoom_linesearch(
        20, max_learning_rate=0.5, initial_guess_strategy="one", approx_dec_rtol=None
    ),
    "zoom-no-curvature": lambda m: m.scale_by_zoom_linesearch(10, curv_rtol=math.inf, increase_factor=3.0, tol=1e-12),
    "backtracking": lambda m: m.scale_by_backtracking_linesearch(15),
    "backtracking-options": lambda m: m.scale_by_backtracking_linesearch(
        30, slope_rtol=0.3, decrease_factor=0.5, increase_factor=math.inf, atol=1e-12, rtol=1e-9, store_grad=True
    ),
}
# (search, function, the learning rate of the sgd step before it). A backtracking search only
# shrinks, by 0.8^15 at most by default: its direction must be about the right length already.
PAIRS = [
    ("zoom", "quadratic", 1.0), ("zoom", "rosenbrock", 1.0), ("zoom-one-max-armijo", "zakharov", 1.0),
    ("zoom-no-curvature", "rosenbrock", 1.0), ("backtracking", "quadratic", 0.05),
    ("backtracking", "rosenbrock", 2e-3), ("backtracking-options", "zakharov", 1.0),
]  # fmt: skip


def trajectory(m, search: str, function: str, lr: float, steps: int = 15):
    """(params, step size, value, evaluations) after each of `steps` updates, in one compiled scan."""
    f, x0 = FUNCTIONS[function]
    tx = m.chain(m.sgd(lr), SEARCHES[search](m))

    def step(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(f)(x)
        u, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=f)
        ls = state[1]
        return (x + u, state), (x + u, ls.learning_rate, ls.value, ls.info.num_linesearch_steps)

    x = jnp.asarray(x0, jnp.float64)
    return jax.jit(lambda x: jax.lax.scan(step, (x, tx.init(x)), None, length=steps)[1])(x)


@pytest.mark.parametrize("search, function, lr", PAIRS, ids=[f"{s}-{f}" for s, f, _ in PAIRS])
def test_float64_trajectory_equals_optax(search, function, lr):
    ours = trajectory(gradtx, search, function, lr)
    with jax.numpy_dtype_promotion("standard"):
        theirs = trajectory(optax, search, function, lr)
    np.testing.assert_array_equal(ours[3], theirs[3])  # the same number of evaluations in every search
    assert_trees_all_close(ours[:3], theirs[:3], rtol=1e-9, atol=1e-300, what=f"{search} on {function}")
    f, x0 = FUNCTIONS[function]
    assert float(f(ours[0][-1])) < float(f(jnp.asarray(x0, jnp.float64)))


def one_update(search, f, x, **kwargs):
    tx = gradtx.chain(gradtx.sgd(1.0), search)
    value, grad = jax.value_and_grad(f)(x)
    u, state = tx.update(grad, tx.init(x), x, value=value, grad=grad, value_fn=f, **kwargs)
    return u, state[1], value, grad


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [0.5, -0.3], [2.0, 2.0]])
def test_the_zoom_step_meets_the_strong_wolfe_conditions(x0):
    x = jnp.asarray(x0, jnp.float64)
    c1, c2 = 1e-4, 0.9
    u, state, value, grad = one_update(gradtx.scale_by_zoom_linesearch(30, approx_dec_rtol=None), rosenbrock, x)
    eta, d = state.learning_rate, -grad
    phi = lambda t: rosenbrock(x + t * d)
    slope0, slope = jnp.dot(grad, d), jax.grad(phi)(eta)
    assert float(phi(eta)) <= float(value + c1 * eta * slope0)  # sufficient decrease
    assert abs(float(slope)) <= c2 * abs(float(slope0))  # curvature
    np.testing.assert_allclose(u, eta * d, rtol=1e-15)
    np.testing.assert_allclose(state.value, phi(eta), rtol=1e-15)
    np.testing.assert_allclose(state.grad, jax.grad(rosenbrock)(x + eta * d), rtol=1e-14)
    assert float(state.info.decrease_error) == 0 and float(state.info.curvature_error) == 0


def test_backtracking_takes_the_largest_step_of_its_schedule_that_decreases_enough():
    x = jnp.asarray([-1.2, 1.0], jnp.float64)
    _, state, value, grad = one_update(gradtx.scale_by_backtracking_linesearch(40), rosenbrock, x)
    armijo = lambda t: float(rosenbrock(x - t * grad)) <= float(value - 1e-4 * t * jnp.dot(grad, grad))
    j = int(state.info.num_linesearch_steps) - 1  # eta = min(1.5 * 1, 1) 0.8^j
    eta = float(state.learning_rate)
    assert j > 0 and eta == pytest.approx(0.8**j, rel=1e-12)
    assert armijo(eta) and not armijo(eta / 0.8)


def nan_away_from(x0, f):
    """f at x0, NaN everywhere else: no trial step of a search from x0 has a finite value."""
    return lambda x: jnp.where(jnp.all(x == x0), f(x), jnp.nan)


@pytest.mark.parametrize("name", ["zoom", "backtracking"])
def test_no_finite_trial_ends_after_the_step_limit_with_no_step(name):
    x = jnp.asarray([-1.2, 1.0], jnp.float64)
    search = {
        "zoom": gradtx.scale_by_zoom_linesearch(7),
        "backtracking": gradtx.scale_by_backtracking_linesearch(7),
    }[name]
    u, state, _, _ = jax.jit(lambda x: one_update(search, nan_away_from(x, rosenbrock), x))(x)
    assert int(state.info.num_linesearch_steps) == (7 if name == "zoom" else 8)  # bounded: 7 (+ the first guess)
    assert float(state.learning_rate) == 0 and math.isinf(float(state.info.decrease_error))
    np.testing.assert_array_equal(u, jnp.zeros(2))


@pytest.mark.parametrize("name", ["zoom", "backtracking"])
def test_a_nan_value_or_gradient_at_params_gives_nan_updates(name):
    search = {"zoom": gradtx.scale_by_zoom_linesearch(7), "backtracking": gradtx.scale_by_backtracking_linesearch(7)}
    tx = gradtx.chain(gradtx.sgd(1.0), search[name])
    x = jnp.asarray([-1.2, 1.0], jnp.float64)
    value, grad = jax.value_and_grad(rosenbrock)(x)
    f = jax.tree_util.Partial(rosenbrock)
    for v, g in ((jnp.nan, grad), (value, grad.at[0].set(jnp.nan))):
        u, state = jax.jit(tx.update)(g, tx.init(x), x, value=v, grad=g, value_fn=f)
        assert bool(jnp.all(jnp.isnan(u))) and bool(jnp.isnan(state[1].learning_rate)), (v, g, u)


def step_size_after_a_failed_search(m, search) -> float:
    """The step size of a search from the same point after one in which no trial was finite."""
    x = jnp.asarray([-1.2, 1.0], jnp.float64)
    tx = m.chain(m.sgd(1e-3), search)
    value, grad = jax.value_and_grad(rosenbrock)(x)
    state = tx.init(x)
    with jax.numpy_dtype_promotion("standard"):
        _, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=nan_away_from(x, rosenbrock))
        assert float(state[1].learning_rate) == 0
        _, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=rosenbrock)
    return float(state[1].learning_rate)


def test_after_a_step_size_of_zero_the_next_search_starts_again_where_optax_stays_at_zero():
    for m, moves in ((gradtx, True), (optax, False)):
        for search in (m.scale_by_zoom_linesearch(10), m.scale_by_backtracking_linesearch(10)):
            assert (step_size_after_a_failed_search(m, search) > 0) == moves, (m.__name__, search)


def test_keyword_arguments_of_value_fn_are_passed_on_as_in_optax():
    def f(w, x, y):
        return jnp.sum((x @ w - y) ** 2)

    x, y, w = jnp.asarray([[1.0, 2.0], [3.0, 1.0]]), jnp.asarray([1.0, 0.0]), jnp.asarray([0.3, -0.2])
    value, grad = jax.value_and_grad(f)(w, x, y)
    out = []
    for m in (gradtx, optax):
        tx = m.chain(m.sgd(1.0), m.scale_by_zoom_linesearch(15))
        with jax.numpy_dtype_promotion("standard"):
            u, _ = tx.update(grad, tx.init(w), w, value=value, grad=grad, value_fn=f, x=x, y=y)
        out.append(u)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)


def test_missing_or_malformed_arguments_are_named_when_traced():
    x = jnp.asarray([1.0, 2.0, 0.5, -1.0])
    f = jax.tree_util.Partial(quadratic)
    for search in (gradtx.scale_by_zoom_linesearch(5), gradtx.scale_by_backtracking_linesearch(5)):
        name = search.hyperparams.builder
        update = jax.jit(lambda g, s, p, search=search, **kw: search.update(g, s, p, **kw))
        state = search.init(x)
        call = r"tx\.update\(grads, state, params, value=loss, grad=grads, value_fn=loss_fn\)"
        with pytest.raises(
            TypeError, match=rf"{name}: update was called without the keyword argument value_fn\. .*{call}"
        ):
            update(-x, state, x, value=1.0, grad=x)
        with pytest.raises(TypeError, match=rf"{name}: value must be the loss at params, a real scalar"):
            update(-x, state, x, value=x, grad=x, value_fn=f)
        with pytest.raises(ValueError, match=rf"{name}: grad must be the gradient at params, a tree like the updates"):
            update(-x, state, x, value=1.0, grad={"w": x}, value_fn=f)
        with pytest.raises(TypeError, match=rf"{name}: value_fn must return the loss, a real scalar"):
            search.update(-x, state, x, value=1.0, grad=x, value_fn=lambda w: w)
        with pytest.raises(TypeError, match=rf"{name}: value_fn must be the loss as a function of params"):
            search.update(-x, state, x, value=1.0, grad=x, value_fn=3.0)


def test_value_and_grad_from_state_reuses_the_last_evaluation_and_says_when_it_cannot():
    x = jnp.asarray([-1.2, 1.0], jnp.float64)
    value_and_grad = gradtx.value_and_grad_from_state(rosenbrock)
    for search in (gradtx.scale_by_zoom_linesearch(15), gradtx.scale_by_backtracking_linesearch(15, store_grad=True)):
        tx = gradtx.chain(gradtx.sgd(1e-3), search)
        state = tx.init(x)
        value, grad = value_and_grad(x, state=state)  # init holds inf: computed
        np.testing.assert_allclose(value, rosenbrock(x), rtol=1e-15)
        u, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=rosenbrock)
        stored = state[1]
        value, grad = value_and_grad(x + u, state=state)
        assert value is stored.value or bool(value == stored.value)
        np.testing.assert_allclose(grad, jax.grad(rosenbrock)(x + u), rtol=1e-13)
        np.testing.assert_allclose(value, rosenbrock(x + u), rtol=1e-13)
    with pytest.raises(ValueError, match="value_and_grad_from_state: the state holds no line-search state"):
        value_and_grad(x, state=gradtx.adam(0.1).init(x))
    with pytest.raises(ValueError, match=r"keeps no gradient: build it with .*store_grad=True"):
        value_and_grad(x, state=gradtx.scale_by_backtracking_linesearch(5).init(x))
    with pytest.raises(TypeError, match="value_and_grad_from_state: value_fn must be a function"):
        gradtx.value_and_grad_from_state(3)


def test_build_time_checks_and_repr():
    with pytest.raises(ValueError, match="scale_by_zoom_linesearch: initial_guess_strategy must be 'one' or 'keep'"):
        gradtx.scale_by_zoom_linesearch(5, initial_guess_strategy="two")
    with pytest.raises(ValueError, match=r"scale_by_zoom_linesearch: max_linesearch_steps must be in \[1, inf\)"):
        gradtx.scale_by_zoom_linesearch(0)
    with pytest.raises(ValueError, match=r"scale_by_zoom_linesearch: slope_rtol must be in \(0, 1\), got 1.5"):
        gradtx.scale_by_zoom_linesearch(5, slope_rtol=1.5)
    with pytest.raises(ValueError, match=r"scale_by_backtracking_linesearch: decrease_factor must be in \(0, 1\)"):
        gradtx.scale_by_backtracking_linesearch(5, decrease_factor=1.0)
    with pytest.raises(TypeError, match="scale_by_backtracking_linesearch: store_grad must be True or False"):
        gradtx.scale_by_backtracking_linesearch(5, store_grad=1)
    armijo_only = gradtx.scale_by_zoom_linesearch(5, approx_dec_rtol=None)
    assert "approx_dec_rtol=None" in repr(armijo_only)
    assert eval(repr(armijo_only), {"scale_by_zoom_linesearch": gradtx.scale_by_zoom_linesearch}) == armijo_only
    assert armijo_only != gradtx.scale_by_zoom_linesearch(5)
