"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019): the decay is added to the
preconditioned step, not to the gradient, so that it is not divided by sqrt(v^).

    adamw     chain(scale_by_adam, add_decayed_weights(weight_decay, mask), scale_by_learning_rate)
    nadamw    adamw with the Nesterov look-ahead of nadam
    adamaxw   chain(scale_by_adamax, add_decayed_weights(weight_decay, mask), scale_by_learning_rate)

The preconditioners are adam.py's.
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.adam import scale_by_adam, scale_by_adamax
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    `chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`:
    the decay is added after the preconditioner and before the learning rate, so
    W <- W - eta (u + lambda W), with u Adam's update. Matches torch.optim.AdamW(lr, betas, eps,
    weight_decay) (torch's default weight_decay is 1e-2, optax's and gradtx's 1e-4). `mask`
    selects the leaves that decay (see `add_decayed_weights`).

    >>> import gradtx
    >>> gradtx.adamw(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
          add_decayed_weights(weight_decay=0.0001), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adamw", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adamw"):
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NAdamW: AdamW with Dozat's Nesterov look-ahead, `adamw(..., nesterov=True)` as in optax.

    `chain(scale_by_adam(..., nesterov=True), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`: W <- W - eta (u + lambda W) with u NAdam's update (see
    `scale_by_adam`, `adamw`). The AlgoPerf baseline. torch.optim.NAdam(decoupled_weight_decay=True)
    also decays b1 over the steps (momentum_decay), which neither optax nor gradtx does.

    >>> import gradtx
    >>> gradtx.nadamw(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=True),
          add_decayed_weights(weight_decay=0.0001), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("nadamw", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("nadamw"):
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdamaxW: Adamax with decoupled weight decay (Loshchilov & Hutter, 2019), as in optax.

    `chain(scale_by_adamax(b1, b2, eps), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`: W <- W - eta (u + lambda W) with u Adamax's update (see
    `scale_by_adamax`); the decay is multiplied by the learning rate, as in torch and optax.

    >>> import gradtx
    >>> gradtx.adamaxw(2e-3)
    chain(scale_by_adamax(b1=0.9, b2=0.999, eps=1e-08), add_decayed_weights(weight_decay=0.0001),
          scale_by_learning_rate(learning_rate=0.002, flip_sign=True))
    """
    check("adamaxw", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adamaxw"):
        return chain(
            scale_by_adamax(b1, b2, eps, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["adamaxw", "adamw", "nadamw"]
