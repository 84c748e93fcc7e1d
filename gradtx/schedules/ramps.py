"""Ramps and decays: constant, linear, polynomial, exponential, 1/t and cosine, and their warmups."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import FRACTION, NONNEG, OR_NONE, POSITIVE, REAL, ArgumentValueError, check, check_flag
from gradtx.schedules.base import (
    CYCLE,
    STEPS,
    _cosine,
    _count,
    _dtypes,
    _exponential,
    _polynomial,
    _steps,
    _warmup,
)


def _constant(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.value)
    return d.out(jnp.broadcast_to(d.of(hp.value), _count(count).shape))


def constant_schedule(value: float) -> Bound:
    """The same value at every step.

        value(k) = value

    >>> import gradtx
    >>> s = gradtx.constant_schedule(0.1)
    >>> s
    constant_schedule(value=0.1)
    >>> round(float(s(1000)), 4)
    0.1
    """
    check("constant_schedule", value=(value, REAL))
    return schedule("constant_schedule", _constant, value=value)


def _poly(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.end_value, hp.power)
    init, end, power = d.of(hp.init_value), d.of(hp.end_value), d.of(hp.power)
    return d.out(_polynomial(_count(count), d, init, end, power, hp.transition_steps, hp.transition_begin))


def polynomial_schedule(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Bound:
    """A polynomial ramp from `init_value` to `end_value` over `transition_steps` steps.

        t = clip(k - B, 0, T)
        value(k) = (I - E) (1 - t / T)^P + E

    I = init_value, E = end_value, P = power, T = transition_steps, B = transition_begin. T = 0 holds
    the value at I (as optax).

    >>> import gradtx
    >>> s = gradtx.polynomial_schedule(1.0, 0.0, power=2, transition_steps=10)
    >>> s
    polynomial_schedule(init_value=1.0, end_value=0.0, power=2, transition_steps=10, transition_begin=0)
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 20)]
    [1.0, 0.25, 0.0, 0.0]
    """
    builder = "polynomial_schedule"
    check(builder, init_value=(init_value, REAL), end_value=(end_value, REAL), power=(power, NONNEG))
    steps, begin = _steps(
        builder, transition_steps=(transition_steps, STEPS), transition_begin=(transition_begin, STEPS)
    )
    return schedule(
        builder, _poly,
        init_value=init_value, end_value=end_value, power=power, transition_steps=steps, transition_begin=begin,
    )  # fmt: skip


def _linear(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.end_value)
    init, end, one = d.of(hp.init_value), d.of(hp.end_value), jnp.ones((), d.compute)
    return d.out(_polynomial(_count(count), d, init, end, one, hp.transition_steps, hp.transition_begin))


def linear_schedule(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Bound:
    """A straight line from `init_value` to `end_value` over `transition_steps` steps.

        t = clip(k - B, 0, T)
        value(k) = I + (E - I) t / T

    polynomial_schedule with power 1. T = 0 holds the value at I (as optax).

    >>> import gradtx
    >>> s = gradtx.linear_schedule(1.0, 0.0, transition_steps=10, transition_begin=5)
    >>> s
    linear_schedule(init_value=1.0, end_value=0.0, transition_steps=10, transition_begin=5)
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 15, 20)]
    [1.0, 1.0, 0.5, 0.0, 0.0]
    """
    builder = "linear_schedule"
    check(builder, init_value=(init_value, REAL), end_value=(end_value, REAL))
    steps, begin = _steps(
        builder, transition_steps=(transition_steps, STEPS), transition_begin=(transition_begin, STEPS)
    )
    return schedule(
        builder, _linear, init_value=init_value, end_value=end_value, transition_steps=steps, transition_begin=begin
    )


def _exp(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.decay_rate, hp.end_value)
    end = None if hp.end_value is None else d.of(hp.end_value)
    value = _exponential(
        _count(count), d, d.of(hp.init_value), hp.transition_steps, d.of(hp.decay_rate),
        hp.transition_begin, hp.staircase, end,
    )  # fmt: skip
    return d.out(value)


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Bound:
    """Multiplies `init_value` by `decay_rate` every `transition_steps` steps, smoothly or in steps.

        p = (k - B) / T                 (floor((k - B) / T) when staircase)
        value(k) = I r^p  for k > B,    I  for k <= B
        value(k) = max(value(k), E)     (min when r > 1; only when end_value E is given)

    r = decay_rate, T = transition_steps, B = transition_begin. The lecture's alpha0 e^(-k t) is
    exponential_decay(alpha0, 1, exp(-k)).

    >>> import gradtx
    >>> s = gradtx.exponential_decay(1.0, transition_steps=10, decay_rate=0.5, staircase=True)
    >>> s
    exponential_decay(init_value=1.0, transition_steps=10, decay_rate=0.5, transition_begin=0, staircase=True)
    >>> [round(float(s(k)), 4) for k in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    """
    builder = "exponential_decay"
    check(
        builder, init_value=(init_value, REAL), decay_rate=(decay_rate, POSITIVE), end_value=(end_value, REAL + OR_NONE)
    )
    steps, begin = _steps(
        builder, transition_steps=(transition_steps, CYCLE), transition_begin=(transition_begin, STEPS)
    )
    return schedule(
        builder, _exp,
        init_value=init_value, transition_steps=steps, decay_rate=decay_rate, transition_begin=begin,
        staircase=check_flag(builder, "staircase", staircase), end_value=end_value,
    )  # fmt: skip


def _inverse_time(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.decay_rate)
    n = _count(count) - hp.transition_begin
    n = jnp.maximum(n, jnp.zeros((), n.dtype))  # t = max(k - B, 0)
    t = (n // hp.transition_steps).astype(d.compute) if hp.staircase else n.astype(d.compute) / hp.transition_steps
    return d.out(d.of(hp.init_value) / (1 + d.of(hp.decay_rate) * t))  # I / (1 + r t)


def inverse_time_decay(
    init_value: float,
    decay_rate: float,
    transition_steps: int = 1,
    transition_begin: int = 0,
    staircase: bool = False,
) -> Bound:
    """The lecture's 1/t decay, alpha0 / (1 + k t): `init_value / (1 + decay_rate * t)`.

        t = max(k - B, 0) / T           (floor(max(k - B, 0) / T) when staircase)
        value(k) = I / (1 + r t)

    I = init_value, r = decay_rate, T = transition_steps, B = transition_begin. The argument names
    and meanings are exponential_decay's; decay_rate comes second (and T defaults to 1) so that the
    lecture's form is inverse_time_decay(alpha0, k). Keras' InverseTimeDecay with decay_steps = T.

    >>> import gradtx
    >>> s = gradtx.inverse_time_decay(1.0, 0.5)
    >>> s
    inverse_time_decay(init_value=1.0, decay_rate=0.5, transition_steps=1, transition_begin=0, staircase=False)
    >>> [round(float(s(k)), 4) for k in (0, 1, 2, 6)]
    [1.0, 0.6667, 0.5, 0.25]
    """
    builder = "inverse_time_decay"
    check(builder, init_value=(init_value, REAL), decay_rate=(decay_rate, NONNEG))
    steps, begin = _steps(
        builder, transition_steps=(transition_steps, CYCLE), transition_begin=(transition_begin, STEPS)
    )
    return schedule(
        builder, _inverse_time,
        init_value=init_value, decay_rate=decay_rate, transition_steps=steps, transition_begin=begin,
        staircase=check_flag(builder, "staircase", staircase),
    )  # fmt: skip


def _cos(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.alpha, hp.exponent)
    init, alpha, exponent = d.of(hp.init_value), d.of(hp.alpha), d.of(hp.exponent)
    return d.out(_cosine(_count(count), d, init, hp.decay_steps, alpha, exponent))


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Bound:
    """Half a cosine from `init_value` down to `alpha * init_value` over `decay_steps` steps.

        t = min(k, T)
        value(k) = I ((1 - alpha) ((1 + cos(pi t / T)) / 2)^p + alpha)

    T = decay_steps, p = exponent, alpha in [0, 1] (the final fraction of I). Loshchilov & Hutter
    (2017), SGDR.

    >>> import gradtx
    >>> s = gradtx.cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
    >>> s
    cosine_decay_schedule(init_value=1.0, decay_steps=100, alpha=0.1, exponent=1.0)
    >>> [round(float(s(k)), 4) for k in (0, 50, 100, 200)]
    [1.0, 0.55, 0.1, 0.1]
    """
    builder = "cosine_decay_schedule"
    check(builder, init_value=(init_value, REAL), alpha=(alpha, FRACTION), exponent=(exponent, NONNEG))
    (steps,) = _steps(builder, decay_steps=(decay_steps, CYCLE))
    return schedule(builder, _cos, init_value=init_value, decay_steps=steps, alpha=alpha, exponent=exponent)


def _warmup_constant(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.peak_value)
    return d.out(_warmup(_count(count), d, d.of(hp.init_value), d.of(hp.peak_value), hp.warmup_steps))


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Bound:
    """A linear warmup from `init_value` to `peak_value` over `warmup_steps` steps, then constant.

        value(k) = I + (P - I) k / W   for k < W,    P  for k >= W

    warmup_steps = 0 gives P from the start (optax stays at I, as its linear_schedule with T = 0).

    >>> import gradtx
    >>> s = gradtx.warmup_constant_schedule(0.0, 1.0, warmup_steps=10)
    >>> s
    warmup_constant_schedule(init_value=0.0, peak_value=1.0, warmup_steps=10)
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 100)]
    [0.0, 0.5, 1.0, 1.0]
    """
    builder = "warmup_constant_schedule"
    check(builder, init_value=(init_value, REAL), peak_value=(peak_value, REAL))
    (warmup,) = _steps(builder, warmup_steps=(warmup_steps, STEPS))
    return schedule(builder, _warmup_constant, init_value=init_value, peak_value=peak_value, warmup_steps=warmup)


def _warmup_cosine(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.peak_value, hp.end_value, hp.exponent)
    k, init, peak, end = _count(count), d.of(hp.init_value), d.of(hp.peak_value), d.of(hp.end_value)
    alpha = jnp.where(peak == 0, 0, end / jnp.where(peak == 0, 1, peak))  # alpha = E / P (0 when P = 0)
    warm = _warmup(k, d, init, peak, hp.warmup_steps)
    decay_steps = hp.decay_steps - hp.warmup_steps
    decay = _cosine(_count(k - hp.warmup_steps), d, peak, decay_steps, alpha, d.of(hp.exponent))
    return d.out(jnp.where(k < hp.warmup_steps, warm, decay))


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Bound:
    """A linear warmup to `peak_value`, then half a cosine down to `end_value`.

        value(k) = I + (P - I) k / W                                 for k < W
        value(k) = E + (P - E) ((1 + cos(pi t / (D - W))) / 2)^p     for k >= W,  t = min(k - W, D - W)

    D = decay_steps counts the warmup too, so it must exceed W = warmup_steps. The second line is
    cosine_decay_schedule(P, D - W, alpha=E/P, exponent) from k = W, as optax writes it; so with
    P = 0 (where optax takes alpha = 0) the value after the warmup is 0.

    >>> import gradtx
    >>> s = gradtx.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110)
    >>> s
    warmup_cosine_decay_schedule(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=110,
                                 end_value=0.0, exponent=1.0)
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    builder = "warmup_cosine_decay_schedule"
    check(
        builder, init_value=(init_value, REAL), peak_value=(peak_value, REAL),
        end_value=(end_value, REAL), exponent=(exponent, NONNEG),
    )  # fmt: skip
    warmup, steps = _steps(builder, warmup_steps=(warmup_steps, STEPS), decay_steps=(decay_steps, CYCLE))
    if steps <= warmup:
        raise ArgumentValueError(
            builder, "decay_steps",
            f"counts the warmup too, so it must exceed warmup_steps, got decay_steps={steps}, warmup_steps={warmup}",
        )  # fmt: skip
    return schedule(
        builder, _warmup_cosine,
        init_value=init_value, peak_value=peak_value, warmup_steps=warmup, decay_steps=steps,
        end_value=end_value, exponent=exponent,
    )  # fmt: skip


def _warmup_exp(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.peak_value, hp.decay_rate, hp.end_value)
    k, init, peak = _count(count), d.of(hp.init_value), d.of(hp.peak_value)
    end = None if hp.end_value is None else d.of(hp.end_value)
    warm = _warmup(k, d, init, peak, hp.warmup_steps)
    decay = _exponential(
        _count(k - hp.warmup_steps), d, peak, hp.transition_steps, d.of(hp.decay_rate),
        hp.transition_begin, hp.staircase, end,
    )  # fmt: skip
    return d.out(jnp.where(k < hp.warmup_steps, warm, decay))


def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Bound:
    """A linear warmup to `peak_value`, then exponential decay from it.

        value(k) = I + (P - I) k / W                         for k < W
        value(k) = exponential_decay(P, T, r, B, staircase, E)(k - W)   for k >= W

    >>> import gradtx
    >>> s = gradtx.warmup_exponential_decay_schedule(0.0, 1.0, 10, transition_steps=10, decay_rate=0.5)
    >>> s
    warmup_exponential_decay_schedule(init_value=0.0, peak_value=1.0, warmup_steps=10, transition_steps=10,
                                      decay_rate=0.5, transition_begin=0, staircase=False)
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 20, 30)]
    [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    builder = "warmup_exponential_decay_schedule"
    check(
        builder, init_value=(init_value, REAL), peak_value=(peak_value, REAL),
        decay_rate=(decay_rate, POSITIVE), end_value=(end_value, REAL + OR_NONE),
    )  # fmt: skip
    warmup, steps, begin = _steps(
        builder, warmup_steps=(warmup_steps, STEPS), transition_steps=(transition_steps, CYCLE),
        transition_begin=(transition_begin, STEPS),
    )  # fmt: skip
    return schedule(
        builder, _warmup_exp,
        init_value=init_value, peak_value=peak_value, warmup_steps=warmup, transition_steps=steps,
        decay_rate=decay_rate, transition_begin=begin, staircase=check_flag(builder, "staircase", staircase),
        end_value=end_value,
    )  # fmt: skip


__all__ = [
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "exponential_decay",
    "inverse_time_decay",
    "cosine_decay_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
