"""Scaling: multiply updates by a step size, a learning rate or a schedule.

scale(s):                      u <- s g
scale_by_learning_rate(eta):   u <- -eta g           (the sign flip: apply_updates adds u)
scale_by_schedule(f):          u <- f(k) g           (k = number of updates already applied)
"""

from __future__ import annotations

from typing import NamedTuple

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    init_empty,
    next_count,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import SCHEDULE, check, check_schedule


class ScaleByScheduleState(NamedTuple):
    """count: the number of updates already applied (int32), the schedule's argument."""

    count: Count


def _scale_update(hp: Hyperparams, updates, state, params=None):
    return tree.scale(hp.step_size, updates), state


def scale(step_size: float) -> GradientTransformation:
    """Multiplies updates by a fixed `step_size` (a number or, under vmap, a tracer).

    >>> import gradtx
    >>> gradtx.scale(0.5)
    scale(step_size=0.5)
    """
    check("scale", step_size=(step_size, "[-inf, inf]"))  # a schedule goes to scale_by_schedule
    return transformation("scale", init_empty, _scale_update, step_size=step_size)


def _count_init(hp: Hyperparams, params) -> ScaleByScheduleState:
    return ScaleByScheduleState(count=zero_count())


def _schedule_update(hp: Hyperparams, updates, state: ScaleByScheduleState, params=None):
    step = hp.step_size_fn(state.count)
    return tree.scale(step, updates), ScaleByScheduleState(count=next_count(state.count))


def scale_by_schedule(step_size_fn: ScalarOrSchedule) -> GradientTransformation:
    """Multiplies updates by `step_size_fn(k)`, k = the number of updates already applied."""
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: step_size_fn must be a schedule count -> scalar, got {step_size_fn!r}")
    check_schedule("scale_by_schedule", "step_size_fn", step_size_fn)
    return transformation("scale_by_schedule", _count_init, _schedule_update, step_size_fn=step_size_fn)


def _lr_update(hp: Hyperparams, updates, state, params=None):
    sign = -1 if hp.flip_sign else 1
    return tree.scale(sign * hp.learning_rate, updates), state


def _lr_schedule_update(hp: Hyperparams, updates, state: ScaleByScheduleState, params=None):
    sign = -1 if hp.flip_sign else 1
    lr = value_at(hp.learning_rate, state.count)
    return tree.scale(sign * lr, updates), ScaleByScheduleState(count=next_count(state.count))


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True) -> GradientTransformation:
    """u <- -learning_rate * g: the last block of most optimizers.

    The sign is flipped because `apply_updates` adds updates to params (gradient *descent*).
    A schedule is evaluated at k = the number of updates already applied (state: a step count).

    >>> import gradtx
    >>> gradtx.scale_by_learning_rate(0.1)
    scale_by_learning_rate(learning_rate=0.1, flip_sign=True)
    """
    check("scale_by_learning_rate", learning_rate=(learning_rate, "[-inf, inf]" + SCHEDULE))
    if callable(learning_rate):
        return transformation(
            "scale_by_learning_rate", _count_init, _lr_schedule_update,
            learning_rate=learning_rate, flip_sign=flip_sign,
        )  # fmt: skip
    return transformation(
        "scale_by_learning_rate", init_empty, _lr_update, learning_rate=learning_rate, flip_sign=flip_sign
    )


__all__ = ["ScaleByScheduleState", "scale", "scale_by_learning_rate", "scale_by_schedule"]
