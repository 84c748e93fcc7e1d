"""Adadelta: the ratio of two RMS, of past updates and of gradients (Zeiler, 2012).

scale_by_adadelta   s <- rho s + (1 - rho) g^2;  u = sqrt(dx + eps) / sqrt(s + eps) g;  dx <- rho dx + (1 - rho) u^2
adadelta            chain(add_decayed_weights?, scale_by_adadelta, scale_by_learning_rate)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, Updates, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, check, is_zero
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# Adadelta


class ScaleByAdaDeltaState(NamedTuple):
    """e_g: s, the EMA of g^2; e_x: dx, the EMA of the squared updates (both real)."""

    e_g: Updates
    e_x: Updates


def _init_adadelta(hp: Hyperparams, params) -> ScaleByAdaDeltaState:
    return ScaleByAdaDeltaState(e_g=tree.second_moment_like(params), e_x=tree.second_moment_like(params))


def _update_adadelta(hp: Hyperparams, g, state: ScaleByAdaDeltaState, params=None):
    s = tree.ema(state.e_g, tree.abs_sq(g), hp.rho)  # s <- rho s + (1 - rho) g^2
    rms_dx = tree.sqrt(state.e_x, hp.eps)  # sqrt(dx + eps), with the previous dx
    u = tree.div_sqrt(tree.mul(g, rms_dx), s, eps_root=hp.eps)  # u = sqrt(dx + eps) / sqrt(s + eps) g
    dx = tree.ema(state.e_x, tree.abs_sq(u), hp.rho)  # dx <- rho dx + (1 - rho) u^2
    return tree.cast_like(u, g), ScaleByAdaDeltaState(e_g=s, e_x=dx)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's preconditioner (Zeiler, 2012): the ratio of two RMS, of past updates and of g.

        s  <- rho s + (1 - rho) g^2
        u   = sqrt(dx + eps) / sqrt(s + eps) * g
        dx <- rho dx + (1 - rho) u^2

    Zeiler calls it learning-rate free, but only partly: dx starts at 0, so the first step is
    sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g, and eps acts as a learning rate until dx grows.
    Same as torch.optim.Adadelta(lr=1, rho=rho, eps=eps) before its learning rate.

    >>> import gradtx
    >>> gradtx.scale_by_adadelta(rho=0.95)
    scale_by_adadelta(rho=0.95, eps=1e-06)
    """
    check("scale_by_adadelta", rho=(rho, UNIT), eps=(eps, NONNEG))
    return transformation("scale_by_adadelta", _init_adadelta, _update_adadelta, rho=rho, eps=eps)


# ---------------------------------------------------------------------------------------------------
# Optimizer


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adadelta (Zeiler, 2012): `chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)`.

    See `scale_by_adadelta`. `learning_rate=None` means 1.0, the paper's (no learning rate), and
    gradtx still *descends*: optax's `adadelta()` with its default None drops the learning-rate
    block and with it the sign flip, so it ascends the loss. `add_decayed_weights` (coupled L2
    decay, before the preconditioner) is in the chain unless `weight_decay` is 0 and no mask is
    given, so that `update` then needs no params. Matches torch.optim.Adadelta(lr, rho, eps,
    weight_decay).

    >>> import gradtx
    >>> gradtx.adadelta()
    chain(scale_by_adadelta(rho=0.9, eps=1e-06), scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    check("adadelta", learning_rate=(learning_rate, LEARNING_RATE))
    learning_rate = 1.0 if learning_rate is None else learning_rate
    members = [scale_by_adadelta(rho=rho, eps=eps), scale_by_learning_rate(learning_rate)]
    if not (is_zero(weight_decay) and weight_decay_mask is None):
        members.insert(0, add_decayed_weights(weight_decay, mask=weight_decay_mask))
    return chain(*members)


__all__ = ["ScaleByAdaDeltaState", "adadelta", "scale_by_adadelta"]
