"""gradtx: composable gradient transformations for JAX.

The whole public API is listed here. A transformation is an `init`/`update` pair (see
`gradtx.base`); optimizers are short `chain`s of transformations (see `gradtx.optimizers`).
"""

from gradtx import schedules, tree
from gradtx.base import (
    EmptyState,
    GradientTransformation,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    abstract_state,
    apply_updates,
    identity,
    incremental_update,
    state_shardings,
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
from gradtx.memory.compact import CompactState, QuantizedArray, quantized_state, state_dtype
from gradtx.memory.precision import (
    KahanSummationState,
    StochasticRoundingState,
    kahan_summation,
    stochastic_round,
    stochastic_rounding,
)
from gradtx.memory.zero import zero_shardings
from gradtx.optimizers import (
    adabelief,
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lamb,
    lars,
    lion,
    nadam,
    noisy_sgd,
    novograd,
    radam,
    rmsprop,
    rprop,
    sgd,
    sign_sgd,
    signum,
    yogi,
)
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
from gradtx.step import make_step
from gradtx.transforms.adam_variants import (
    ScaleByBeliefState,
    ScaleByNovogradState,
    scale_by_belief,
    scale_by_novograd,
    scale_by_radam,
    scale_by_yogi,
)
from gradtx.transforms.adaptive import (
    ScaleByAdaDeltaState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByRStdDevState,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from gradtx.transforms.clipping import clip, clip_by_global_norm
from gradtx.transforms.layerwise import (
    FactoredState,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
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
    trace,
)
from gradtx.transforms.noise import AddNoiseState, add_noise
from gradtx.transforms.regularization import AddDecayedWeightsState, add_decayed_weights
from gradtx.transforms.scaling import (
    ScaleByScheduleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    scale_by_sign,
)
from gradtx.transforms.sign import ScaleByLionState, ScaleByRpropState, scale_by_lion, scale_by_rprop
from gradtx.wrappers import (
    ApplyIfFiniteState,
    InjectHyperparamsState,
    LookaheadParams,
    LookaheadState,
    MultiSteps,
    MultiStepsState,
    apply_if_finite,
    inject_hyperparams,
    lookahead,
    skip_large_updates,
    skip_not_finite,
)

__version__ = "0.1.0"

__all__ = [
    # protocol and composition
    "GradientTransformation", "EmptyState", "Params", "Updates", "OptState", "Schedule",
    "ScalarOrSchedule", "identity", "stateless", "stateless_with_tree_map", "chain", "named_chain",
    "apply_updates", "incremental_update", "tree", "schedules", "abstract_state", "state_shardings",
    # fast paths
    "make_step", "pack", "unpack", "Packed",
    "masked", "MaskedNode", "partition", "multi_transform", "set_to_zero",
    # wrappers
    "apply_if_finite", "MultiSteps", "skip_not_finite", "skip_large_updates", "inject_hyperparams",
    "lookahead", "LookaheadParams",
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
    "add_noise",
    # state
    "ScaleByScheduleState", "TraceState", "EmaState", "ScaleByMomentumState", "NesterovState",
    "BiasCorrectionState", "ScaleByRmsState", "ScaleByRStdDevState", "ScaleByRssState",
    "ScaleByAdaDeltaState", "ScaleByAdamState", "ScaleByAmsgradState", "AddDecayedWeightsState",
    "FactoredState",
    "ScaleByLionState", "ScaleByRpropState", "ScaleByBeliefState", "ScaleByNovogradState", "AddNoiseState",
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
]  # fmt: skip
