"""Wrappers: transformations that change when, whether or with what their inner transformation runs.

    apply_if_finite(t, n)        u = t(g) if g is finite (or after more than n non-finite in a row), else 0
    MultiSteps(t, k)             u = t(mean of the last k gradients) every k-th step, else 0
    inject_hyperparams(b)(...)   u = b(**state.hyperparams)(g): hyperparameters live in the state
    lookahead(t, k, alpha)       fast weights step with t; every k steps the slow weights move
                                 alpha of the way to them, and the fast weights restart there
    rollback(t, factor)          u = t(g) while the loss (update's loss=) is finite and below factor
                                 x its average, else u = last good params - params (and t's state back)
    conditionally_transform(t, f)  u = t(g) at the steps where f(step) holds, else g
    conditionally_mask(t, f)     u = t(g) at the steps where f(step) holds, else 0
    freeze(mask)                 u = 0 where mask is True, else g
    selective_transform(t, freeze_mask=m)   u = t(g) where m is False (t keeps state for those alone), else 0
    flatten(t)                   u = t(concatenation of every leaf), cut back into leaves
    snapshot, monitor, measure_with_ema     u = g; measurements of g kept in the state
    inject_stateful_hyperparams(b)(...)     inject_hyperparams with stateful schedules (optax 0.2.8's layout)
    with_extra_args_support(t)   t whose update accepts (and ignores) keyword arguments
    sam(opt, adv, k)             k - 1 ascent steps -adv(g), then back to where they started and opt(g)
    mechanize(t)                 t's steps summed and scaled by a factor learned online (Mechanic)
    split_real_and_imaginary(t)  t run on the real and imaginary parts of complex leaves as real leaves
    schedule_free(t, lr)         t's steps move z; the params y interpolate z and the average x of z
                                 (schedule_free_sgd, schedule_free_adamw; x = schedule_free_eval_params)
    cautious(t)                  u = t(g) where its sign agrees with g's, rescaled by the fraction kept
                                 (and add_cautious_decayed_weights: decay where u and W agree in sign)

Each wrapper's state nests its inner transformation's state, under optax's field names, and
each passes the caller's keyword arguments on to it.
"""

from gradtx.wrappers.apply_if_finite import ApplyIfFiniteState, apply_if_finite
from gradtx.wrappers.conditionally import (
    ConditionallyMaskState,
    ConditionallyTransformState,
    conditionally_mask,
    conditionally_transform,
)
from gradtx.wrappers.extra_args import with_extra_args_support
from gradtx.wrappers.flatten import flatten
from gradtx.wrappers.freeze import freeze, selective_transform
from gradtx.wrappers.inject_hyperparams import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    StatefulSchedule,
    WrappedSchedule,
    WrappedScheduleState,
    inject_hyperparams,
    inject_stateful_hyperparams,
)
from gradtx.wrappers.lookahead import LookaheadParams, LookaheadState, lookahead
from gradtx.wrappers.mechanize import MechanicState, mechanize
from gradtx.wrappers.monitor import MonitorState, SnapshotState, measure_with_ema, monitor, snapshot
from gradtx.wrappers.multi_steps import MultiSteps, MultiStepsState, skip_large_updates, skip_not_finite
from gradtx.wrappers.rollback import RollbackState, rollback
from gradtx.wrappers.sam import SAMState, sam
from gradtx.wrappers.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from gradtx.wrappers.split_real_and_imaginary import SplitRealAndImaginaryState, split_real_and_imaginary

__all__ = [
    "ApplyIfFiniteState",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "LookaheadParams",
    "LookaheadState",
    "MechanicState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "RollbackState",
    "SAMState",
    "ScheduleFreeState",
    "SnapshotState",
    "SplitRealAndImaginaryState",
    "StatefulSchedule",
    "WrappedSchedule",
    "WrappedScheduleState",
    "apply_if_finite",
    "conditionally_mask",
    "conditionally_transform",
    "flatten",
    "freeze",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "lookahead",
    "measure_with_ema",
    "mechanize",
    "monitor",
    "rollback",
    "sam",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "selective_transform",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "split_real_and_imaginary",
    "with_extra_args_support",
]
