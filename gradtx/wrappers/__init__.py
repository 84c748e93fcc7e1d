"""Wrappers: transformations that change when, whether or with what their inner transformation runs.

    apply_if_finite(t, n)        u = t(g) if g is finite (or after more than n non-finite in a row), else 0
    MultiSteps(t, k)             u = t(mean of the last k gradients) every k-th step, else 0
    inject_hyperparams(b)(...)   u = b(**state.hyperparams)(g): hyperparameters live in the state
    lookahead(t, k, alpha)       fast weights step with t; every k steps the slow weights move
                                 alpha of the way to them, and the fast weights restart there
    rollback(t, factor)          u = t(g) while the loss (update's loss=) is finite and below factor
                                 x its average, else u = last good params - params (and t's state back)
    sam(opt, adv, k)             k - 1 ascent steps -adv(g), then back to where they started and opt(g)
    mechanize(t)                 t's steps summed and scaled by a factor learned online (Mechanic)
    split_real_and_imaginary(t)  t run on the real and imaginary parts of complex leaves as real leaves

Each wrapper's state nests its inner transformation's state, under optax's field names, and
each passes the caller's keyword arguments on to it.
"""

from gradtx.wrappers.apply_if_finite import ApplyIfFiniteState, apply_if_finite
from gradtx.wrappers.inject_hyperparams import InjectHyperparamsState, inject_hyperparams
from gradtx.wrappers.lookahead import LookaheadParams, LookaheadState, lookahead
from gradtx.wrappers.mechanize import MechanicState, mechanize
from gradtx.wrappers.multi_steps import MultiSteps, MultiStepsState, skip_large_updates, skip_not_finite
from gradtx.wrappers.rollback import RollbackState, rollback
from gradtx.wrappers.sam import SAMState, sam
from gradtx.wrappers.split_real_and_imaginary import SplitRealAndImaginaryState, split_real_and_imaginary

__all__ = [
    "ApplyIfFiniteState",
    "InjectHyperparamsState",
    "LookaheadParams",
    "LookaheadState",
    "MechanicState",
    "MultiSteps",
    "MultiStepsState",
    "RollbackState",
    "SAMState",
    "SplitRealAndImaginaryState",
    "apply_if_finite",
    "inject_hyperparams",
    "lookahead",
    "mechanize",
    "rollback",
    "sam",
    "skip_large_updates",
    "skip_not_finite",
    "split_real_and_imaginary",
]
