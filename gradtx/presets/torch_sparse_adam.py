"""torch.optim.SparseAdam as a gradtx chain (re-exported by `gradtx.presets.torch`).

torch's SparseAdam takes sparse gradients and updates the moments, and the params, only at the
entries a gradient holds. JAX's gradients are dense, so the preset reads a dense gradient's nonzero
entries as the ones held: exactly what torch is given by `dense_grad.to_sparse()` (an embedding's
rows that no token of the batch used have zero gradients, and keep their moments).
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, ArgumentTypeError, arguments_of, check, check_flag
from gradtx.combine import chain
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.scaling import scale, scale_by_learning_rate

_NAME = "presets.torch.SparseAdam"


def SparseAdam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.SparseAdam on dense gradients: Adam's moments and step only where g != 0.

        where g != 0:   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
                        p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
        elsewhere:      m, v and p unchanged                      (t counts every step)

    `chain(scale_by_adam(b1, b2, eps, eps_hat=True, where_nonzero=True), scale_by_learning_rate(lr))`
    (`scale(-1.0)` first for maximize): torch's SparseAdam adds eps to sqrt(v) before v's bias
    correction (eps-hat, as Keras), where torch's Adam adds it after. An entry whose gradient is
    exactly 0 is one a sparse gradient would not hold (`dense_grad.to_sparse()` leaves it out);
    torch's own sparse embeddings (`nn.Embedding(sparse=True)`) hold whole rows, so an exact 0
    inside a used row moves its moments there and not here.

    >>> from gradtx.presets import torch as pt
    >>> pt.SparseAdam()
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False, eps_hat=True, where_nonzero=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    b1, b2 = _betas(betas)
    check(_NAME, lr=(lr, LEARNING_RATE), eps=(eps, NONNEG))
    with arguments_of(_NAME, {"b1": "betas[0]", "b2": "betas[1]", "learning_rate": "lr"}):
        members = [scale(-1.0)] if check_flag(_NAME, "maximize", maximize) else []
        adam = scale_by_adam(b1, b2, eps, eps_hat=True, where_nonzero=True)
        return chain(*members, adam, scale_by_learning_rate(lr))


def _betas(betas: Any) -> tuple[Any, Any]:
    if not (isinstance(betas, tuple | list) and len(betas) == 2):
        raise ArgumentTypeError(_NAME, "betas", f"must be a pair (beta1, beta2), got {betas!r}")
    check(_NAME, **{"betas[0]": (betas[0], UNIT), "betas[1]": (betas[1], UNIT)})
    return betas[0], betas[1]


__all__ = ["SparseAdam"]
