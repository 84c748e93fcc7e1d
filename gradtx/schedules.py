"""Schedules: a learning rate or a momentum as a function of the step count.

    schedule(k) -> value,   k = the number of updates already applied (the first update uses schedule(0))

This is the one step convention of gradtx: every transformation that takes a schedule keeps a step
count in its state and calls the schedule with it before incrementing it, as optax does.

Each builder returns a `gradtx.base.Bound`: a module-level function `_fn(hp, count)` with the
builder's arguments bound to it. So a schedule is equal and hashable by value (two
`cosine_decay_schedule(1.0, 100)` share one compiled step), picklable, and its repr is the code that
rebuilds it. Composite schedules (`join_schedules`, `sgdr_schedule`) hold their member schedules.

Counts: a Python or NumPy integer, an integer array (an int32 step counter), or a tracer under
`jax.jit` and `jax.vmap`. An array of counts gives an array of values, elementwise. Negative counts
are treated as 0. Step boundaries are compared in integers, so they are exact at any count.

Dtypes: values are computed in float32, or in float64 where a hyperparameter is a float64 array (a
tracer, when vmapping over a hyperparameter). When every hyperparameter is a number (NumPy and JAX
scalars are stored as Python numbers), the result is a float32 scalar, also under `jax_enable_x64`
(float32 resolves a learning rate to 7 digits; float64 would make optax-style code `lr * g` promote
float32 gradients to float64). A traced hyperparameter gives its own dtype. gradtx's transformations
cast a schedule's value to each leaf's compute dtype, so a bfloat16 model stays bfloat16.

Arguments: names, order and defaults are optax's. Step arguments (`transition_steps`, `decay_steps`,
`warmup_steps`, boundaries) are concrete integers (an integral float such as 1e4 is stored as an int).
Concrete values are checked when the schedule is built. Where optax quietly accepts a value that
its documentation rules out (a negative `transition_begin`, a zero `decay_rate`, a non-positive
`transition_steps` in `exponential_decay`), gradtx raises instead. `boundaries_and_scales` may be a
dict `{step: scale}` (optax's form) or `(step, scale)` pairs, which is how it is stored and shown.

Values differ from optax's only where optax's are wrong: `warmup_constant_schedule` with
`warmup_steps=0` starts at `peak_value` (optax's stays at `init_value` for ever); ramps are exact at
their ends under jit (optax's `polynomial_schedule` with a fractional power is NaN at its last step
under jit, where 1 - t/T rounds below 0); negative counts are treated as 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Bound, Hyperparams, check, check_schedule, schedule

REAL = "(-inf, inf)"
NONNEG = "[0, inf)"
POSITIVE = "(0, inf)"
STEPS = "[0, inf)"  # a step count or boundary
CYCLE = "[1, inf)"  # a length a value is divided by
FRACTION = "[0, 1]"

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# ---------------------------------------------------------------------------------------------------
# Validation (build time)


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _integer(builder: str, name: str, value: Any) -> int:
    """A concrete integer (steps fix where a schedule changes); an integral float is accepted."""
    if _is_tracer(value):
        raise TypeError(f"{builder}: {name} must be a concrete integer number of steps, got a traced value")
    if isinstance(value, np.generic | np.ndarray | jax.Array) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"{builder}: {name} must be an integer number of steps, got {value!r}")


def _steps(builder: str, **named: tuple[Any, str]) -> list[int]:
    """Step arguments as Python ints, each checked against its range: `check`'s rule for steps."""
    ints = {name: _integer(builder, name, value) for name, (value, _) in named.items()}
    check(builder, **{name: (ints[name], spec) for name, (_, spec) in named.items()})
    return list(ints.values())


def _concrete(builder: str, name: str, value: Any, spec: str) -> Any:
    """A number that decides where a schedule changes (a fraction of steps): never a tracer."""
    if _is_tracer(value):
        raise TypeError(f"{builder}: {name} must be a concrete number (it sets a boundary), got a traced value")
    check(builder, **{name: (value, spec)})
    return value


def _flag(builder: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{builder}: {name} must be True or False, got {value!r}")
    return bool(value)


def _pairs(builder: str, boundaries_and_scales: Any) -> tuple[tuple[int, Any], ...] | None:
    """`{step: scale}` or `(step, scale)` pairs, as pairs sorted by step; None when there are none."""
    if boundaries_and_scales is None:
        return None
    if isinstance(boundaries_and_scales, Mapping):
        items = list(boundaries_and_scales.items())
    elif isinstance(boundaries_and_scales, Iterable) and not isinstance(boundaries_and_scales, str):
        items = list(boundaries_and_scales)
        if not all(isinstance(p, tuple | list) and len(p) == 2 for p in items):
            raise TypeError(f"{builder}: boundaries_and_scales must be a dict {{step: scale}} or (step, scale) pairs")
    else:
        raise TypeError(
            f"{builder}: boundaries_and_scales must be a dict {{step: scale}}, got {boundaries_and_scales!r}"
        )
    pairs = []
    for b, s in items:
        (step,) = _steps(builder, **{"boundary": (b, STEPS)})
        check(builder, **{f"boundaries_and_scales[{step}]": (s, NONNEG)})
        pairs.append((step, s))
    return tuple(sorted(pairs, key=lambda p: p[0])) or None


# ---------------------------------------------------------------------------------------------------
# Numerics (trace time)


def _widest(dtypes: Iterable[np.dtype]) -> np.dtype:
    floats = {np.dtype(d) for d in dtypes if jnp.issubdtype(d, jnp.floating)}
    if len(floats) == 1:
        return floats.pop()
    return max(floats | {F32}, key=lambda d: d.itemsize)  # bfloat16 with float16: float32


class _Dtypes(NamedTuple):
    """How a schedule computes (`of`) and what it returns (`out`); see the module docstring."""

    compute: np.dtype
    result: np.dtype

    def of(self, value: Any) -> jax.Array:
        return jnp.asarray(value).astype(self.compute)

    def out(self, value: jax.Array) -> jax.Array:
        return value.astype(self.result)


def _dtypes(*hyperparameters: Any) -> _Dtypes:
    arrays = [v for v in hyperparameters if isinstance(v, jax.Array | np.ndarray)]
    if not arrays:
        return _Dtypes(F32, F32)
    result = _widest(v.dtype for v in arrays)
    return _Dtypes(F64 if result == F64 else F32, result)


def _count(count: Any) -> jax.Array:
    """The step count as an array, negative counts clamped to 0."""
    k = jnp.asarray(count)
    if not (jnp.issubdtype(k.dtype, jnp.integer) or jnp.issubdtype(k.dtype, jnp.floating)):
        raise TypeError(f"a schedule's count must be an integer (the updates applied so far), got dtype {k.dtype}")
    return jnp.maximum(k, jnp.zeros((), k.dtype))


def _select(below: jax.Array, a: Any, b: Any) -> jax.Array:
    """where(below, a, b) for two schedules' values, in their common dtype."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    dtype = _widest([a.dtype, b.dtype])
    common = _Dtypes(dtype, dtype)
    return common.out(jnp.where(below, a.astype(dtype), b.astype(dtype)))


# The formulas, shared by the builders that compose them. k: clamped count; d: the dtypes; values
# are already in d.compute.


def _polynomial(k, d: _Dtypes, init, end, power, steps: int, begin: int) -> jax.Array:
    if steps == 0:  # optax: no transition, the value stays at init_value
        return jnp.broadcast_to(init, k.shape)
    # 1 - t/T = (T - t) / T with T - t in integers, clipped to [0, 1]: under jit XLA divides by
    # multiplying by 1/T, so 1 - t/T can round below 0 at t = T (a fractional power of it is NaN: optax's
    # is) and T/T above 1 at t = 0 (a warmup from 0 would start at -1e-8).
    left = jnp.clip(steps - (k - begin), 0, steps).astype(d.compute)  # T - t, t = clip(k - B, 0, T)
    frac = jnp.clip(left / steps, 0, 1)
    return (init - end) * frac**power + end  # (I - E) (1 - t/T)^P + E


def _warmup(k, d: _Dtypes, init, peak, steps: int) -> jax.Array:
    if steps == 0:  # an empty warmup starts at the peak
        return jnp.broadcast_to(peak, k.shape)
    return _polynomial(k, d, init, peak, jnp.ones((), d.compute), steps, 0)


def _exponential(k, d: _Dtypes, init, steps: int, rate, begin: int, staircase: bool, end) -> jax.Array:
    n = k - begin
    p = (n // steps).astype(d.compute) if staircase else n.astype(d.compute) / steps  # p = (k - B) / T
    value = jnp.where(n <= 0, init, init * rate**p)  # I r^p for k > B, else I
    if end is None:
        return value
    return jnp.where(rate < 1, jnp.maximum(value, end), jnp.minimum(value, end))  # E bounds the decay


def _cosine(k, d: _Dtypes, init, steps: int, alpha, exponent) -> jax.Array:
    t = jnp.minimum(k, steps).astype(d.compute)
    c = (1 + jnp.cos(jnp.pi * t / steps)) / 2  # c = (1 + cos(pi t / T)) / 2
    return init * ((1 - alpha) * c**exponent + alpha)  # I ((1 - alpha) c^p + alpha)


_INTERPOLATE = {
    "linear": lambda a, b, x: a + (b - a) * x,  # a + (b - a) x
    "cosine": lambda a, b, x: b + (a - b) * (1 + jnp.cos(jnp.pi * x)) / 2,  # b + (a - b) (1 + cos(pi x)) / 2
}


def _interpolate(k, d: _Dtypes, kind: str, init, pairs: Iterable[tuple[int, Any]]) -> jax.Array:
    pairs = list(pairs)
    bounds = np.asarray([0] + [b for b, _ in pairs], dtype=np.int64)
    values = jnp.cumprod(jnp.stack([init] + [d.of(s) for _, s in pairs]))  # v_j = I s_1 ... s_j
    kk = k[..., None]
    lo, hi = jnp.asarray(bounds[:-1], k.dtype), jnp.asarray(bounds[1:], k.dtype)
    width = jnp.asarray(np.maximum(bounds[1:] - bounds[:-1], 1), d.compute)
    pct = (kk - lo).astype(d.compute) / width  # how far k is from b_{j-1} to b_j
    segment = _INTERPOLATE[kind](values[:-1], values[1:], pct)
    inside = (lo <= kk) & (kk < hi)
    last = k >= jnp.asarray(bounds[-1], k.dtype)
    return jnp.sum(jnp.where(inside, segment, 0), axis=-1) + jnp.where(last, values[-1], 0)


def _join(k: jax.Array, schedules: Iterable[Callable], boundaries: Iterable[int]) -> jax.Array:
    schedules = list(schedules)
    value = schedules[0](k)
    for boundary, later in zip(boundaries, schedules[1:], strict=True):
        value = _select(k < boundary, value, later(k - boundary))  # each starts from 0 at its boundary
    return value


# ---------------------------------------------------------------------------------------------------
# Constant, polynomial, linear


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


# ---------------------------------------------------------------------------------------------------
# Exponential and 1/t decay


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
    check(builder, init_value=(init_value, REAL), decay_rate=(decay_rate, POSITIVE), end_value=(end_value, REAL))
    steps, begin = _steps(
        builder, transition_steps=(transition_steps, CYCLE), transition_begin=(transition_begin, STEPS)
    )
    return schedule(
        builder, _exp,
        init_value=init_value, transition_steps=steps, decay_rate=decay_rate, transition_begin=begin,
        staircase=_flag(builder, "staircase", staircase), end_value=end_value,
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
        staircase=_flag(builder, "staircase", staircase),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Piecewise


def _piecewise_constant(hp: Hyperparams, count) -> jax.Array:
    pairs = hp.boundaries_and_scales or ()
    d = _dtypes(hp.init_value, *(s for _, s in pairs))
    k = _count(count)
    bounds = jnp.asarray(np.asarray([b for b, _ in pairs], dtype=np.int64), k.dtype)
    scales = jnp.stack([d.of(s) for _, s in pairs]) if pairs else jnp.ones((0,), d.compute)
    factor = jnp.prod(jnp.where(k[..., None] >= bounds, scales, 1), axis=-1)  # prod of s_i with b_i <= k
    return d.out(d.of(hp.init_value) * factor)


def piecewise_constant_schedule(init_value: float, boundaries_and_scales: Mapping[int, float] | None = None) -> Bound:
    """`init_value` multiplied by each scale from its boundary step on.

        value(k) = I * prod(s_i for every boundary b_i <= k)

    `boundaries_and_scales` is `{b_i: s_i}` or `(b_i, s_i)` pairs, scales >= 0. The lecture's step
    decay "halve every 10 epochs" of E steps each is {10 E: 0.5, 20 E: 0.5, ...}.

    >>> import gradtx
    >>> s = gradtx.piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.1})
    >>> s
    piecewise_constant_schedule(init_value=1.0, boundaries_and_scales=((100, 0.1), (200, 0.1)))
    >>> [round(float(s(k)), 4) for k in (0, 99, 100, 250)]
    [1.0, 1.0, 0.1, 0.01]
    """
    builder = "piecewise_constant_schedule"
    check(builder, init_value=(init_value, REAL))
    pairs = _pairs(builder, boundaries_and_scales)
    return schedule(builder, _piecewise_constant, init_value=init_value, boundaries_and_scales=pairs)


def _piecewise_interpolate(hp: Hyperparams, count) -> jax.Array:
    pairs = hp.boundaries_and_scales or ()
    d = _dtypes(hp.init_value, *(s for _, s in pairs))
    return d.out(_interpolate(_count(count), d, hp.interpolate_type, d.of(hp.init_value), pairs))


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Bound:
    """Interpolates, linearly or along a half cosine, between `init_value` scaled at each boundary.

        v_0 = I,  v_j = v_{j-1} s_j,  b_0 = 0
        value(k) = interp(v_{j-1}, v_j, (k - b_{j-1}) / (b_j - b_{j-1}))   for b_{j-1} <= k < b_j
        value(k) = v_n                                                       for k >= b_n
        linear: interp(a, b, x) = a + (b - a) x;   cosine: b + (a - b) (1 + cos(pi x)) / 2

    The values interpolated are the accumulated products v_j, not the scales s_j (as optax).

    >>> import gradtx
    >>> s = gradtx.piecewise_interpolate_schedule("linear", 1.0, {4: 0.5, 8: 0.5})
    >>> s
    piecewise_interpolate_schedule(interpolate_type='linear', init_value=1.0,
                                   boundaries_and_scales=((4, 0.5), (8, 0.5)))
    >>> [round(float(s(k)), 4) for k in (0, 2, 4, 6, 8, 20)]
    [1.0, 0.75, 0.5, 0.375, 0.25, 0.25]
    """
    builder = "piecewise_interpolate_schedule"
    if interpolate_type not in ("linear", "cosine"):
        raise ValueError(f"{builder}: interpolate_type must be 'linear' or 'cosine', got {interpolate_type!r}")
    check(builder, init_value=(init_value, REAL))
    pairs = _pairs(builder, boundaries_and_scales)
    return schedule(
        builder, _piecewise_interpolate,
        interpolate_type=interpolate_type, init_value=init_value, boundaries_and_scales=pairs,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Cosine, warmups, joins


def _cos(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.alpha, hp.exponent)
    init, alpha, exponent = d.of(hp.init_value), d.of(hp.alpha), d.of(hp.exponent)
    return d.out(_cosine(_count(count), d, init, hp.decay_steps, alpha, exponent))


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Bound:
    """Half a cosine from `init_value` down to `alpha * init_value` over `decay_steps` steps.

        t = min(k, T)
        value(k) = I ((1 - alpha) ((1 + cos(pi t / T)) / 2)^p + alpha)

    T = decay_steps, p = exponent. Loshchilov & Hutter (2017), SGDR.

    >>> import gradtx
    >>> s = gradtx.cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
    >>> s
    cosine_decay_schedule(init_value=1.0, decay_steps=100, alpha=0.1, exponent=1.0)
    >>> [round(float(s(k)), 4) for k in (0, 50, 100, 200)]
    [1.0, 0.55, 0.1, 0.1]
    """
    builder = "cosine_decay_schedule"
    check(builder, init_value=(init_value, REAL), alpha=(alpha, REAL), exponent=(exponent, NONNEG))
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
        raise ValueError(
            f"{builder}: decay_steps counts the warmup too, so it must exceed warmup_steps, got"
            f" decay_steps={steps}, warmup_steps={warmup}"
        )
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
        decay_rate=(decay_rate, POSITIVE), end_value=(end_value, REAL),
    )  # fmt: skip
    warmup, steps, begin = _steps(
        builder, warmup_steps=(warmup_steps, STEPS), transition_steps=(transition_steps, CYCLE),
        transition_begin=(transition_begin, STEPS),
    )  # fmt: skip
    return schedule(
        builder, _warmup_exp,
        init_value=init_value, peak_value=peak_value, warmup_steps=warmup, transition_steps=steps,
        decay_rate=decay_rate, transition_begin=begin, staircase=_flag(builder, "staircase", staircase),
        end_value=end_value,
    )  # fmt: skip


def _joined(hp: Hyperparams, count) -> jax.Array:
    return _join(_count(count), hp.schedules, hp.boundaries)


def join_schedules(schedules: Iterable[Callable], boundaries: Iterable[int]) -> Bound:
    """Runs `schedules[0]` until `boundaries[0]`, then `schedules[1]` from count 0, and so on.

        value(k) = schedules[j](k - b_j)   for b_j <= k < b_{j+1}     (b_0 = 0)

    >>> import gradtx
    >>> s = gradtx.join_schedules([gradtx.linear_schedule(0.0, 1.0, 10), gradtx.constant_schedule(0.5)], [10])
    >>> s
    join_schedules(schedules=(linear_schedule(init_value=0.0, end_value=1.0, transition_steps=10, transition_begin=0),
                              constant_schedule(value=0.5)), boundaries=(10,))
    >>> [round(float(s(k)), 4) for k in (0, 5, 10, 100)]
    [0.0, 0.5, 0.5, 0.5]
    """
    builder = "join_schedules"
    if not isinstance(schedules, Iterable) or not isinstance(boundaries, Iterable):
        raise TypeError(f"{builder}: schedules and boundaries must be sequences, got {schedules!r}, {boundaries!r}")
    schedules, boundaries = tuple(schedules), tuple(boundaries)
    if not schedules:
        raise ValueError(f"{builder}: schedules must hold at least one schedule")
    if len(boundaries) != len(schedules) - 1:
        raise TypeError(
            f"{builder}: boundaries must have one entry fewer than schedules (one boundary between each"
            f" two), got {len(schedules)} schedules and {len(boundaries)} boundaries"
        )
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"{builder}: schedules[{i}] must be a schedule count -> value, got {s!r}")
        check_schedule(builder, f"schedules[{i}]", s)
    bounds = tuple(_steps(builder, **{f"boundaries[{i}]": (b, STEPS) for i, b in enumerate(boundaries)}))
    if any(a > b for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"{builder}: boundaries must be non-decreasing, got {bounds}")
    return schedule(builder, _joined, schedules=schedules, boundaries=bounds)


def _onecycle_pairs(hp: Hyperparams, d: _Dtypes) -> list[tuple[int, jax.Array]]:
    steps, div = hp.transition_steps, d.of(hp.div_factor)
    if hp.builder == "cosine_onecycle_schedule":
        scales = {int(hp.pct_start * steps): div, steps: 1 / (div * d.of(hp.final_div_factor))}
    else:
        scales = {
            int(hp.pct_start * steps): div,
            int(hp.pct_final * steps): 1 / div,
            steps: 1 / d.of(hp.final_div_factor),
        }
    return sorted(scales.items(), key=lambda p: p[0])  # a dict, as optax's: a later equal step wins


def _onecycle(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.peak_value, hp.div_factor, hp.final_div_factor)
    kind = "cosine" if hp.builder == "cosine_onecycle_schedule" else "linear"
    init = d.of(hp.peak_value) / d.of(hp.div_factor)
    return d.out(_interpolate(_count(count), d, kind, init, _onecycle_pairs(hp, d)))


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Bound:
    """Smith's one-cycle policy: a half-cosine rise to `peak_value`, then a half-cosine fall.

        P / div  ->  P              over k in [0, floor(pct_start T))
        P  ->  P / (div final_div)  over k in [floor(pct_start T), T), then constant

    piecewise_interpolate_schedule("cosine", P / div, {floor(pct_start T): div, T: 1 / (div final_div)}).
    Smith & Topin (2017), Super-Convergence.

    >>> import gradtx
    >>> s = gradtx.cosine_onecycle_schedule(100, 1.0, div_factor=10.0)
    >>> s
    cosine_onecycle_schedule(transition_steps=100, peak_value=1.0, pct_start=0.3, div_factor=10.0,
                             final_div_factor=10000.0)
    >>> [round(float(s(k)), 4) for k in (0, 15, 30, 100)]
    [0.1, 0.55, 1.0, 0.0]
    """
    builder = "cosine_onecycle_schedule"
    check(
        builder, peak_value=(peak_value, REAL), div_factor=(div_factor, POSITIVE),
        final_div_factor=(final_div_factor, POSITIVE),
    )  # fmt: skip
    (steps,) = _steps(builder, transition_steps=(transition_steps, CYCLE))
    return schedule(
        builder, _onecycle,
        transition_steps=steps, peak_value=peak_value, pct_start=_concrete(builder, "pct_start", pct_start, FRACTION),
        div_factor=div_factor, final_div_factor=final_div_factor,
    )  # fmt: skip


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Bound:
    """Smith's one-cycle policy with straight lines: up to `peak_value`, back down, then an annihilation.

        P / div  ->  P                     over k in [0, floor(pct_start T))
        P  ->  P / div                     over k in [floor(pct_start T), floor(pct_final T))
        P / div  ->  P / (div final_div)   over k in [floor(pct_final T), T), then constant

    Smith & Topin (2017), Super-Convergence.

    >>> import gradtx
    >>> s = gradtx.linear_onecycle_schedule(100, 1.0, div_factor=10.0)
    >>> s
    linear_onecycle_schedule(transition_steps=100, peak_value=1.0, pct_start=0.3, pct_final=0.85, div_factor=10.0,
                             final_div_factor=10000.0)
    >>> [round(float(s(k)), 4) for k in (0, 15, 30, 85, 100)]
    [0.1, 0.55, 1.0, 0.1, 0.0]
    """
    builder = "linear_onecycle_schedule"
    check(
        builder, peak_value=(peak_value, REAL), div_factor=(div_factor, POSITIVE),
        final_div_factor=(final_div_factor, POSITIVE),
    )  # fmt: skip
    (steps,) = _steps(builder, transition_steps=(transition_steps, CYCLE))
    start = _concrete(builder, "pct_start", pct_start, FRACTION)
    final = _concrete(builder, "pct_final", pct_final, FRACTION)
    if final < start:
        raise ValueError(f"{builder}: pct_final must be at least pct_start, got pct_start={start}, pct_final={final}")
    return schedule(
        builder, _onecycle,
        transition_steps=steps, peak_value=peak_value, pct_start=start, pct_final=final,
        div_factor=div_factor, final_div_factor=final_div_factor,
    )  # fmt: skip


def _sgdr(hp: Hyperparams, count) -> jax.Array:
    ends = np.cumsum([cycle.hp.decay_steps for cycle in hp.cosine_kwargs])
    return _join(_count(count), hp.cosine_kwargs, [int(b) for b in ends[:-1]])


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any] | Bound]) -> Bound:
    """SGD with warm restarts: warmup-cosine cycles one after another, each restarting from its count 0.

        value(k) = cycle_j(k - D_1 - ... - D_{j-1})   while that is below D_j = cycle j's decay_steps

    Each cycle is `warmup_cosine_decay_schedule(**kwargs)` for one dict of `cosine_kwargs` (optax's
    form); a built warmup_cosine_decay_schedule is accepted too, and is how cycles are stored and
    shown. Loshchilov & Hutter (2017).

    >>> import gradtx
    >>> s = gradtx.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=10)] * 2)
    >>> s
    sgdr_schedule(cosine_kwargs=(warmup_cosine_decay_schedule(init_value=0.0, peak_value=1.0, warmup_steps=2,
                                                              decay_steps=10, end_value=0.0, exponent=1.0),
                                 warmup_cosine_decay_schedule(init_value=0.0, peak_value=1.0, warmup_steps=2,
                                                              decay_steps=10, end_value=0.0, exponent=1.0)))
    >>> [round(float(s(k)), 4) for k in (0, 2, 10, 12, 20)]
    [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    builder = "sgdr_schedule"
    if isinstance(cosine_kwargs, Mapping) or not isinstance(cosine_kwargs, Iterable):
        raise TypeError(f"{builder}: cosine_kwargs must be a sequence of dicts, one a cycle, got {cosine_kwargs!r}")
    cycles = []
    for i, kwargs in enumerate(cosine_kwargs):
        if isinstance(kwargs, Bound) and kwargs.hp.builder == "warmup_cosine_decay_schedule":
            cycles.append(kwargs)
        elif isinstance(kwargs, Mapping):
            cycles.append(warmup_cosine_decay_schedule(**kwargs))
        else:
            raise TypeError(
                f"{builder}: cosine_kwargs[{i}] must be a dict of warmup_cosine_decay_schedule's arguments,"
                f" got {kwargs!r}"
            )
    if not cycles:
        raise ValueError(f"{builder}: cosine_kwargs must hold at least one cycle")
    return schedule(builder, _sgdr, cosine_kwargs=tuple(cycles))


# ---------------------------------------------------------------------------------------------------
# Momentum


def _sutskever(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.mu_max)
    s = (_count(count) // hp.transition_steps).astype(d.compute)  # s = floor(t / 250)
    mu = 1 - 0.5 / (s + 1)  # 1 - 2^(-1 - log2(s + 1)) = 1 - 1 / (2 (s + 1)), one rounding
    return d.out(jnp.minimum(mu, d.of(hp.mu_max)))


def sutskever_momentum_schedule(mu_max: float, transition_steps: int = 250) -> Bound:
    """The momentum schedule of Sutskever, Martens, Dahl & Hinton (2013): 0.5, 0.75, 0.83, ... up to `mu_max`.

        mu_t = min(1 - 2^(-1 - log2(floor(t / 250) + 1)), mu_max) = min(1 - 1 / (2 (floor(t / 250) + 1)), mu_max)

    t = k, the updates already applied; the paper's 250 is `transition_steps` (named as in
    exponential_decay: the steps between two changes of value). Pass it as the decay of `trace` or
    `scale_by_momentum`; the paper's table uses mu_max in {0.9, 0.99, 0.995, 0.999}.

    >>> import gradtx
    >>> s = gradtx.sutskever_momentum_schedule(0.99)
    >>> s
    sutskever_momentum_schedule(mu_max=0.99, transition_steps=250)
    >>> [round(float(s(k)), 4) for k in (0, 250, 500, 750, 100_000)]
    [0.5, 0.75, 0.8333, 0.875, 0.99]
    """
    builder = "sutskever_momentum_schedule"
    check(builder, mu_max=(mu_max, FRACTION))
    (steps,) = _steps(builder, transition_steps=(transition_steps, CYCLE))
    return schedule(builder, _sutskever, mu_max=mu_max, transition_steps=steps)


__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inverse_time_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "sutskever_momentum_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
