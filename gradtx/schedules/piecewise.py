"""Schedules in pieces: constant or interpolated between boundaries, joined schedules, one-cycle and SGDR."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import check, check_schedule
from gradtx.schedules.base import (
    CYCLE,
    FRACTION,
    POSITIVE,
    REAL,
    STEPS,
    _concrete,
    _count,
    _Dtypes,
    _dtypes,
    _interpolate,
    _join,
    _pairs,
    _steps,
)
from gradtx.schedules.ramps import warmup_cosine_decay_schedule


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


__all__ = [
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "join_schedules",
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "sgdr_schedule",
]
