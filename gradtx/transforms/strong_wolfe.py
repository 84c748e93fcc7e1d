"""torch.optim.LBFGS's strong-Wolfe line search (torch 2.13's numbers), for `safeguarded_lbfgs`.

Along w + t d, with phi(t) = f(w + t d) and phi'(t) = <grad f(w + t d), d>, from a first trial t_0:

    bracketing   the bracket [t_prev, t] where phi(t) > phi(0) + c1 t phi'(0) or phi'(t) >= 0
                 (or phi(t) >= phi(t_prev), from the third trial on); t taken where |phi'(t)| <= -c2 phi'(0)
    extrapolate  t <- the cubic's minimizer through t_prev and t, in [t + 0.01 (t - t_prev), 10 t]
    zoom         t <- the cubic's minimizer through the bracket's ends, inside the bracket
    result       the bracket's end of the lower value: t, phi(t), max |grad f(w + t d)|, the evaluations

The zoom moves a trial 0.1 of the bracket's width in from the nearer end where it lands that close
twice running (or on or past an end), replaces an end as Nocedal & Wright's Alg. 3.6 does, and stops
where strong Wolfe holds, the bracket is narrower than tolerance_change / max |d|, or the trials run out.

c1 = 1e-4, c2 = 0.9. The first trial is always evaluated, then at most `max_trials` more; a
bracketing phase that uses them all ends with the bracket [0, t] (the lower of phi(0), phi(t) is
taken, no zoom). The cubic through (x1, f1, g1), (x2, f2, g2) is minFunc's (torch's source),
the bracket's middle where it has no real minimizer. Every comparison is torch's, in its order, so that a float64
run takes torch's branches and its step; scalars are in the dtype of the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import Count, Updates
from gradtx.transforms.linesearch import evaluate, slope_along

C1, C2 = 1e-4, 0.9  # torch's sufficient decrease and curvature constants


class _Point(NamedTuple):
    """A trial: the step t, phi(t), phi'(t) and max |grad f(w + t d)| (what ends torch's call)."""

    t: jax.Array
    value: jax.Array
    slope: jax.Array
    grad_max: jax.Array


class _Bracketing(NamedTuple):
    previous: _Point
    new: _Point
    trials: Count  # torch's ls_iter: trials after the first


class _Zoom(NamedTuple):
    ends: _Point  # each field of shape (2,): the bracket's two ends, in torch's positions
    low: jax.Array  # the position of the end of the lower value (int32)
    insufficient: jax.Array  # the last trial landed near an end (torch's insuf_progress)
    done: jax.Array
    trials: Count


def cubic_minimizer(x1, f1, g1, x2, f2, g2, lower, upper):
    """The minimizer of the cubic with values f1, f2 and slopes g1, g2 at x1, x2, in [lower, upper]."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    real = d2_square >= 0
    d2 = jnp.sqrt(jnp.where(real, d2_square, 0))
    from_x2 = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))  # measured from the farther point
    from_x1 = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    at = jnp.where(x1 <= x2, from_x2, from_x1)
    return jnp.where(real, jnp.minimum(jnp.maximum(at, lower), upper), (lower + upper) / 2)


def max_abs(g: Updates, dtype: Any) -> jax.Array:
    out = jnp.zeros([], dtype)
    for x in jax.tree.leaves(g):
        out = jnp.maximum(out, jnp.max(jnp.abs(x), initial=0).astype(dtype))
    return out


def _pick(ends: _Point, i: jax.Array) -> _Point:
    return _Point(*(x[i] for x in ends))


def _pair(first: _Point, second: _Point) -> _Point:
    return _Point(*(jnp.stack([a, b]) for a, b in zip(first, second, strict=True)))


def strong_wolfe(
    builder: str,
    f: Callable[..., Any],
    params: Any,
    d: Updates,
    t0: jax.Array,
    value0: jax.Array,
    slope0: jax.Array,
    grad_max0: jax.Array,
    max_trials: jax.Array,
    tolerance_change: Any,
) -> tuple[jax.Array, jax.Array, jax.Array, Count]:
    """(t, phi(t), max |grad f(w + t d)|, evaluations of f) for the search from t0 (module docstring).

    value0 = phi(0) = f(w), slope0 = phi'(0) = <g, d> < 0, grad_max0 = max |g|; max_trials >= 0
    evaluations after the first."""
    dtype = value0.dtype

    def at(t: jax.Array) -> _Point:
        value, grad = evaluate(builder, f, tree.add_scale(params, t, d), dtype, True)
        return _Point(t, value, slope_along(grad, d, dtype), max_abs(grad, dtype))

    def fails_decrease(p: _Point) -> jax.Array:
        return p.value > value0 + C1 * p.t * slope0  # Armijo fails: phi(t) > phi(0) + c1 t phi'(0)

    def curvature_holds(p: _Point) -> jax.Array:
        return jnp.abs(p.slope) <= -C2 * slope0  # |phi'(t)| <= c2 |phi'(0)|

    def rises(b: _Bracketing) -> jax.Array:
        return fails_decrease(b.new) | ((b.trials > 1) & (b.new.value >= b.previous.value))

    def bracketed(b: _Bracketing) -> jax.Array:
        return rises(b) | curvature_holds(b.new) | (b.new.slope >= 0)

    def extrapolate(b: _Bracketing) -> _Bracketing:
        old, new = b.previous, b.new
        lower, upper = new.t + 0.01 * (new.t - old.t), new.t * 10
        t = cubic_minimizer(old.t, old.value, old.slope, new.t, new.value, new.slope, lower, upper)
        return _Bracketing(new, at(t), b.trials + 1)

    zero = jnp.zeros([], dtype)
    origin = _Point(zero, value0, slope0, grad_max0)
    first = at(t0)
    b = jax.lax.while_loop(
        lambda b: ~bracketed(b) & (b.trials < max_trials),
        extrapolate,
        _Bracketing(origin, first, jnp.zeros([], jnp.int32)),
    )
    exhausted = b.trials >= max_trials  # the bracket [0, t], no zoom
    taken = ~exhausted & ~rises(b) & curvature_holds(b.new)  # the bracket [t]: t meets strong Wolfe
    left = tree.where(exhausted, origin, tree.where(taken, b.new, b.previous))
    ends = _pair(left, b.new)
    low = jnp.where(ends.value[0] <= ends.value[1], 0, 1).astype(jnp.int32)
    d_norm = max_abs(d, dtype)

    def zooming(z: _Zoom) -> jax.Array:
        wide = ~(jnp.abs(z.ends.t[1] - z.ends.t[0]) * d_norm < tolerance_change)
        return ~z.done & (z.trials < max_trials) & wide

    def zoom(z: _Zoom) -> _Zoom:
        e = z.ends
        hi, lo = jnp.maximum(e.t[0], e.t[1]), jnp.minimum(e.t[0], e.t[1])
        t = cubic_minimizer(e.t[0], e.value[0], e.slope[0], e.t[1], e.value[1], e.slope[1], lo, hi)
        eps = 0.1 * (hi - lo)
        near = jnp.minimum(hi - t, t - lo) < eps
        move = near & (z.insufficient | (t >= hi) | (t <= lo))  # 0.1 of the width in from the nearer end
        t = jnp.where(move, jnp.where(jnp.abs(t - hi) < jnp.abs(t - lo), hi - eps, lo + eps), t)
        new = at(t)
        low, high = z.low, 1 - z.low
        worse = fails_decrease(new) | (new.value >= e.value[low])  # new becomes the high end
        holds = ~worse & curvature_holds(new)
        flip = ~worse & ~holds & (new.slope * (e.t[high] - e.t[low]) >= 0)  # the old low becomes the high end
        at_low = tree.where(worse, _pick(e, low), new)
        at_high = tree.where(worse, new, tree.where(flip, _pick(e, low), _pick(e, high)))
        ends = tree.where(low == 0, _pair(at_low, at_high), _pair(at_high, at_low))
        low = jnp.where(worse, jnp.where(ends.value[0] <= ends.value[1], 0, 1).astype(jnp.int32), low)
        return _Zoom(ends, low, near & ~move, holds, z.trials + 1)

    z = jax.lax.while_loop(zooming, zoom, _Zoom(ends, low, jnp.asarray(False), taken, b.trials))
    best = _pick(z.ends, z.low)
    return best.t, best.value, best.grad_max, z.trials + 1


__all__: list[str] = []
