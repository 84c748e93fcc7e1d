"""keras.optimizers.Adafactor as a gradtx chain (re-exported by `gradtx.presets.keras`).

Keras's Adafactor (3.15) is the paper's without momentum: a factored second moment over each
leaf's last two dimensions with epsilon_1 added to g^2, the update clipped to an RMS of
clip_threshold, a step rho_t = min(lr, 1 / sqrt(t)) times the RMS of the (decayed) weights.
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, NONNEG, OR_NONE, ArgumentTypeError, arguments_of, check, check_flag
from gradtx.presets.keras_base import _around, _base, _is_on
from gradtx.transforms.adafactor import scale_by_factored_rms, scale_by_relative_step
from gradtx.transforms.layerwise import clip_by_block_rms, scale_by_param_block_rms
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale

_NAME = "presets.keras.Adafactor"


def Adafactor(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_2_decay: float = -0.8,
    epsilon_1: float = 1e-30,
    epsilon_2: float = 1e-3,
    clip_threshold: float = 1.0,
    relative_step: bool = True,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Adafactor: a factored second moment, an RMS-clipped update, a relative step.

        b2_t = 1 - t^beta_2_decay;   rho_t = min(lr, 1 / sqrt(t));   G2 = g^2 + eps1
        W <- W - lr wd W                                         (weight_decay: first, as Keras)
        leaves of 2+ dimensions:   r <- b2_t r + (1 - b2_t) mean of G2 over the last dimension
                                   c <- b2_t c + (1 - b2_t) mean of G2 over dimension -2
                                   v^ = r c^T / mean(r)
        the rest:                  v <- b2_t v + (1 - b2_t) G2;   v^ = v
        U = g / sqrt(v^);   W <- W - max(eps2, rms(W)) rho_t U / max(1, rms(U) / clip_threshold)

    `chain([clip], scale_by_factored_rms(decay_rate=-beta_2_decay, min_dim_size_to_factor=0,
    epsilon=epsilon_1, factor_last_dims=True), clip_by_block_rms(clip_threshold),
    scale_by_relative_step(lr), scale_by_param_block_rms(eps2), scale(-1.0))`. With a decay, rms(W)
    is of the decayed weights, c rms(W) with c = |1 - lr wd|: `scale_by_param_block_rms(eps2 / c),
    scale(c), add_decayed_weights(lr wd)` (so the learning rate must be a number). Keras 3.15
    takes rho_t = min(lr, 1 / sqrt(t)) whether relative_step is True or False, and so does the
    preset (the flag is checked and changes nothing).

    >>> from gradtx.presets import keras
    >>> keras.Adafactor()
    chain(scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=0, epsilon=1e-30,
          factor_last_dims=True), clip_by_block_rms(threshold=1.0), scale_by_relative_step(learning_rate=0.001),
          scale_by_param_block_rms(min_scale=0.001), scale(step_size=-1.0))
    """
    base = _base(_NAME, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(_NAME, learning_rate=(learning_rate, LEARNING_RATE), beta_2_decay=(beta_2_decay, "(-inf, 0]"))
    check(_NAME, epsilon_1=(epsilon_1, NONNEG), epsilon_2=(epsilon_2, NONNEG), clip_threshold=(clip_threshold, NONNEG))
    check(_NAME, weight_decay=(weight_decay, NONNEG + OR_NONE))
    check_flag(_NAME, "relative_step", relative_step)
    renames = {"decay_rate": "beta_2_decay", "epsilon": "epsilon_1", "threshold": "clip_threshold"}
    with arguments_of(_NAME, renames):
        members = [
            scale_by_factored_rms(
                decay_rate=-beta_2_decay, min_dim_size_to_factor=0, epsilon=epsilon_1, factor_last_dims=True
            ),
            clip_by_block_rms(clip_threshold),
            scale_by_relative_step(learning_rate),
        ]
        if not _is_on(weight_decay):
            return _around(_NAME, base, [*members, scale_by_param_block_rms(epsilon_2), scale(-1.0)])
        decay = _decay(learning_rate, weight_decay)
        c = abs(1.0 - decay)  # rms((1 - lr wd) W) = c rms(W): max(eps2, c rms(W)) = c max(eps2 / c, rms(W))
        scaled = [scale_by_param_block_rms(epsilon_2 / c), scale(c)] if c > 0 else [scale(epsilon_2)]
        return _around(_NAME, base, [*members, *scaled, add_decayed_weights(decay), scale(-1.0)])


def _decay(learning_rate: Any, weight_decay: Any) -> Any:
    if callable(learning_rate):
        raise ArgumentTypeError(
            _NAME, "learning_rate",
            f"must be a number when weight_decay is set (the decay is lr wd W, not rho_t), got {learning_rate!r}",
        )  # fmt: skip
    return learning_rate * weight_decay


__all__ = ["Adafactor"]
