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
                     inject_hyperparams, lookahead, rollback (back to the last good params),
                     conditionally_*, freeze, flatten, monitor, ...; wrappers/README.md lists them
    microbatching.py a function of a large batch evaluated a microbatch at a time (microbatch, micro_grad)
                     sam, mechanize, split_real_and_imaginary, schedule_free
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

from gradtx import landscapes, microbatching, presets, schedules, tree, viz
from gradtx.base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    apply_updates,
    identity,
    incremental_update,
    init_empty_state,
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
from gradtx.microbatching import (
    AccumulationType,
    Accumulator,
    micro_grad,
    micro_vmap,
    microbatch,
    reshape_batch_axis,
)
from gradtx.packing import Packed, pack, unpack
from gradtx.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    cyclic_momentum_schedule,
    cyclic_schedule,
    exponential_decay,
    inverse_time_decay,
    join_schedules,
    lambda_schedule,
    linear_onecycle_schedule,
    linear_schedule,
    multiplicative_schedule,
    multiply_schedules,
    onecycle_momentum_schedule,
    onecycle_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
    sutskever_momentum_schedule,
    swa_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from gradtx.sharding import abstract_state, state_shardings
from gradtx.step import make_step
from gradtx.sweep import sweep
from gradtx.transforms.accumulation import ApplyEvery, apply_every
from gradtx.transforms.adabelief import ScaleByBeliefState, acprop, adabelief, scale_by_acprop, scale_by_belief
from gradtx.transforms.adadelta import ScaleByAdaDeltaState, adadelta, scale_by_adadelta
from gradtx.transforms.adafactor import (
    FactoredState,
    ScaleByRelativeStepState,
    adafactor,
    scale_by_factored_rms,
    scale_by_relative_step,
)
from gradtx.transforms.adagrad import ScaleByRssState, adagrad, scale_by_rss
from gradtx.transforms.adam import (
    ScaleByAdamState,
    ScaleByAmsgradState,
    adam,
    adamax,
    amsgrad,
    nadam,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
)
from gradtx.transforms.adam_atan2 import ScaleByAdamAtan2State, adam_atan2, scale_by_adam_atan2
from gradtx.transforms.adam_mini import ScaleByAdamMiniState, adam_mini, adam_mini_blocks, scale_by_adam_mini
from gradtx.transforms.adamw import adamaxw, adamw, nadamw
from gradtx.transforms.adan import ScaleByAdanState, adan, scale_by_adan
from gradtx.transforms.ademamix import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    ademamix,
    scale_by_ademamix,
    scale_by_simplified_ademamix,
    simplified_ademamix,
)
from gradtx.transforms.adopt import adopt, scale_by_adopt
from gradtx.transforms.asgd import AsgdState, asgd, asgd_averaged_params
from gradtx.transforms.averaging import AveragedParamsState, averaged_params, ema_params, swa_params
from gradtx.transforms.came import ScaleByCameState, came, scale_by_came
from gradtx.transforms.centralize import centralize
from gradtx.transforms.clipping import (
    adaptive_grad_clip,
    clip,
    clip_by_global_norm,
    clip_by_leaf_norm,
    global_norm,
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
)
from gradtx.transforms.cocob import COCOBState, cocob, scale_by_cocob
from gradtx.transforms.constraints import ZeroNansState, keep_params_nonnegative, zero_nans
from gradtx.transforms.distance_over_gradients import (
    ScaleByDistanceOverGradientsState,
    scale_by_distance_over_gradients,
)
from gradtx.transforms.dog import DoGState, DoWGState, dog, dowg, scale_by_dog, scale_by_dowg
from gradtx.transforms.fromage import fromage
from gradtx.transforms.ftrl import FtrlState, ftrl
from gradtx.transforms.kron import KronState, kron, kron_decay_mask, scale_by_kron
from gradtx.transforms.laprop import ScaleByLapropState, laprop, scale_by_laprop
from gradtx.transforms.layerwise import (
    clip_by_block_rms,
    lamb,
    lars,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradtx.transforms.lbfgs import SafeguardedLBFGSState, ScaleByLBFGSState, lbfgs, safeguarded_lbfgs, scale_by_lbfgs
from gradtx.transforms.linesearch import (
    BacktrackingLinesearchInfo,
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
    value_and_grad_from_state,
)
from gradtx.transforms.lion import ScaleByLionState, lion, scale_by_lion
from gradtx.transforms.madgrad import MadgradState, madgrad, scale_by_madgrad
from gradtx.transforms.mars import ScaleByMarsState, mars, mars_labels, scale_by_mars
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
from gradtx.transforms.momo import MomoAdamState, MomoState, momo, momo_adam
from gradtx.transforms.muon import MuonState, muon, muon_labels, scale_by_muon, scale_by_shape
from gradtx.transforms.nadam import ScaleByNadamState, scale_by_nadam
from gradtx.transforms.newton_schulz import MuonDimensionNumbers, orthogonalize_via_newton_schulz
from gradtx.transforms.noise import AddNoiseState, add_noise, noisy_sgd
from gradtx.transforms.normalize import NormalizeState, normalize, normalize_by_update_norm
from gradtx.transforms.normuon import NorMuonState, normuon, scale_by_normuon
from gradtx.transforms.novograd import ScaleByNovogradState, novograd, scale_by_novograd
from gradtx.transforms.optimistic import (
    ScaleByOptimisticGradientState,
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
    scale_by_optimistic_gradient,
)
from gradtx.transforms.plateau import ReduceLROnPlateauState, reduce_on_plateau
from gradtx.transforms.polyak import polyak_sgd, scale_by_polyak
from gradtx.transforms.privacy import DifferentiallyPrivateAggregateState, differentially_private_aggregate, dpsgd
from gradtx.transforms.radam import radam, scale_by_radam
from gradtx.transforms.regularization import AddDecayedWeightsState, add_decayed_weights
from gradtx.transforms.rmsprop import ScaleByRmsState, ScaleByRStdDevState, rmsprop, scale_by_rms, scale_by_stddev
from gradtx.transforms.rprop import ScaleByRpropState, rprop, scale_by_rprop
from gradtx.transforms.scaling import ScaleByScheduleState, scale, scale_by_learning_rate, scale_by_schedule
from gradtx.transforms.shampoo import ShampooState, scale_by_shampoo, shampoo
from gradtx.transforms.sign import scale_by_sign, sign_sgd, signum
from gradtx.transforms.sm3 import ScaleBySM3State, scale_by_sm3, sm3
from gradtx.transforms.sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
    sophia,
)
from gradtx.transforms.yogi import scale_by_yogi, yogi
from gradtx.transforms.zoom import ScaleByZoomLinesearchState, ZoomLinesearchInfo, scale_by_zoom_linesearch
from gradtx.wrappers import (
    ApplyIfFiniteState,
    ConditionallyMaskState,
    ConditionallyTransformState,
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    LookaheadParams,
    LookaheadState,
    MechanicState,
    MonitorState,
    MultiSteps,
    MultiStepsState,
    RollbackState,
    SAMState,
    SnapshotState,
    SplitRealAndImaginaryState,
    StatefulSchedule,
    WrappedSchedule,
    WrappedScheduleState,
    apply_if_finite,
    conditionally_mask,
    conditionally_transform,
    flatten,
    freeze,
    inject_hyperparams,
    inject_stateful_hyperparams,
    lookahead,
    measure_with_ema,
    mechanize,
    monitor,
    rollback,
    sam,
    selective_transform,
    skip_large_updates,
    skip_not_finite,
    snapshot,
    split_real_and_imaginary,
    with_extra_args_support,
)
from gradtx.wrappers.cautious import CautiousState, add_cautious_decayed_weights, cautious
from gradtx.wrappers.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
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
    "scale_by_amsgrad", "scale_by_adamax", "clip", "clip_by_global_norm", "clip_by_leaf_norm",
    "add_decayed_weights",
    "scale_by_trust_ratio", "scale_by_param_block_norm", "scale_by_param_block_rms", "clip_by_block_rms",
    "scale_by_factored_rms", "scale_by_relative_step",
    "scale_by_lion", "scale_by_rprop", "scale_by_radam", "scale_by_belief", "scale_by_yogi", "scale_by_novograd",
    "add_noise",
    # Polyak averaging of the params (ema_params, swa_params) and the reader of the average
    "ema_params", "swa_params", "averaged_params", "AveragedParamsState",
    "scale_by_nadam",
    # state
    "ScaleByScheduleState", "TraceState", "EmaState", "ScaleByMomentumState", "NesterovState",
    "BiasCorrectionState", "ScaleByRmsState", "ScaleByRStdDevState", "ScaleByRssState",
    "ScaleByAdaDeltaState", "ScaleByAdamState", "ScaleByAmsgradState", "AddDecayedWeightsState",
    "FactoredState", "ScaleByRelativeStepState",
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
    # issue 10 (optax's transformations, wrappers and helpers): transformations, their states, wrappers,
    # the extra-args protocol, and microbatching (also as the namespace gradtx.microbatching, as optax's)
    "centralize", "adaptive_grad_clip", "keep_params_nonnegative", "zero_nans", "apply_every",
    "per_example_global_norm_clip", "per_example_layer_norm_clip", "global_norm", "init_empty_state",
    "ZeroNansState", "ApplyEvery",
    "conditionally_mask", "conditionally_transform", "flatten", "freeze", "selective_transform",
    "monitor", "measure_with_ema", "snapshot", "inject_stateful_hyperparams", "WrappedSchedule",
    "StatefulSchedule", "ConditionallyMaskState", "ConditionallyTransformState", "MonitorState",
    "SnapshotState", "InjectStatefulHyperparamsState", "WrappedScheduleState",
    "with_extra_args_support", "GradientTransformationExtraArgs",
    "microbatching", "microbatch", "micro_grad", "micro_vmap", "reshape_batch_axis", "AccumulationType",
    "Accumulator",
    # quasi-Newton and line searches (their updates take value=, grad=, value_fn=), Polyak's step size (value=)
    "lbfgs", "scale_by_lbfgs", "ScaleByLBFGSState", "safeguarded_lbfgs", "SafeguardedLBFGSState",
    "scale_by_zoom_linesearch", "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo", "scale_by_backtracking_linesearch", "ScaleByBacktrackingLinesearchState",
    "BacktrackingLinesearchInfo", "value_and_grad_from_state", "polyak_sgd", "scale_by_polyak",
    # from optax.contrib (the established ones): learning-rate-free and loss-driven steps, SAM, privacy,
    # complex params
    "reduce_on_plateau", "ReduceLROnPlateauState", "sam", "SAMState", "normalize", "NormalizeState",
    "mechanize", "MechanicState", "cocob", "scale_by_cocob", "COCOBState", "dog", "scale_by_dog", "DoGState",
    "dowg", "scale_by_dowg", "DoWGState", "momo", "MomoState", "momo_adam", "MomoAdamState",
    "madgrad", "scale_by_madgrad", "MadgradState", "acprop", "scale_by_acprop",
    "dpsgd", "differentially_private_aggregate", "DifferentiallyPrivateAggregateState",
    "split_real_and_imaginary", "SplitRealAndImaginaryState",
    # schedules from torch.optim: CyclicLR, OneCycleLR (with their momentum cycles), LambdaLR,
    # MultiplicativeLR, ChainedScheduler (SequentialLR is join_schedules), SWALR
    "cyclic_schedule", "cyclic_momentum_schedule", "onecycle_schedule", "onecycle_momentum_schedule",
    "lambda_schedule", "multiplicative_schedule", "multiply_schedules", "swa_schedule",
    # tools: readable and checkable chains, one-program sweeps, test functions and pictures (gradtx.viz
    # needs matplotlib, imported when one of its functions is called), the range test, the gradient check
    "describe", "lint", "state_nbytes", "sweep", "landscapes", "viz", "lr_finder", "check_grads",
    # issue 10 (optim): optax's remaining optimizers and transformations, torch's ASGD, Keras's FTRL
    "scale_by_adan", "scale_by_sm3", "scale_by_optimistic_gradient", "scale_by_distance_over_gradients",
    "normalize_by_update_norm",
    "ScaleByAdanState", "ScaleBySM3State", "ScaleByOptimisticGradientState", "ScaleByDistanceOverGradientsState",
    "AsgdState", "FtrlState",
    "adan", "nadamw", "adamaxw", "sm3", "fromage", "optimistic_gradient_descent", "optimistic_adam",
    "optimistic_adam_v2", "asgd", "ftrl", "asgd_averaged_params",
    # issue 11: schedule-free learning (optax.contrib's names); evaluate at schedule_free_eval_params
    "schedule_free", "schedule_free_sgd", "schedule_free_adamw", "schedule_free_eval_params", "ScheduleFreeState",
    # issue 11: matrix optimizers. Muon and NorMuon (Newton-Schulz orthogonalization of the momentum)
    "muon", "scale_by_muon", "scale_by_shape", "MuonState", "MuonDimensionNumbers", "muon_labels",
    "orthogonalize_via_newton_schulz", "normuon", "scale_by_normuon", "NorMuonState",
    # issue 11: Adam's newer relatives. CAME (confidence-guided factored moments), LaProp (momentum of
    # the normalized gradient), Adam-atan2 (atan2 in place of eps)
    "came", "scale_by_came", "ScaleByCameState", "laprop", "scale_by_laprop", "ScaleByLapropState",
    "adam_atan2", "scale_by_adam_atan2", "ScaleByAdamAtan2State",
    # issue 11: Sophia (optax.contrib's; its update takes obj_fn= for Hutchinson's Hessian diagonal),
    # caution (a wrapper of any transformation) and cautious weight decay
    "sophia", "scale_by_sophia", "SophiaState", "hutchinson_estimator_diag_hessian", "HutchinsonState",
    "cautious", "CautiousState", "add_cautious_decayed_weights",
    # issue 11: Adam's newer relatives. MARS (variance-reduced gradient, clipped, fed to AdamW)
    "mars", "scale_by_mars", "ScaleByMarsState", "mars_labels",
    # Adam-mini (one second moment per block: a leaf, a neuron, a head)
    "adam_mini", "scale_by_adam_mini", "ScaleByAdamMiniState", "adam_mini_blocks",
    # issue 11: Shampoo (Kronecker-factored preconditioning, blocked and grafted as Distributed Shampoo)
    "shampoo", "scale_by_shampoo", "ShampooState",
    # PSGD Kron (Kronecker-factored preconditioners learned online)
    "kron", "scale_by_kron", "KronState", "kron_decay_mask",
    # issue 11: Adam's newer relatives (optax.contrib's names). ADOPT (the second moment one step
    # late), AdEMAMix (a slow EMA mixed in) and its simplified form
    "adopt", "scale_by_adopt", "ademamix", "scale_by_ademamix", "ScaleByAdemamixState",
    "simplified_ademamix", "scale_by_simplified_ademamix", "ScaleBySimplifiedAdEMAMixState",
]  # fmt: skip
