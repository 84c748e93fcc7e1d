"""gradtx: composable gradient transformations for JAX.

A transformation is an `init`/`update` pair of pure functions (`gradtx.base`); an optimizer is a
short `chain` of transformations. This file is the whole public API, re-exported from where each
name lives:

    base.py          the protocol: GradientTransformation, hyperparameters bound to functions
    checks.py        what builders validate when built and updates check when traced
    tree/            the tree math every transformation is written in, and optax.tree's tools (`gradtx.tree`)
    combine.py       composition: chain, named_chain, masked, partition, set_to_zero
    transforms/      one file per algorithm family: its state, its equations, its transformations
                     and its optimizers (adam.py holds scale_by_adam, adam, adamw, nadam, ...);
                     transforms/README.md lists which name lives where
    wrappers/        transformations around another one: apply_if_finite, MultiSteps,
                     inject_hyperparams, lookahead, rollback (back to the last good params)
    schedules/       learning-rate and momentum schedules (`gradtx.schedules`)
    presets/         torch.optim's and Keras's optimizers with their names, defaults and numbers
                     (`gradtx.presets.torch.Adam(lr=1e-3)`), and torch state_dict() conversion
    step.py, packing.py   the fast paths: make_step, pack / unpack
    sharding.py      restore targets and shardings of a state: abstract_state, state_shardings
    convert.py       states across layouts: optax's and gradtx's (state_from_optax, state_to_optax), and
                     a state carried over to params that gained or lost leaves (remap_state)
    memory/          states in fewer bytes (state_dtype, quantized_state), bfloat16 params trained
                     as if float32 (stochastic_rounding, kahan_summation), ZeRO (zero_shardings)
    testing.py       the conformance kit (`gradtx.testing.check_transformation`)

and the tools:

    walk.py          a transformation's stages, read from its hyperparameters (describe and lint use it)
    describe.py      describe (each stage: arguments, equation, state bytes, XLA cost), state_nbytes
    lint.py          lint: the mistakes that make a chain a wrong optimizer, from one table of roles
    sweep.py         sweep: a population of configurations trained with vmap under one jit
    lr_finder.py     lr_finder: the learning-rate range test
    gradcheck.py     check_grads: float64 central differences against jax.grad
    landscapes.py    the lecture's 2-D test functions (`gradtx.landscapes`)
    viz.py           pictures of trajectories, schedules, losses (`gradtx.viz`; needs matplotlib)

Names, arguments and defaults are optax's wherever optax has the concept.
"""

from gradtx import landscapes, presets, schedules, tree, viz
from gradtx.base import (
    EmptyState,
    GradientTransformation,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    apply_updates,
    identity,
    incremental_update,
    stateless,
    stateless_with_tree_map,
)
from gradtx.combine import (
    MaskedNode,
    MaskedState,
    MultiTransformState,
    PartitionState,
    chain,
    masked,
    multi_transform,
    named_chain,
    partition,
    set_to_zero,
)
from gradtx.convert import RemapReport, remap_state, state_from_optax, state_to_optax
from gradtx.describe import describe, state_nbytes
from gradtx.gradcheck import check_grads
from gradtx.lint import lint
from gradtx.lr_finder import lr_finder
from gradtx.memory.compact import CompactState, QuantizedArray, quantized_state, state_dtype
from gradtx.memory.precision import (
    KahanSummationState,
    StochasticRoundingState,
    kahan_summation,
    stochastic_round,
    stochastic_rounding,
)
from gradtx.memory.zero import zero_shardings
from gradtx.packing import Packed, pack, unpack
from gradtx.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    inverse_time_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
    sutskever_momentum_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from gradtx.sharding import abstract_state, state_shardings
from gradtx.step import make_step
from gradtx.sweep import sweep
from gradtx.transforms.adabelief import ScaleByBeliefState, adabelief, scale_by_belief
from gradtx.transforms.adadelta import ScaleByAdaDeltaState, adadelta, scale_by_adadelta
from gradtx.transforms.adafactor import FactoredState, adafactor, scale_by_factored_rms
from gradtx.transforms.adagrad import ScaleByRssState, adagrad, scale_by_rss
from gradtx.transforms.adam import (
    ScaleByAdamState,
    ScaleByAmsgradState,
    adam,
    adamax,
    adamw,
    amsgrad,
    nadam,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
)
from gradtx.transforms.clipping import clip, clip_by_global_norm
from gradtx.transforms.layerwise import (
    clip_by_block_rms,
    lamb,
    lars,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradtx.transforms.lion import ScaleByLionState, lion, scale_by_lion
from gradtx.transforms.momentum import (
    BiasCorrectionState,
    EmaState,
    NesterovState,
    ScaleByMomentumState,
    TraceState,
    bias_correction,
    ema,
    nesterov,
    scale_by_momentum,
    sgd,
    trace,
)
from gradtx.transforms.nadam import ScaleByNadamState, scale_by_nadam
from gradtx.transforms.noise import AddNoiseState, add_noise, noisy_sgd
from gradtx.transforms.novograd import ScaleByNovogradState, novograd, scale_by_novograd
from gradtx.transforms.radam import radam, scale_by_radam
from gradtx.transforms.regularization import AddDecayedWeightsState, add_decayed_weights
from gradtx.transforms.rmsprop import ScaleByRmsState, ScaleByRStdDevState, rmsprop, scale_by_rms, scale_by_stddev
from gradtx.transforms.rprop import ScaleByRpropState, rprop, scale_by_rprop
from gradtx.transforms.scaling import ScaleByScheduleState, scale, scale_by_learning_rate, scale_by_schedule
from gradtx.transforms.sign import scale_by_sign, sign_sgd, signum
from gradtx.transforms.yogi import scale_by_yogi, yogi
from gradtx.wrappers import (
    ApplyIfFiniteState,
    InjectHyperparamsState,
    LookaheadParams,
    LookaheadState,
    MultiSteps,
    MultiStepsState,
    RollbackState,
    apply_if_finite,
    inject_hyperparams,
    lookahead,
    rollback,
    skip_large_updates,
    skip_not_finite,
)

__version__ = "0.1.0"

__all__ = [
    # protocol and composition
    "GradientTransformation", "EmptyState", "Params", "Updates", "OptState", "Schedule",
    "ScalarOrSchedule", "identity", "stateless", "stateless_with_tree_map", "chain", "named_chain",
    "apply_updates", "incremental_update", "tree", "schedules", "abstract_state", "state_shardings",
    # other frameworks' optimizers, exactly (gradtx.presets.torch, gradtx.presets.keras, with the
    # torch state_dict conversions), optax's state layouts, and states for params that grow or shrink
    "presets", "state_from_optax", "state_to_optax", "remap_state", "RemapReport",
    # fast paths
    "make_step", "pack", "unpack", "Packed",
    "masked", "MaskedNode", "partition", "multi_transform", "set_to_zero",
    # wrappers
    "apply_if_finite", "MultiSteps", "skip_not_finite", "skip_large_updates", "inject_hyperparams",
    "lookahead", "LookaheadParams", "rollback", "RollbackState",
    # memory and scale (gradtx/memory/)
    "state_dtype", "quantized_state", "QuantizedArray", "CompactState", "stochastic_rounding",
    "kahan_summation", "stochastic_round", "StochasticRoundingState", "KahanSummationState",
    "zero_shardings",
    # transformations
    "scale", "scale_by_learning_rate", "scale_by_schedule", "scale_by_sign",
    "trace", "ema", "scale_by_momentum", "nesterov", "bias_correction",
    "scale_by_rms", "scale_by_stddev", "scale_by_rss", "scale_by_adadelta", "scale_by_adam",
    "scale_by_amsgrad", "scale_by_adamax", "clip", "clip_by_global_norm", "add_decayed_weights",
    "scale_by_trust_ratio", "scale_by_param_block_norm", "scale_by_param_block_rms", "clip_by_block_rms",
    "scale_by_factored_rms",
    "scale_by_lion", "scale_by_rprop", "scale_by_radam", "scale_by_belief", "scale_by_yogi", "scale_by_novograd",
    "add_noise", "scale_by_nadam",
    # state
    "ScaleByScheduleState", "TraceState", "EmaState", "ScaleByMomentumState", "NesterovState",
    "BiasCorrectionState", "ScaleByRmsState", "ScaleByRStdDevState", "ScaleByRssState",
    "ScaleByAdaDeltaState", "ScaleByAdamState", "ScaleByAmsgradState", "AddDecayedWeightsState",
    "FactoredState",
    "ScaleByLionState", "ScaleByRpropState", "ScaleByBeliefState", "ScaleByNovogradState", "AddNoiseState",
    "ScaleByNadamState",
    "MaskedState", "PartitionState", "MultiTransformState", "ApplyIfFiniteState", "MultiStepsState",
    "InjectHyperparamsState", "LookaheadState",
    # optimizers
    "sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "adamax", "amsgrad",
    "lamb", "lars", "adafactor",
    "lion", "radam", "adabelief", "yogi", "novograd", "noisy_sgd", "sign_sgd", "signum", "rprop",
    # schedules
    "constant_schedule", "linear_schedule", "polynomial_schedule", "exponential_decay",
    "inverse_time_decay", "piecewise_constant_schedule", "piecewise_interpolate_schedule",
    "cosine_decay_schedule", "warmup_constant_schedule", "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule", "join_schedules", "cosine_onecycle_schedule",
    "linear_onecycle_schedule", "sgdr_schedule", "sutskever_momentum_schedule",
    # tools: readable and checkable chains, one-program sweeps, test functions and pictures (gradtx.viz
    # needs matplotlib, imported when one of its functions is called), the range test, the gradient check
    "describe", "lint", "state_nbytes", "sweep", "landscapes", "viz", "lr_finder", "check_grads",
]  # fmt: skip
