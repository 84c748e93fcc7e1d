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
from gradtx.combine import chain, named_chain
from gradtx.optimizers import adadelta, adagrad, adam, adamax, adamw, amsgrad, nadam, rmsprop, sgd
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
from gradtx.transforms.regularization import AddDecayedWeightsState, add_decayed_weights
from gradtx.transforms.scaling import (
    ScaleByScheduleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    scale_by_sign,
)

__version__ = "0.1.0"

__all__ = [
    # protocol and composition
    "GradientTransformation", "EmptyState", "Params", "Updates", "OptState", "Schedule",
    "ScalarOrSchedule", "identity", "stateless", "stateless_with_tree_map", "chain", "named_chain",
    "apply_updates", "incremental_update", "tree", "schedules", "abstract_state", "state_shardings",
    # transformations
    "scale", "scale_by_learning_rate", "scale_by_schedule", "scale_by_sign",
    "trace", "ema", "scale_by_momentum", "nesterov", "bias_correction",
    "scale_by_rms", "scale_by_stddev", "scale_by_rss", "scale_by_adadelta", "scale_by_adam",
    "scale_by_amsgrad", "scale_by_adamax", "clip", "clip_by_global_norm", "add_decayed_weights",
    # state
    "ScaleByScheduleState", "TraceState", "EmaState", "ScaleByMomentumState", "NesterovState",
    "BiasCorrectionState", "ScaleByRmsState", "ScaleByRStdDevState", "ScaleByRssState",
    "ScaleByAdaDeltaState", "ScaleByAdamState", "ScaleByAmsgradState", "AddDecayedWeightsState",
    # optimizers
    "sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "adamax", "amsgrad",
    # schedules
    "constant_schedule", "linear_schedule", "polynomial_schedule", "exponential_decay",
    "inverse_time_decay", "piecewise_constant_schedule", "piecewise_interpolate_schedule",
    "cosine_decay_schedule", "warmup_constant_schedule", "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule", "join_schedules", "cosine_onecycle_schedule",
    "linear_onecycle_schedule", "sgdr_schedule", "sutskever_momentum_schedule",
]  # fmt: skip
