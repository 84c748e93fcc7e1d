"""torch.optim's cyclical policies as pure schedules: CyclicLR and OneCycleLR, each with its momentum cycle.

torch writes the momentum of a cycle into the optimizer's param group as a side effect of the
learning-rate scheduler (`cycle_momentum=True`). Here the momentum cycle is a schedule of its own,
built from the same cycle arguments, that goes wherever a momentum takes one:

    kw = dict(step_size_up=10, mode="triangular2")
    tx = gradtx.sgd(gradtx.cyclic_schedule(0.01, 0.1, **kw), momentum=gradtx.cyclic_momentum_schedule(0.8, 0.9, **kw))

(`trace(decay=...)`, `sgd(momentum=...)`, `scale_by_momentum(decay=...)`; for Adam's b1, which takes a
number, `inject_hyperparams(adam)(learning_rate=lr, b1=momentum)`.) Counts are k = updates already
applied, which is torch's `last_epoch` when the scheduler is stepped once per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import (
    FRACTION,
    MOMENTUM,
    POSITIVE,
    REAL,
    ArgumentTypeError,
    ArgumentValueError,
    check,
    check_flag,
    check_schedule,
    is_tracer,
)
from gradtx.schedules.base import CYCLE, STEPS, _concrete, _count, _Dtypes, _dtypes, _steps

# ---------------------------------------------------------------------------------------------------
# CyclicLR

_MODES = ("triangular", "triangular2", "exp_range")
_OWN_SCALE_MODE = {"triangular": "cycle", "triangular2": "cycle", "exp_range": "iterations"}


def _int() -> np.dtype:
    """int64 under x64, int32 otherwise: the dtype a user's function of the count gets."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.int64))


def _cycle(hp: Hyperparams, k: jax.Array, d: _Dtypes) -> tuple[jax.Array, jax.Array]:
    """(s, h): where k is in its cycle (s: 0 at the bottom, 1 at the peak) and the amplitude's scale h."""
    up, down = hp.step_size_up, hp.step_size_down
    total = up + down
    cycle = k // total + 1  # c = floor(1 + k / (U + D)), in integers: exact at any count
    r = (k - (cycle - 1) * total).astype(d.compute)  # r = k mod (U + D)
    s = jnp.where(r <= up, r / up, (total - r) / max(down, 1))  # s = r / U rising, (U + D - r) / D falling
    x = cycle if _scale_mode(hp) == "cycle" else k
    if hp.scale_fn is not None:
        h = d.of(hp.scale_fn(x.astype(_int())))  # in the canonical integer: x / 100 is then the canonical float
    elif hp.mode == "triangular":
        h = jnp.ones((), d.compute)
    elif hp.mode == "triangular2":
        h = jnp.exp2(-(cycle - 1).astype(d.compute))  # h = 1 / 2^(c - 1)
    else:
        h = d.of(hp.gamma) ** k.astype(d.compute)  # h = gamma^k
    return s, h


def _scale_mode(hp: Hyperparams) -> str:
    return hp.scale_mode if hp.scale_fn is not None else _OWN_SCALE_MODE[hp.mode]


def _cyclic(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.base_lr, hp.max_lr, hp.gamma)
    s, h = _cycle(hp, _count(count), d)
    base, peak = d.of(hp.base_lr), d.of(hp.max_lr)
    return d.out(base + (peak - base) * s * h)  # B + (M - B) s h


def _cyclic_momentum(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.base_momentum, hp.max_momentum, hp.gamma)
    s, h = _cycle(hp, _count(count), d)
    low, high = d.of(hp.base_momentum), d.of(hp.max_momentum)
    return d.out(high - (high - low) * s * h)  # mu_max - (mu_max - mu_base) s h


def _cycle_arguments(
    builder: str,
    step_size_up: int,
    step_size_down: int | None,
    mode: str,
    gamma: float,
    scale_fn: Callable | None,
    scale_mode: str | None,
) -> dict[str, Any]:
    """The cycle's arguments, checked and resolved, as both cyclic builders store them."""
    (up,) = _steps(builder, step_size_up=(step_size_up, CYCLE))
    (down,) = _steps(builder, step_size_down=(up if step_size_down is None else step_size_down, STEPS))
    check(builder, gamma=(gamma, "(0, 1]"))
    unit_gamma = is_tracer(gamma) or gamma == 1.0  # a traced gamma (a sweep) cannot be checked
    if mode not in _MODES:
        raise ArgumentValueError(builder, "mode", f"must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    if scale_fn is None:
        if not unit_gamma and mode != "exp_range":
            raise ArgumentValueError(
                builder, "gamma", f"is used by mode='exp_range' only, got gamma={gamma!r} with {mode=}"
            )
        if scale_mode is not None and scale_mode != _OWN_SCALE_MODE[mode]:
            raise ArgumentValueError(
                builder, "scale_mode",
                f"applies to a scale_fn; mode={mode!r} scales per {_OWN_SCALE_MODE[mode]!r}, got {scale_mode!r}",
            )  # fmt: skip
        return dict(step_size_up=up, step_size_down=down, mode=mode, gamma=gamma, scale_fn=None, scale_mode=None)
    if not callable(scale_fn):
        raise ArgumentTypeError(builder, "scale_fn", f"must be a function of the cycle or the count, got {scale_fn!r}")
    check_schedule(builder, "scale_fn", scale_fn)
    if mode != "triangular" or not unit_gamma:
        raise ArgumentValueError(
            builder, "scale_fn", f"replaces mode and gamma, so leave them at their defaults, got {mode=}, {gamma=}"
        )
    scale_mode = "cycle" if scale_mode is None else scale_mode
    if scale_mode not in ("cycle", "iterations"):
        raise ArgumentValueError(builder, "scale_mode", f"must be 'cycle' or 'iterations', got {scale_mode!r}")
    return dict(step_size_up=up, step_size_down=down, mode=mode, gamma=gamma, scale_fn=scale_fn, scale_mode=scale_mode)


def cyclic_schedule(
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable | None = None,
    scale_mode: str | None = None,
) -> Bound:
    """Smith's cyclical learning rate: up from `base_lr` toward `max_lr` and back, over and over.

        c = floor(k / (U + D)) + 1,   r = k - (c - 1) (U + D)            (the cycle, from 1; k in it)
        s = r / U  for r <= U,   (U + D - r) / D  otherwise               (0 at the bottom, 1 at the peak)
        value(k) = B + (M - B) s h
        h = 1 (triangular),  1 / 2^(c - 1) (triangular2),  gamma^k (exp_range),  scale_fn(c or k)

    B = base_lr, M = max_lr, U = step_size_up, D = step_size_down (None: U). Smith (2017),
    Cyclical Learning Rates for Training Neural Networks. torch.optim.lr_scheduler.CyclicLR's
    arguments, defaults and values (its `last_epoch` is k); the cycle position is computed in
    integers, so cycle boundaries are exact at any count. A `scale_fn` (a module-level JAX function,
    so the schedule pickles) gets the cycle c (`scale_mode='cycle'`, the default) or the count k
    (`'iterations'`) as an array of the canonical integer dtype (int64 under x64, so that `k / 100`
    is float64), and replaces `mode` and `gamma`. torch ignores the
    arguments that do nothing (a gamma without exp_range, a scale_mode without scale_fn); gradtx
    raises. The momentum torch cycles with it (`cycle_momentum=True`) is `cyclic_momentum_schedule`.

    >>> import gradtx
    >>> s = gradtx.cyclic_schedule(0.1, 1.0, step_size_up=4, mode="triangular2")
    >>> s
    cyclic_schedule(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=4, mode='triangular2', gamma=1.0)
    >>> [round(float(s(k)), 4) for k in (0, 2, 4, 6, 8, 12, 16)]
    [0.1, 0.55, 1.0, 0.55, 0.1, 0.55, 0.1]
    """
    builder = "cyclic_schedule"
    check(builder, base_lr=(base_lr, REAL), max_lr=(max_lr, REAL))
    cycle = _cycle_arguments(builder, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)
    return schedule(builder, _cyclic, base_lr=base_lr, max_lr=max_lr, **cycle)


def cyclic_momentum_schedule(
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable | None = None,
    scale_mode: str | None = None,
) -> Bound:
    """The momentum cycle of `cyclic_schedule`: inverted, from `max_momentum` down to `base_momentum` and back.

        value(k) = mu_max - (mu_max - mu_base) s h      (s, h: cyclic_schedule's, for the same cycle arguments)

    So the momentum is lowest where the learning rate peaks (Smith, 2018, A disciplined approach to
    neural network hyper-parameters). torch.optim.lr_scheduler.CyclicLR(cycle_momentum=True) writes
    these values into the param group's momentum (or Adam's beta1); its defaults 0.8 and 0.9. Pass
    it as the momentum: `sgd(lr, momentum=cyclic_momentum_schedule(...))` is torch's SGD with the
    cycle, since gradtx's momentum at update k uses the value at k, as torch's param group has it.

    >>> import gradtx
    >>> s = gradtx.cyclic_momentum_schedule(0.8, 0.9, step_size_up=4)
    >>> s
    cyclic_momentum_schedule(base_momentum=0.8, max_momentum=0.9, step_size_up=4, step_size_down=4, mode='triangular',
                             gamma=1.0)
    >>> [round(float(s(k)), 4) for k in (0, 2, 4, 6, 8)]
    [0.9, 0.85, 0.8, 0.85, 0.9]
    """
    builder = "cyclic_momentum_schedule"
    check(builder, base_momentum=(base_momentum, MOMENTUM), max_momentum=(max_momentum, MOMENTUM))
    cycle = _cycle_arguments(builder, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)
    return schedule(builder, _cyclic_momentum, base_momentum=base_momentum, max_momentum=max_momentum, **cycle)


# ---------------------------------------------------------------------------------------------------
# OneCycleLR


_ANNEAL = {
    "cos": lambda a, b, x: b + (a - b) / 2 * (jnp.cos(jnp.pi * x) + 1),  # b + (a - b) (1 + cos(pi x)) / 2
    "linear": lambda a, b, x: (b - a) * x + a,  # a + (b - a) x
}


def _phase_ends(hp: Hyperparams) -> list[float]:
    # torch's phase ends, as it computes them (floats; k <= end picks the phase)
    steps, pct = hp.total_steps, hp.pct_start
    if hp.three_phase:
        return [float(pct * steps) - 1, float(2 * pct * steps) - 2, steps - 1]
    return [float(pct * steps) - 1, steps - 1]


def _phases(hp: Hyperparams, k: jax.Array, d: _Dtypes, points: list[tuple[Any, Any]]) -> jax.Array:
    """Anneals between `points[i]` over phase i; k is held at the last step, total_steps - 1."""
    k = jnp.minimum(k, hp.total_steps - 1)
    ends, anneal = _phase_ends(hp), _ANNEAL[hp.anneal_strategy]
    values, start = [], 0.0
    for end, (a, b) in zip(ends, points, strict=True):
        length = end - start
        x = (k.astype(d.compute) - start) / length if length != 0 else jnp.ones((), d.compute)  # an empty phase: at b
        values.append(anneal(a, b, x))
        start = end
    value = values[-1]
    for end, earlier in zip(ends[-2::-1], values[-2::-1], strict=True):
        value = jnp.where(k <= math.floor(end), earlier, value)  # the first phase whose end is >= k
    return value


def _onecycle(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.max_lr, hp.div_factor, hp.final_div_factor)
    peak = d.of(hp.max_lr)
    initial = peak / d.of(hp.div_factor)  # P / div
    low = initial / d.of(hp.final_div_factor)  # P / (div final_div)
    points = [(initial, peak), (peak, initial), (initial, low)] if hp.three_phase else [(initial, peak), (peak, low)]
    return d.out(_phases(hp, _count(count), d, points))


def _onecycle_momentum(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.base_momentum, hp.max_momentum)
    low, high = d.of(hp.base_momentum), d.of(hp.max_momentum)
    points = [(high, low), (low, high), (high, high)] if hp.three_phase else [(high, low), (low, high)]
    return d.out(_phases(hp, _count(count), d, points))


def _onecycle_arguments(
    builder: str,
    total_steps: int | None,
    epochs: int | None,
    steps_per_epoch: int | None,
    pct_start: float,
    anneal_strategy: str,
    three_phase: bool,
) -> dict[str, Any]:
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ArgumentTypeError(builder, "total_steps", "is needed, or both epochs and steps_per_epoch")
        epochs, per_epoch = _steps(builder, epochs=(epochs, CYCLE), steps_per_epoch=(steps_per_epoch, CYCLE))
        steps = epochs * per_epoch
    else:
        if epochs is not None or steps_per_epoch is not None:
            raise ArgumentTypeError(builder, "total_steps", "is given, so leave epochs and steps_per_epoch None")
        (steps,) = _steps(builder, total_steps=(total_steps, CYCLE))
    pct = _concrete(builder, "pct_start", pct_start, FRACTION)
    three = check_flag(builder, "three_phase", three_phase)
    if three and pct > 0.5:
        raise ArgumentValueError(
            builder, "pct_start",
            f"must be at most 0.5 with three_phase (the rise and the fall take pct_start each), got {pct}",
        )  # fmt: skip
    if anneal_strategy not in _ANNEAL:
        raise ArgumentValueError(builder, "anneal_strategy", f"must be 'cos' or 'linear', got {anneal_strategy!r}")
    return dict(total_steps=steps, pct_start=pct, anneal_strategy=anneal_strategy, three_phase=three)


def onecycle_schedule(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Bound:
    """torch's one-cycle policy: up from max_lr / div_factor to `max_lr`, then down far below the start.

        I = M / div,   L = I / final_div,   T = total_steps,   e_1 = pct_start T - 1
        two phases:   I -> M over k in [0, e_1],   M -> L over (e_1, T - 1]
        three phases: I -> M over [0, e_1],   M -> I over (e_1, 2 pct_start T - 2],   I -> L up to T - 1
        in phase (e_prev, e]:  x = (k - e_prev) / (e - e_prev)   (e_prev = 0 for the first),
            cos:  b + (a - b) (1 + cos(pi x)) / 2,    linear:  a + (b - a) x   (from a to b)

    M = max_lr. Smith & Topin (2017), Super-Convergence; torch.optim.lr_scheduler.OneCycleLR's
    arguments (`total_steps`, or `epochs` times `steps_per_epoch`), defaults and values, whose
    phase ends are these floats. Past T - 1 the value stays L (torch raises after T steps). A phase
    of zero length is at its end value (torch divides by zero there); three_phase needs pct_start
    <= 0.5. The momentum torch cycles with it is `onecycle_momentum_schedule`. optax's
    `cosine_onecycle_schedule` and `linear_onecycle_schedule` are another one-cycle: they put the
    peak at floor(pct_start T) and reach the end value at T (see their docstrings).

    >>> import gradtx
    >>> s = gradtx.onecycle_schedule(1.0, total_steps=10, div_factor=10.0, anneal_strategy="linear")
    >>> s
    onecycle_schedule(max_lr=1.0, total_steps=10, pct_start=0.3, anneal_strategy='linear', div_factor=10.0,
                      final_div_factor=10000.0, three_phase=False)
    >>> [round(float(s(k)), 5) for k in (0, 1, 2, 3, 9, 100)]  # e_1 = 0.3 * 10 - 1 = 2
    [0.1, 0.55, 1.0, 0.85714, 1e-05, 1e-05]
    """
    builder = "onecycle_schedule"
    check(
        builder, max_lr=(max_lr, REAL), div_factor=(div_factor, POSITIVE), final_div_factor=(final_div_factor, POSITIVE)
    )
    cycle = _onecycle_arguments(builder, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase)
    return schedule(
        builder, _onecycle, max_lr=max_lr, **{k: v for k, v in cycle.items() if k != "three_phase"},
        div_factor=div_factor, final_div_factor=final_div_factor, three_phase=cycle["three_phase"],
    )  # fmt: skip


def onecycle_momentum_schedule(
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    three_phase: bool = False,
) -> Bound:
    """The momentum cycle of `onecycle_schedule`: down from `max_momentum` while the rate rises, back up after.

        two phases:   mu_max -> mu_base over [0, e_1],   mu_base -> mu_max up to T - 1
        three phases: mu_max -> mu_base,   mu_base -> mu_max,   then mu_max         (onecycle_schedule's phases)

    torch.optim.lr_scheduler.OneCycleLR(cycle_momentum=True) writes these values into the param
    group's momentum (or Adam's beta1); its defaults 0.85 and 0.95. The arguments are
    onecycle_schedule's, in its order, so one dict of them builds both. Pass it as the momentum of
    `sgd`, `trace` or `scale_by_momentum`.

    >>> import gradtx
    >>> s = gradtx.onecycle_momentum_schedule(10, anneal_strategy="linear")
    >>> s
    onecycle_momentum_schedule(total_steps=10, pct_start=0.3, anneal_strategy='linear', base_momentum=0.85,
                               max_momentum=0.95, three_phase=False)
    >>> [round(float(s(k)), 4) for k in (0, 1, 2, 3, 9, 100)]
    [0.95, 0.9, 0.85, 0.8643, 0.95, 0.95]
    """
    builder = "onecycle_momentum_schedule"
    check(builder, base_momentum=(base_momentum, MOMENTUM), max_momentum=(max_momentum, MOMENTUM))
    cycle = _onecycle_arguments(builder, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase)
    return schedule(
        builder, _onecycle_momentum, **{k: v for k, v in cycle.items() if k != "three_phase"},
        base_momentum=base_momentum, max_momentum=max_momentum, three_phase=cycle["three_phase"],
    )  # fmt: skip


__all__ = ["cyclic_schedule", "cyclic_momentum_schedule", "onecycle_schedule", "onecycle_momentum_schedule"]
