"""Line searches: a step size eta along the update direction u, found by evaluating the objective f.

    scale_by_backtracking_linesearch   eta <- min(increase_factor eta_prev, max_learning_rate), then
                                       eta <- decrease_factor eta until the Armijo condition holds:
                                       f(w + eta u) <= (1 + rtol) f(w) + slope_rtol eta <g, u> + atol
    scale_by_zoom_linesearch           (zoom.py) eta meeting the strong Wolfe conditions
    value_and_grad_from_state          jax.value_and_grad that reuses the value and gradient at the
                                       accepted step, which the line search computed

A line search's update takes three keyword arguments besides (updates, state, params):

    tx.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)

`value` and `grad` are the loss and its gradient at params, `value_fn(params) -> loss` is the
objective (further keyword arguments that `value_fn` names, a batch `x=x, y=y`, are passed on to
it). `gradtx.make_step(tx, loss_fn)` passes all three. A missing one raises when the update is
traced, naming the transformation, the keyword and the call to write. `value_fn` sees the params as
every gradtx update does: integer and boolean leaves are None (make_step's objective restores them).

Numerics shared by both line searches (they follow optax 0.2.8): the step size and the values are
scalars of the params' widest real compute dtype (float64 in a float64 run, float32 for bfloat16
params), the slope <g, u> is Re sum(g u), the derivative of eta -> f(w + eta u) for jax.grad's
gradient (the same as optax's for real params). A trial whose value is NaN fails the test; a search
that finds no finite trial takes the step size 0 and says so in `state.info`; a NaN value, gradient
or direction at params, or a NaN step size left in the state by an earlier update, gives NaN
updates (never a silent zero step). Each search stops after its `max_*_steps` evaluations of the
objective, NaN or not.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Params, Updates, next_count, transformation
from gradtx.checks import (
    COUNT,
    NONNEG,
    POSITIVE,
    UNIT,
    ArgumentTypeError,
    check,
    check_flag,
    require_params,
)

# ---------------------------------------------------------------------------------------------------
# Shared by the line searches and L-BFGS


def value_dtype(params: Params) -> np.dtype:
    """The dtype of step sizes, values and inner products: the widest real compute dtype of the params."""
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def hyper(h: Any, dtype: Any) -> Any:
    """A hyperparameter in scalar arithmetic of `dtype`: a Python number as it is (weakly typed), an
    array or a tracer (a vmapped sweep) cast, so that strict promotion never meets two float widths."""
    return h if isinstance(h, int | float) and not isinstance(h, bool) else jnp.asarray(h).astype(dtype)


def _sum(parts: list[jax.Array], dtype: Any) -> jax.Array:
    return sum((p.astype(dtype) for p in parts), jnp.zeros([], dtype))


def _leaf_dot(x: jax.Array, y: jax.Array, conjugate: bool) -> jax.Array:
    x = x.astype(tree.compute_dtype(x.dtype))
    y = y.astype(x.dtype)
    if conjugate and jnp.iscomplexobj(x):
        x = jnp.conj(x)
    return jnp.real(jnp.tensordot(x, y, x.ndim, precision=jax.lax.Precision.HIGHEST))


def vdot(a: Updates, b: Updates, dtype: Any) -> jax.Array:
    """Re <a, b> = Re sum(conj(a) b) over all leaves, in `dtype`: the real inner product."""
    return _sum([_leaf_dot(x, y, True) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)], dtype)


def slope_along(grad: Updates, u: Updates, dtype: Any) -> jax.Array:
    """<g, u> = Re sum(g u): d/d(eta) f(w + eta u) for jax.grad's gradient g (also of complex params)."""
    return _sum([_leaf_dot(x, y, False) for x, y in zip(jax.tree.leaves(grad), jax.tree.leaves(u), strict=True)], dtype)


_OBJECTIVE = ("value", "grad", "value_fn")


def _how_to_call(builder: str, needs: tuple[str, ...]) -> str:
    keywords = {"value": "value=loss", "grad": "grad=grads", "value_fn": "value_fn=loss_fn"}
    call = ", ".join(keywords[n] for n in needs)
    what = {
        "value": "value (the loss at params)",
        "grad": "grad (its gradient at params)",
        "value_fn": "value_fn (the loss as a function of params, which it evaluates at trial steps)",
    }
    return (
        f"{builder} needs {', '.join(what[n] for n in needs)} as keyword arguments of update:"
        f" tx.update(grads, state, params, {call}), e.g. with loss, grads = jax.value_and_grad(loss_fn)(params)"
        + (". Arguments of loss_fn other than params go as further keywords (x=x, y=y)" if "value_fn" in needs else "")
        + f". gradtx.make_step(tx, loss_fn) passes {'them' if len(needs) > 1 else 'it'}:"
        " step = make_step(tx, loss_fn); params, state, loss = step(params, state, *batch)"
    )


def require_keywords(builder: str, extra_args: dict, needs: tuple[str, ...]) -> None:
    """Raises, when the update is traced, a TypeError naming each keyword argument that is missing."""
    missing = [n for n in needs if extra_args.get(n) is None]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TypeError(
            f"{builder}: update was called without the keyword argument{plural} {', '.join(missing)}. "
            + _how_to_call(builder, needs)
        )


def scalar_value(builder: str, value: Any, dtype: Any) -> jax.Array:
    value = jnp.asarray(value)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.number) or jnp.iscomplexobj(value):
        got = f"{value.dtype}{list(value.shape)}"
        raise TypeError(f"{builder}: value must be the loss at params, a real scalar; got {got}")
    return value.astype(dtype)


def _keywords_of(fn: Callable[..., Any]) -> frozenset[str]:
    # optax passes value_fn the update's other keyword arguments that value_fn names (a batch), so
    # that `update(..., value_fn=loss, x=x, y=y)` works as there; this needs value_fn's signature.
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return frozenset()


def objective(builder: str, g: Updates, extra_args: dict, dtype: Any, grad_like: Updates) -> tuple:
    """(f(w), grad f(w), f) from the update's keyword arguments: the value and gradient at params in
    `dtype` and `grad_like`'s dtypes, and value_fn with the keywords it takes bound. Trace-time errors
    name what is missing or malformed."""
    require_keywords(builder, extra_args, _OBJECTIVE)
    value_fn = extra_args["value_fn"]
    if not callable(value_fn):
        how = _how_to_call(builder, _OBJECTIVE)
        raise TypeError(f"{builder}: value_fn must be the loss as a function of params, got {value_fn!r}. {how}")
    grad = tree.trainable(extra_args["grad"])
    structure: Any = jax.tree.structure(grad)
    if structure != jax.tree.structure(g):
        raise ValueError(
            f"{builder}: grad must be the gradient at params, a tree like the updates;"
            f" got {jax.tree.structure(grad)}, updates {jax.tree.structure(g)}"
        )
    kwargs = {k: v for k, v in extra_args.items() if k in _keywords_of(value_fn) and k not in _OBJECTIVE}
    f = functools.partial(value_fn, **kwargs) if kwargs else value_fn
    return scalar_value(builder, extra_args["value"], dtype), tree.cast_like(grad, grad_like), f


def evaluate(builder: str, f: Callable[..., Any], w: Params, dtype: Any, with_grad: bool) -> tuple:
    """f(w) in `dtype`, and grad f(w) (None without `with_grad`); value_fn's output checked when traced."""
    out = jax.eval_shape(f, w)
    if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"{builder}: value_fn must return the loss, a real scalar; it returned {out}")
    if not with_grad:
        return f(w).astype(dtype), None
    value, grad = jax.value_and_grad(f)(w)
    return value.astype(dtype), tree.cast_like(grad, w)


def nan_if_nan_in(step: jax.Array, *inputs: jax.Array) -> jax.Array:
    """The step size, NaN where an input is (the value or the slope at params, the first guess, which
    a NaN step size in the state gives): NaN in, NaN out, never a silent step of 0."""
    nan_in = functools.reduce(jnp.logical_or, [jnp.isnan(x) for x in inputs])
    return jnp.where(nan_in, jnp.full_like(step, jnp.nan), step)


def fails_as_inf(error: jax.Array) -> jax.Array:
    """max(error, 0), with a NaN error (a NaN trial value) counted as an infinite violation."""
    return jnp.where(jnp.isnan(error), jnp.full_like(error, jnp.inf), jnp.maximum(error, 0))


# ---------------------------------------------------------------------------------------------------
# Backtracking (Armijo)


class BacktrackingLinesearchInfo(NamedTuple):
    """num_linesearch_steps: trials of the last search (int32); decrease_error: by how much its
    accepted step misses the Armijo condition (0: met; inf: no trial had a finite value)."""

    num_linesearch_steps: Count
    decrease_error: jax.Array


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """learning_rate: the last step size; value: f at the last trial step (what
    value_and_grad_from_state reuses); grad: grad f there with store_grad=True, else None; info."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Updates | None
    info: BacktrackingLinesearchInfo


class _Trial(NamedTuple):
    learning_rate: jax.Array
    value: jax.Array
    decrease_error: jax.Array
    steps: Count


def _init_backtracking(hp: Hyperparams, params) -> ScaleByBacktrackingLinesearchState:
    dtype = value_dtype(params)
    return ScaleByBacktrackingLinesearchState(
        learning_rate=jnp.ones([], dtype),
        value=jnp.full([], jnp.inf, dtype),
        grad=tree.zeros_like(params) if hp.store_grad else None,
        info=BacktrackingLinesearchInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, dtype)),
    )


def _update_backtracking(hp: Hyperparams, u, state: ScaleByBacktrackingLinesearchState, params=None, **extra_args):
    builder = "scale_by_backtracking_linesearch"
    params = require_params(builder, params)
    dtype = state.value.dtype
    f0, g0, f = objective(builder, u, extra_args, dtype, tree.zeros_like(params))
    slope = slope_along(g0, u, dtype)  # <g, u>: should be < 0 (a descent direction)
    c, rtol, atol = hyper(hp.slope_rtol, dtype), hyper(hp.rtol, dtype), hyper(hp.atol, dtype)
    shrink, grow, top = (hyper(h, dtype) for h in (hp.decrease_factor, hp.increase_factor, hp.max_learning_rate))

    def trial(t: _Trial) -> _Trial:
        eta = jnp.where(t.steps > 0, shrink * t.learning_rate, t.learning_rate)  # eta <- d eta after the first
        f_eta, _ = evaluate(builder, f, tree.add_scale(params, eta, u), dtype, with_grad=False)
        # Armijo: f(w + eta u) - (1 + rtol) f(w) - c eta <g, u> <= atol
        error = fails_as_inf(f_eta - (1 + rtol) * f0 - eta * c * slope)
        return _Trial(eta, f_eta, error, next_count(t.steps))

    def searching(t: _Trial) -> jax.Array:
        return ~(t.decrease_error <= atol) & (t.steps <= hp.max_backtracking_steps)

    # The first guess grows the last step size, up to the maximum; after a failed search (eta = 0)
    # it restarts from the maximum, where optax's 0 * increase_factor would stay 0 for good.
    eta = state.learning_rate
    guess = jnp.where(eta == 0, top, jnp.minimum(grow * eta, top))  # eta_0 = min(i eta_prev, eta_max)
    start = _Trial(guess.astype(dtype), f0, jnp.full([], jnp.inf, dtype), jnp.zeros([], jnp.int32))
    last = jax.lax.while_loop(searching, trial, start)
    # No finite trial: no step (optax's choice); info.decrease_error = inf says so.
    eta = jnp.where(jnp.isinf(last.decrease_error), jnp.zeros_like(last.learning_rate), last.learning_rate)
    eta = nan_if_nan_in(eta, f0, slope, guess)
    grad = None
    if hp.store_grad:  # the gradient at the last trial, for value_and_grad_from_state
        _, grad = evaluate(builder, f, tree.add_scale(params, last.learning_rate, u), dtype, with_grad=True)
    if hp.verbose:
        _report(builder, last.decrease_error > atol, f0, slope, last.learning_rate, last.decrease_error)
    info = BacktrackingLinesearchInfo(last.steps, last.decrease_error)
    return tree.scale(eta, u), ScaleByBacktrackingLinesearchState(eta, last.value, grad, info)


def _report(builder: str, failed: jax.Array, value: Any, slope: Any, eta: Any, error: Any) -> None:
    message = (
        f"{builder}: no step size met the sufficient decrease condition (value {{value}}, slope"
        " {slope} (a descent direction has slope < 0), last step size {eta}, decrease error {error})"
    )
    jax.lax.cond(failed, lambda: jax.debug.print(message, value=value, slope=slope, eta=eta, error=error), lambda: None)


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: float = 1e-4,
    decrease_factor: float = 0.8,
    increase_factor: float = 1.5,
    max_learning_rate: float = 1.0,
    atol: float = 0.0,
    rtol: float = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    """Backtracking line search (Armijo, 1966): shrink the step size until the loss decreases enough.

        eta <- min(increase_factor eta_prev, max_learning_rate)
        while f(w + eta u) > (1 + rtol) f(w) + slope_rtol eta <g, u> + atol:   eta <- decrease_factor eta
        u <- eta u

    u is the incoming update (a descent direction: <g, u> < 0, as sgd's -lr g), g = grad f(w). At
    most max_backtracking_steps + 1 evaluations of f; a search that finds no finite value takes
    eta = 0 (info.decrease_error = inf) and the next one restarts from max_learning_rate.
    `store_grad=True` keeps f and grad f at the last trial for `value_and_grad_from_state`. update
    needs value=, grad= and value_fn= (module docstring; make_step passes them). Vaswani et al.
    (2019), "Painless stochastic gradient". optax's numbers (optax.scale_by_backtracking_linesearch,
    same arguments and state), except that optax never moves again after a search with eta = 0.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(15))
    >>> w = jnp.zeros(2)
    >>> state = tx.init(w)
    >>> loss, grads = jax.value_and_grad(f)(w)
    >>> updates, state = tx.update(grads, state, w, value=loss, grad=grads, value_fn=f)
    >>> updates.tolist(), int(state[1].info.num_linesearch_steps)  # eta = 1 overshoots to (2, 2); eta = 0.8
    ([1.6, 1.6], 2)
    """
    builder = "scale_by_backtracking_linesearch"
    check(
        builder,
        max_backtracking_steps=(max_backtracking_steps, COUNT), slope_rtol=(slope_rtol, UNIT),
        decrease_factor=(decrease_factor, "(0, 1)"), increase_factor=(increase_factor, "[1, inf]"),
        max_learning_rate=(max_learning_rate, POSITIVE), atol=(atol, NONNEG), rtol=(rtol, NONNEG),
    )  # fmt: skip
    return transformation(
        builder, _init_backtracking, _update_backtracking,
        max_backtracking_steps=max_backtracking_steps, slope_rtol=slope_rtol, decrease_factor=decrease_factor,
        increase_factor=increase_factor, max_learning_rate=max_learning_rate, atol=atol, rtol=rtol,
        store_grad=check_flag(builder, "store_grad", store_grad), verbose=check_flag(builder, "verbose", verbose),
        extra_args=True,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Reusing the line search's last evaluation


def _line_search_states(state: Any) -> list[Any]:
    """Every NamedTuple in `state` with fields `value` and `grad` (a line search's state)."""
    found = []

    def visit(node: Any) -> None:
        fields = getattr(node, "_fields", ())
        if isinstance(node, tuple) and "value" in fields and "grad" in fields:
            found.append(node)
            return
        if isinstance(node, tuple | list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(state)
    return found


def _value_and_grad_from_state(value_fn: Callable[..., Any], params: Params, *args: Any, state: Any, **kwargs: Any):
    name = "value_and_grad_from_state"
    found = _line_search_states(state)
    if len(found) != 1:
        where = "no line-search state" if not found else f"{len(found)} line-search states"
        raise ValueError(
            f"{name}: the state holds {where} (a NamedTuple with fields value and grad); pass state= the"
            " state of an optimizer with exactly one line search (lbfgs, scale_by_zoom_linesearch, or"
            " scale_by_backtracking_linesearch(..., store_grad=True)), or use jax.value_and_grad"
        )
    value, grad = found[0].value, found[0].grad
    if grad is None:
        raise ValueError(
            f"{name}: the line search keeps no gradient: build it with"
            " scale_by_backtracking_linesearch(..., store_grad=True), or use jax.value_and_grad"
        )

    def fresh(trainable: Params) -> tuple[Any, Any]:
        f = lambda t: value_fn(tree.with_frozen(t, params), *args, **kwargs)
        v, g = jax.value_and_grad(f)(trainable)
        return jnp.asarray(v).astype(value.dtype), tree.cast_like(g, grad)

    # The stored pair is at the params the last update moved to; inf (init) or NaN: compute it.
    return jax.lax.cond(jnp.isfinite(value), lambda t: (value, grad), fresh, tree.trainable(params))


def value_and_grad_from_state(value_fn: Callable[..., Any]) -> Callable[..., tuple[jax.Array, Updates]]:
    """`jax.value_and_grad(value_fn)` that takes the value and gradient from a line search's state.

        value, grad = f(w), grad f(w)  as stored by the last update's line search (at the w it moved to)
        value, grad = jax.value_and_grad(value_fn)(w, ...)   where the stored value is inf or NaN

    Call the result as `value_and_grad(params, *args, state=opt_state, **kwargs)`. For a
    deterministic objective (the same f at every step) it saves one evaluation per step; with
    minibatches the stored pair belongs to the last batch, so use jax.value_and_grad. Integer and
    boolean leaves get no gradient (None), as in gradtx updates. Same as optax.value_and_grad_from_state.

    >>> import jax.numpy as jnp, gradtx
    >>> f = lambda w: jnp.sum(w ** 2)
    >>> tx, w = gradtx.lbfgs(), jnp.asarray([1.0, 2.0])
    >>> state, value_and_grad = tx.init(w), gradtx.value_and_grad_from_state(f)
    >>> for _ in range(2):
    ...     value, grad = value_and_grad(w, state=state)
    ...     updates, state = tx.update(grad, state, w, value=value, grad=grad, value_fn=f)
    ...     w = w + updates
    >>> float(f(w)) < 1e-12
    True
    """
    if not callable(value_fn):
        detail = f"must be a function params -> loss, got {value_fn!r}"
        raise ArgumentTypeError("value_and_grad_from_state", "value_fn", detail)
    return functools.partial(_value_and_grad_from_state, value_fn)


__all__ = [
    "BacktrackingLinesearchInfo", "ScaleByBacktrackingLinesearchState",
    "scale_by_backtracking_linesearch", "value_and_grad_from_state",
]  # fmt: skip
