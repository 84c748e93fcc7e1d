"""The zoom line search: a step size meeting the strong Wolfe conditions (Nocedal & Wright, Alg. 3.5, 3.6).

    scale_by_zoom_linesearch   find eta with  f(w + eta u) <= f(w) + c1 eta <g, u>            (Armijo)
                                        and  |<grad f(w + eta u), u>| <= c2 |<g, u>|          (curvature)
                               by growing eta until [low, high] brackets such a step, then shrinking
                               the bracket at cubic, quadratic or bisection points; u <- eta u

phi(eta) = f(w + eta u) is the objective along the direction, phi'(eta) = <grad f(w + eta u), u> its
slope. Close to a minimum the Armijo condition cannot see decreases below sqrt(machine epsilon);
there Hager and Zhang's (2006) approximate condition phi'(eta) <= (2 c1 - 1) phi'(0) is accepted
instead, once phi(eta) <= phi(0) + approx_dec_rtol |phi(0)|. Shared conventions (the keyword
arguments value, grad, value_fn; dtypes; NaN) are in linesearch.py's docstring.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    ExtraArgsUpdateFn,
    GradientTransformation,
    GradientTransformationExtraArgs,
    Hyperparams,
    InitFn,
    Updates,
    next_count,
)
from gradtx.checks import (
    NONNEG,
    OR_NONE,
    POSITIVE,
    POSITIVE_COUNT,
    ArgumentValueError,
    check,
    check_flag,
    require_params,
)
from gradtx.transforms.linesearch import (
    evaluate,
    fails_as_inf,
    hyper,
    nan_if_nan_in,
    objective,
    slope_along,
    value_dtype,
)


class ZoomLinesearchInfo(NamedTuple):
    """num_linesearch_steps: evaluations of f in the last search (int32); decrease_error,
    curvature_error: by how much its step misses each condition (0: met)."""

    num_linesearch_steps: Count
    decrease_error: jax.Array
    curvature_error: jax.Array


class ScaleByZoomLinesearchState(NamedTuple):
    """learning_rate: the last step size; value, grad: f and grad f at the step taken (what
    value_and_grad_from_state reuses); info."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Updates
    info: ZoomLinesearchInfo


class _Search(NamedTuple):
    """The search's loop state: the last trial, the bracket [low, high] (phi(low) <= phi(high), low
    may be the larger step), the point of the cubic fit, and the best step with sufficient decrease."""

    count: Count
    stepsize: jax.Array
    value: jax.Array
    grad: Updates
    slope: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array
    interval_found: jax.Array
    done: jax.Array
    failed: jax.Array
    low: jax.Array
    value_low: jax.Array
    slope_low: jax.Array
    high: jax.Array
    value_high: jax.Array
    slope_high: jax.Array
    cubic_ref: jax.Array
    value_cubic_ref: jax.Array
    safe_stepsize: jax.Array
    safe_value: jax.Array
    safe_grad: Updates


def _cubic_minimizer(a, fa, fpa, b, fb, c, fc):
    """The critical point of the cubic through (a, fa), (b, fb), (c, fc) with slope fpa at a (NaN if none)."""
    db, dc = b - a, c - a
    r = jnp.stack([fb - fa - fpa * db, fc - fa - fpa * dc])  # what the line through (a, fa) with slope fpa misses
    # p(x) = A (x - a)^3 + B (x - a)^2 + fpa (x - a) + fa through the three points (as scipy and optax
    # solve it: one 2 x 2 product, whose rounding the search's branches are sensitive to).
    A, B = jnp.dot(jnp.stack([jnp.stack([dc**2, -(db**2)]), jnp.stack([-(dc**3), db**3])]), r, precision="highest") / (
        (db * dc) ** 2 * (db - dc)
    )
    return a + (-B + jnp.sqrt(B * B - 3 * A * fpa)) / (3 * A)  # p'(x) = 0, the minimum's root


def _quadratic_minimizer(a, fa, fpa, b, fb):
    """The critical point of the parabola through (a, fa), (b, fb) with slope fpa at a."""
    db = b - a
    B = (fb - fa - fpa * db) / db**2  # p(x) = B (x - a)^2 + fpa (x - a) + fa
    return a - fpa / (2 * B)


class _Line(NamedTuple):
    """phi and the tests along the line w + eta u, for one update."""

    builder: str
    hp: Hyperparams
    f: Any
    params: Any
    u: Updates
    value0: jax.Array
    slope0: jax.Array
    guess: jax.Array  # the first trial step
    dtype: Any

    def at(self, eta: jax.Array) -> tuple:
        value, grad = evaluate(self.builder, self.f, tree.add_scale(self.params, eta, self.u), self.dtype, True)
        return value, grad, slope_along(grad, self.u, self.dtype)  # phi(eta), grad f(w + eta u), phi'(eta)

    def errors(self, eta, value, slope) -> tuple:
        h = lambda x: hyper(x, self.dtype)
        c1, c2 = h(self.hp.slope_rtol), h(self.hp.curv_rtol)
        decrease = value - self.value0 - c1 * eta * self.slope0  # Armijo: phi(eta) - phi(0) - c1 eta phi'(0)
        if self.hp.approx_dec_rtol is not None:
            approx = slope - (2 * c1 - 1) * self.slope0  # Hager-Zhang: phi'(eta) - (2 c1 - 1) phi'(0) ...
            near = value - self.value0 - h(self.hp.approx_dec_rtol) * jnp.abs(self.value0)  # ... where phi barely rose
            decrease = jnp.minimum(jnp.maximum(approx, near), decrease)
        curvature = jnp.abs(slope) - c2 * jnp.abs(self.slope0)  # |phi'(eta)| - c2 |phi'(0)|
        return fails_as_inf(decrease), fails_as_inf(curvature)


def _pick(condition: jax.Array, a: list, b: list) -> list:
    """a where `condition` holds, b elsewhere, item by item (scalars and trees)."""
    return [tree.where(condition, x, y) for x, y in zip(a, b, strict=True)]


def _bracket(line: _Line, s: _Search) -> _Search:
    """Algorithm 3.5: try a larger step until [low, high] brackets a good one (or the step is good)."""
    hp, k = line.hp, s.count
    eta = jnp.where(k == 0, line.guess, hyper(hp.increase_factor, line.dtype) * s.stepsize)  # eta <- i eta
    reached = jnp.asarray(False)
    if hp.max_learning_rate is not None:
        top = hyper(hp.max_learning_rate, line.dtype)
        reached, eta = eta >= top, jnp.minimum(eta, top)
    value, grad, slope = line.at(eta)
    decrease, curvature = line.errors(eta, value, slope)
    tol = hyper(hp.tol, line.dtype)
    good = jnp.maximum(decrease, curvature) <= tol
    safe = _pick(decrease <= tol, [eta, value, grad], [s.safe_stepsize, s.safe_value, s.safe_grad])
    # phi rose too much, or above the last trial: a good step lies below eta. phi' >= 0: it lies below too.
    high_is_new = (decrease > 0) | ((value >= s.value) & (k > 0))
    low_is_new = (slope >= 0) & ~high_is_new
    previous, new = [s.stepsize, s.value, s.slope], [eta, value, slope]
    low, value_low, slope_low = _pick(low_is_new, new, previous)
    high, value_high, slope_high = _pick(low_is_new, previous, new)
    found = high_is_new | low_is_new | good
    done = good | (reached & ~found)  # at the maximum without a bracket: take it (no curvature test)
    failed = (k + 1 >= hp.max_linesearch_steps) & ~done
    return _Search(
        next_count(k), eta, value, grad, slope, decrease, curvature, found, done, failed,
        low, value_low, slope_low, high, value_high, slope_high, low, value_low, *safe,
    )  # fmt: skip


def _zoom(line: _Line, s: _Search) -> _Search:
    """Algorithm 3.6: shrink the bracket at the cubic's minimum, else the parabola's, else its midpoint."""
    hp, k = line.hp, s.count
    delta = jnp.abs(s.high - s.low)
    left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
    cubic = _cubic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref, s.value_cubic_ref)
    quadratic = _quadratic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high)
    use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)  # well inside the bracket
    use_quadratic = ~use_cubic & (quadratic > left + 0.1 * delta) & (quadratic < right - 0.1 * delta)
    eta = jnp.where(use_cubic, cubic, jnp.where(use_quadratic, quadratic, (s.low + s.high) / 2))
    value, grad, slope = line.at(eta)
    decrease, curvature = line.errors(eta, value, slope)
    tol = hyper(hp.tol, line.dtype)
    better = (decrease <= tol) & (value < s.safe_value)
    safe = _pick(better, [eta, value, grad], [s.safe_stepsize, s.safe_value, s.safe_grad])
    done = jnp.maximum(decrease, curvature) <= tol
    high_is_new = (decrease > 0) | (value >= s.value_low)  # phi too high at eta: eta bounds the bracket
    high_is_low = (slope * (s.high - s.low) >= 0) & ~high_is_new  # phi' points back to low: low bounds it
    low_is_new = ~high_is_new  # eta is the new best point
    new, low_, high_ = [eta, value, slope], [s.low, s.value_low, s.slope_low], [s.high, s.value_high, s.slope_high]
    high, value_high, slope_high = _pick(high_is_low, low_, _pick(high_is_new, new, high_))
    low, value_low, slope_low = _pick(low_is_new, new, low_)
    cubic_ref, value_cubic_ref = _pick(high_is_new | high_is_low, high_[:2], low_[:2])  # the point dropped
    # Stop at the last evaluation, or once the bracket is below stepsize_precision and some step
    # decreased f enough (a steep f may need a tiny step: the search goes on while none has).
    too_small = (delta <= hyper(hp.stepsize_precision, line.dtype)) & (safe[0] > 0)
    failed = ((k + 1 >= hp.max_linesearch_steps) | too_small) & ~done
    return _Search(
        next_count(k), eta, value, grad, slope, decrease, curvature, s.interval_found, done, failed,
        low, value_low, slope_low, high, value_high, slope_high, cubic_ref, value_cubic_ref, *safe,
    )  # fmt: skip


def _fall_back(s: _Search) -> _Search:
    """Out of steps without a step meeting both conditions: the best with sufficient decrease, if any."""
    use_safe = (s.safe_stepsize > 0) | jnp.isinf(s.decrease_error)  # (a step 0 where no trial was finite)
    eta, value, grad = _pick(use_safe, [s.safe_stepsize, s.safe_value, s.safe_grad], [s.stepsize, s.value, s.grad])
    return s._replace(stepsize=eta, value=value, grad=grad)


def _init_zoom(hp: Hyperparams, params) -> ScaleByZoomLinesearchState:
    dtype = value_dtype(params)
    inf = lambda: jnp.full([], jnp.inf, dtype)  # a new array for each leaf: make_step donates each once
    info = ZoomLinesearchInfo(jnp.zeros([], jnp.int32), inf(), inf())
    return ScaleByZoomLinesearchState(jnp.ones([], dtype), inf(), tree.zeros_like(params), info)


def _update_zoom(hp: Hyperparams, u, state: ScaleByZoomLinesearchState, params=None, **extra_args):
    builder = "scale_by_zoom_linesearch"
    params = require_params(builder, params)
    dtype = state.value.dtype
    value0, grad0, f = objective(builder, u, extra_args, dtype, state.grad)
    slope0 = slope_along(grad0, u, dtype)  # phi'(0) = <g, u>: < 0 for a descent direction
    # "keep" starts from the last step size; after a step of 0 (a failed search) from 1 instead,
    # where optax's would start from 0 and never move again.
    last = state.learning_rate
    guess = jnp.ones([], dtype) if hp.initial_guess_strategy == "one" else jnp.where(last == 0, 1, last).astype(dtype)
    line = _Line(builder, hp, f, params, u, value0, slope0, guess, dtype)
    zero, inf, false = jnp.zeros([], dtype), jnp.full([], jnp.inf, dtype), jnp.asarray(False)
    start = _Search(
        jnp.zeros([], jnp.int32), zero, value0, grad0, slope0, inf, inf, false, false, false,
        zero, value0, slope0, zero, value0, slope0, zero, value0, zero, value0, grad0,
    )  # fmt: skip

    def step(s: _Search) -> _Search:
        s = jax.lax.cond(s.interval_found, lambda s: _zoom(line, s), lambda s: _bracket(line, s), s)
        return jax.lax.cond(s.failed, _fall_back, lambda s: s, s)

    end = jax.lax.while_loop(lambda s: ~(s.done | s.failed), step, start)
    if hp.verbose:
        _report(builder, end, value0, slope0)
    eta = nan_if_nan_in(end.stepsize, value0, slope0, guess)
    info: Any = ZoomLinesearchInfo(end.count, end.decrease_error, end.curvature_error)
    return tree.scale(eta, u), ScaleByZoomLinesearchState(eta, end.value, tree.cast_like(end.grad, state.grad), info)


def _report(builder: str, end: _Search, value0: Any, slope0: Any) -> None:
    message = (
        f"{builder}: no step size met both conditions in {{n}} evaluations; took {{eta}} (decrease error"
        " {de}, curvature error {ce}; value {value}, slope {slope}: a descent direction has slope < 0;"
        " inf errors: f was not finite at any trial)"
    )
    errors = dict(de=end.decrease_error, ce=end.curvature_error)
    kwargs = dict(n=end.count, eta=end.stepsize, value=value0, slope=slope0, **errors)
    jax.lax.cond(end.failed, lambda: jax.debug.print(message, **kwargs), lambda: None)


class _ZoomHyperparams(Hyperparams):
    """Its repr spells approx_dec_rtol=None (Armijo only), which a plain repr would leave out (the default is 1e-6)."""

    __slots__ = ()

    def __repr__(self) -> str:
        text = super().__repr__()
        return text[:-1] + ", approx_dec_rtol=None)" if self.kwargs["approx_dec_rtol"] is None else text


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: float | None = None,
    tol: float = 0.0,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    approx_dec_rtol: float | None = 1e-6,
    stepsize_precision: float = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    """Zoom line search (Nocedal & Wright, 2006, Alg. 3.5-3.6): a step size meeting the strong Wolfe conditions.

        phi(eta) = f(w + eta u),   phi'(eta) = <grad f(w + eta u), u>
        Armijo:     phi(eta) <= phi(0) + c1 eta phi'(0) + tol                 (c1 = slope_rtol)
          or, where phi(eta) <= phi(0) + approx_dec_rtol |phi(0)|,  phi'(eta) <= (2 c1 - 1) phi'(0) + tol
        curvature:  |phi'(eta)| <= c2 |phi'(0)| + tol                            (c2 = curv_rtol)
        eta_0 = 1  (one)  or  eta_prev  (keep)
        eta <- increase_factor eta  (at most max_learning_rate, until [low, high] brackets a good step)
        eta <- the minimizer of a cubic, else of a parabola, else the midpoint of [low, high]  (until both hold)
        u <- eta u

    At most max_linesearch_steps evaluations of f and grad f; then (or once the bracket is shorter
    than stepsize_precision) the step with the lowest f that met the Armijo condition is taken, or
    the last trial if none did (0 if no trial was finite; info says which condition failed).
    `approx_dec_rtol=None`: the Armijo condition only; `curv_rtol=jnp.inf`: no curvature condition
    (a backtracking search by interpolation). "one" suits Newton-like directions (L-BFGS), "keep"
    gradient steps. The state keeps f and grad f at the step taken for value_and_grad_from_state.
    update needs value=, grad= and value_fn= (linesearch.py; make_step passes them). Hager & Zhang
    (2006) for the approximate condition. optax's numbers (optax.scale_by_zoom_linesearch, same
    arguments and state), except that "keep" restarts from 1 after a search that took eta = 0.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> f = lambda w: jnp.sum(w ** 4)
    >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_zoom_linesearch(max_linesearch_steps=15))
    >>> w = jnp.asarray([1.0, -0.5])
    >>> state = tx.init(w)
    >>> loss, grads = jax.value_and_grad(f)(w)
    >>> updates, state = tx.update(grads, state, w, value=loss, grad=grads, value_fn=f)
    >>> info = state[1].info
    >>> float(info.decrease_error), float(info.curvature_error)
    (0.0, 0.0)
    """
    builder = "scale_by_zoom_linesearch"
    check(
        builder,
        max_linesearch_steps=(max_linesearch_steps, POSITIVE_COUNT),
        max_learning_rate=(max_learning_rate, POSITIVE + OR_NONE),
        tol=(tol, NONNEG), increase_factor=(increase_factor, "(1, inf)"), slope_rtol=(slope_rtol, "(0, 1)"),
        curv_rtol=(curv_rtol, "(0, inf]"), approx_dec_rtol=(approx_dec_rtol, NONNEG + OR_NONE),
        stepsize_precision=(stepsize_precision, NONNEG),
    )  # fmt: skip
    if initial_guess_strategy not in ("one", "keep"):
        detail = f"must be 'one' or 'keep', got {initial_guess_strategy!r}"
        raise ArgumentValueError(builder, "initial_guess_strategy", detail)
    hp = _ZoomHyperparams(
        builder, (),
        dict(
            max_linesearch_steps=max_linesearch_steps, max_learning_rate=max_learning_rate, tol=tol,
            increase_factor=increase_factor, slope_rtol=slope_rtol, curv_rtol=curv_rtol,
            approx_dec_rtol=approx_dec_rtol, stepsize_precision=stepsize_precision,
            initial_guess_strategy=initial_guess_strategy, verbose=check_flag(builder, "verbose", verbose),
        ),
    )  # fmt: skip
    return GradientTransformationExtraArgs(InitFn(_init_zoom, hp), ExtraArgsUpdateFn(_update_zoom, hp, _init_zoom))


__all__ = ["ScaleByZoomLinesearchState", "ZoomLinesearchInfo", "scale_by_zoom_linesearch"]
