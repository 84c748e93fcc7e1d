"""What every schedule is written in: argument checks (build time), dtypes, and the shared formulas.

The builders in ramps.py, piecewise.py and momentum.py validate their arguments with the functions
here and compute with the formulas here (polynomial ramps, warmups, exponential and cosine
decays, interpolation between boundaries, joins), so each formula is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.checks import NONNEG, ArgumentTypeError, check, is_tracer

STEPS = "[0, inf)"  # a step count or boundary
CYCLE = "[1, inf)"  # a length a value is divided by

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# ---------------------------------------------------------------------------------------------------
# Validation (build time)


def _integer(builder: str, name: str, value: Any) -> int:
    """A concrete integer (steps fix where a schedule changes); an integral float is accepted."""
    if is_tracer(value):
        raise ArgumentTypeError(builder, name, "must be a concrete integer number of steps, got a traced value")
    if isinstance(value, np.generic | np.ndarray | jax.Array) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ArgumentTypeError(builder, name, f"must be an integer number of steps, got {value!r}")


def _steps(builder: str, **named: tuple[Any, str]) -> list[int]:
    """Step arguments as Python ints, each checked against its range: `check`'s rule for steps."""
    ints = {name: _integer(builder, name, value) for name, (value, _) in named.items()}
    check(builder, **{name: (ints[name], spec) for name, (_, spec) in named.items()})
    return list(ints.values())


def _concrete(builder: str, name: str, value: Any, spec: str) -> Any:
    """A number that decides where a schedule changes (a fraction of steps): never a tracer."""
    if is_tracer(value):
        raise ArgumentTypeError(builder, name, "must be a concrete number (it sets a boundary), got a traced value")
    check(builder, **{name: (value, spec)})
    return value


def _pairs(builder: str, boundaries_and_scales: Any) -> tuple[tuple[int, Any], ...] | None:
    """`{step: scale}` or `(step, scale)` pairs, as pairs sorted by step; None when there are none."""
    if boundaries_and_scales is None:
        return None
    if isinstance(boundaries_and_scales, Mapping):
        items = list(boundaries_and_scales.items())
    elif isinstance(boundaries_and_scales, Iterable) and not isinstance(boundaries_and_scales, str):
        items = list(boundaries_and_scales)
        if not all(isinstance(p, tuple | list) and len(p) == 2 for p in items):
            raise ArgumentTypeError(
                builder, "boundaries_and_scales", "must be a dict {step: scale} or (step, scale) pairs"
            )
    else:
        raise ArgumentTypeError(
            builder, "boundaries_and_scales", f"must be a dict {{step: scale}}, got {boundaries_and_scales!r}"
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
    if not arrays:  # JAX's default float: float64 under jax_enable_x64, so a float64 run is not rounded
        default = np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
        return _Dtypes(default, default)
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
