"""torch.optim.Muon as a gradtx chain (re-exported by gradtx.presets.torch): torch's arguments, defaults and numbers.

    B <- mu B + (1 - mu) g
    B~ = mu B + (1 - mu) g                  (nesterov; otherwise B~ = B)
    O = NS(B~ / max(||B~||, eps))           (the Frobenius norm)
    p <- p - lr wd p - lr s O
    s = sqrt(max(1, A / B))                 (adjust_lr_fn None or "original")
    s = 0.2 sqrt(max(A, B))                 (adjust_lr_fn "match_rms_adamw")

for a weight of shape (A, B) = (out, in). In gradtx's blocks:

    chain(scale_by_muon(ns_coefficients, ns_steps, momentum, eps, nesterov=nesterov, momentum_form="ema",
                        eps_floor=True, weight_dimension_numbers="torch"),
          scale_by_shape("torch", consistent_rms=None or 0.2), add_decayed_weights(weight_decay),
          scale_by_learning_rate(lr))

tests/test_presets_muon.py holds it to torch 2.13's own Muon in float64 (rtol 1e-10) with torch's
Newton-Schulz kept in float64: torch runs it in bfloat16, a rounding of about 1e-2 that no
float64 comparison could see through. state_from_torch / state_to_torch map its `momentum_buffer`
to the momentum `mu` (torch keeps no step: pass `step=`).
"""

from __future__ import annotations

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, NONNEG, ArgumentTypeError, ArgumentValueError, arguments_of, check, is_zero
from gradtx.combine import chain
from gradtx.transforms.muon import scale_by_muon, scale_by_shape
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def Muon(
    lr: ScalarOrSchedule = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
) -> GradientTransformation:
    """torch.optim.Muon (module docstring): momentum orthogonalized by Newton-Schulz, decoupled decay.

    torch takes only 2-D params; here a leaf of shape (out, in, ...) is one out x (in ...) matrix
    (Keller Jordan's rule for convolutions; s then uses in ... for B), and a vector or scalar is one
    1 x n row (s = 1), so that the preset runs on a whole model. As torch's documentation advises,
    give those leaves AdamW with `gradtx.partition`. Differences from torch, both rounding: the
    iteration runs in float32 or wider (torch's in bfloat16), and torch's lerp forms of the EMA
    and the Nesterov step round as a lerp does.

    >>> from gradtx.presets import torch as pt
    >>> pt.Muon(lr=0.02)
    chain(scale_by_muon(ns_coeffs=(3.4445, -4.775, 2.0315), ns_steps=5, beta=0.95, eps=1e-07, nesterov=True,
          adaptive=False, preconditioning='frobenius', weight_dimension_numbers='torch', momentum_form='ema',
          eps_floor=True),
          scale_by_shape(weight_dimension_numbers='torch'), add_decayed_weights(weight_decay=0.1),
          scale_by_learning_rate(learning_rate=0.02, flip_sign=True))
    """
    name = "presets.torch.Muon"
    check(name, lr=(lr, LEARNING_RATE), weight_decay=(weight_decay, NONNEG))
    if adjust_lr_fn not in ADJUST_LR_FNS:
        raise ArgumentValueError(name, "adjust_lr_fn", f"must be one of {ADJUST_LR_FNS}, got {adjust_lr_fn!r}")
    if not (isinstance(ns_coefficients, tuple | list) and len(ns_coefficients) == 3):
        raise ArgumentTypeError(name, "ns_coefficients", f"must be three numbers (a, b, c), got {ns_coefficients!r}")
    renames = {"beta": "momentum", "ns_coeffs": "ns_coefficients", "learning_rate": "lr"}
    with arguments_of(name, renames):
        members = [
            scale_by_muon(
                tuple(ns_coefficients), ns_steps, momentum, eps, nesterov=nesterov,
                weight_dimension_numbers="torch", momentum_form="ema", eps_floor=True,
            ),
            scale_by_shape("torch", 0.2 if adjust_lr_fn == "match_rms_adamw" else None),
        ]  # fmt: skip
        if not is_zero(weight_decay):
            members.append(add_decayed_weights(weight_decay))
        return chain(*members, scale_by_learning_rate(lr))


__all__ = ["Muon"]
