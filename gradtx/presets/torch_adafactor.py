"""torch.optim.Adafactor as a gradtx chain (re-exported by `gradtx.presets.torch`).

torch's Adafactor (2.13) is the paper's without momentum: a factored second moment over each
leaf's last two dimensions, torch's epsilon as a floor, the update clipped to an RMS of d, a step
rho_t = min(lr, 1 / sqrt(t)) times the parameters' RMS, and a decoupled decay by lr (not rho_t).
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, NONNEG, OR_NONE, ArgumentTypeError, arguments_of, check, check_flag, is_zero
from gradtx.combine import chain
from gradtx.transforms.adafactor import scale_by_factored_rms, scale_by_relative_step
from gradtx.transforms.layerwise import clip_by_block_rms, scale_by_param_block_rms
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale

_NAME = "presets.torch.Adafactor"


def Adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.Adafactor: a factored second moment, an RMS-clipped update, a relative step.

        1 - b2_t = t^beta2_decay;   rho_t = min(lr, 1 / sqrt(t));   alpha = max(eps2, rms(W)) rho_t
        leaves of 2+ dimensions:   r <- b2_t r + (1 - b2_t) mean of g^2 over the last dimension
                                   c <- b2_t c + (1 - b2_t) mean of g^2 over dimension -2
                                   v^ = max(r c^T / max(mean(r), eps1), eps1^2)
        the rest:                  v <- b2_t v + (1 - b2_t) g^2;   v^ = max(v, eps1^2)
        U = g / sqrt(v^);   W <- W - lr wd W - alpha U / max(1, rms(U) / d)

    `chain(scale_by_factored_rms(decay_rate=-beta2_decay, min_dim_size_to_factor=0, epsilon=0.0,
    factor_last_dims=True, eps_floor=eps1), clip_by_block_rms(d), scale_by_relative_step(lr),
    scale_by_param_block_rms(eps2), add_decayed_weights(lr wd), scale(-1.0))`, `scale(-1.0)`
    first for maximize. eps1 = None is the machine epsilon of each param's dtype (torch's),
    `eps_floor="machine"`. rms(W) is read before the decay, as torch. A weight decay is scaled by
    lr, not rho_t, so with one the learning rate must be a number. gradtx.adafactor (optax's)
    factors only the two largest dimensions of at least 128, adds 1e-30 to g^2 and has no 1 / sqrt(t).

    >>> from gradtx.presets import torch as pt
    >>> pt.Adafactor()
    chain(scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=0, epsilon=0.0,
          factor_last_dims=True, eps_floor='machine'), clip_by_block_rms(threshold=1.0),
          scale_by_relative_step(learning_rate=0.01), scale_by_param_block_rms(min_scale=0.001), scale(step_size=-1.0))
    """
    if not (isinstance(eps, tuple | list) and len(eps) == 2):
        raise ArgumentTypeError(_NAME, "eps", f"must be a pair (eps1 or None, eps2), got {eps!r}")
    eps1, eps2 = eps
    check(_NAME, lr=(lr, LEARNING_RATE), beta2_decay=(beta2_decay, "(-inf, 0]"), d=(d, "[1, inf)"))
    check(_NAME, **{"eps[0]": (eps1, NONNEG + OR_NONE), "eps[1]": (eps2, NONNEG)}, weight_decay=(weight_decay, NONNEG))
    renames = {"decay_rate": "beta2_decay", "eps_floor": "eps[0]", "min_scale": "eps[1]", "learning_rate": "lr"}
    with arguments_of(_NAME, renames):
        members = [scale(-1.0)] if check_flag(_NAME, "maximize", maximize) else []
        members += [
            scale_by_factored_rms(
                decay_rate=-beta2_decay, min_dim_size_to_factor=0, epsilon=0.0, factor_last_dims=True,
                eps_floor="machine" if eps1 is None else eps1,
            ),
            clip_by_block_rms(d),
            scale_by_relative_step(lr),
            scale_by_param_block_rms(eps2),
        ]  # fmt: skip
        if not is_zero(weight_decay):
            members.append(add_decayed_weights(_decay(lr, weight_decay)))
        return chain(*members, scale(-1.0))


def _decay(lr: Any, weight_decay: Any) -> Any:
    """lr wd, the decay's factor (torch and Keras scale it by lr, not by rho_t)."""
    if callable(lr):
        raise ArgumentTypeError(
            _NAME, "lr", f"must be a number when weight_decay is set (the decay is lr wd W, not rho_t), got {lr!r}"
        )
    return lr * weight_decay


__all__ = ["Adafactor"]
