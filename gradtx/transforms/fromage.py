"""Fromage: a step of relative size eta in every layer, then a shrink that keeps the layer's norm
from growing (Bernstein et al., 2020).

    fromage   W <- (W - eta (||W|| / ||g||) g) / sqrt(1 + eta^2)        (one ratio a leaf)
            = chain(scale_by_trust_ratio(min_norm), add_decayed_weights(lambda), scale_by_learning_rate(eta'))
              with eta' = eta / sqrt(1 + eta^2) and lambda = eta / (1 + sqrt(1 + eta^2))
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, schedule
from gradtx.checks import LEARNING_RATE, NONNEG, arguments_of, check, normalize
from gradtx.combine import chain
from gradtx.transforms.layerwise import scale_by_trust_ratio
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


def _root(eta: Any) -> Any:
    """sqrt(1 + eta^2): a Python float for a number, an array for a tracer or a schedule's value."""
    return math.sqrt(1 + eta * eta) if isinstance(eta, int | float) else jnp.sqrt(1 + eta * eta)


def _step_size(eta: Any) -> Any:
    """eta' = eta / sqrt(1 + eta^2): the learning rate of fromage's last step."""
    return eta / _root(eta)


def _shrink(eta: Any) -> Any:
    """lambda = eta / (1 + sqrt(1 + eta^2)) = (sqrt(1 + eta^2) - 1) / eta, without its cancellation.

    eta' (u + lambda W) = eta' u + (1 - 1 / sqrt(1 + eta^2)) W: the decay that divides W by sqrt(1 + eta^2).
    """
    return eta / (1 + _root(eta))


def _step_size_schedule(hp: Hyperparams, count: jax.Array) -> jax.Array:
    return _step_size(hp.learning_rate(count))


def _shrink_schedule(hp: Hyperparams, count: jax.Array) -> jax.Array:
    return _shrink(hp.learning_rate(count))


def fromage(learning_rate: ScalarOrSchedule, min_norm: float = 1e-6) -> GradientTransformation:
    """Fromage, "Frobenius matched gradient descent" (Bernstein et al., 2020), as optax computes it.

        r  = max(||W||, min_norm) / max(||g||, min_norm)       (per leaf; 1 where a norm is 0)
        W <- (W - eta r g) / sqrt(1 + eta^2)

    The step moves each layer by eta times its own norm (the paper's deep relative trust), and the
    division keeps the norms from growing. optax writes the division as a decay with the negative
    weight 1 / sqrt(1 + eta^2) - 1 after the learning rate; gradtx, whose weight decays are
    non-negative, writes the same update as `chain(scale_by_trust_ratio(min_norm),
    add_decayed_weights(lambda), scale_by_learning_rate(eta'))` with eta' = eta / sqrt(1 + eta^2)
    and lambda = eta / (1 + sqrt(1 + eta^2)) (equal numbers, and no cancellation in 1 / sqrt(1 +
    eta^2) - 1 at small eta). A schedule eta is evaluated at each step, as in optax.

    >>> import gradtx
    >>> gradtx.fromage(0.01)
    chain(scale_by_trust_ratio(min_norm=1e-06, trust_coefficient=1.0, eps=0.0),
          add_decayed_weights(weight_decay=0.004999875...),
          scale_by_learning_rate(learning_rate=0.009999500..., flip_sign=True))
    """
    check("fromage", learning_rate=(learning_rate, LEARNING_RATE), min_norm=(min_norm, NONNEG))
    learning_rate = normalize(learning_rate)
    if callable(learning_rate):
        decay: Any = schedule("fromage.shrink", _shrink_schedule, learning_rate=learning_rate)
        rate: Any = schedule("fromage.step_size", _step_size_schedule, learning_rate=learning_rate)
    else:
        decay, rate = _shrink(learning_rate), _step_size(learning_rate)
    with arguments_of("fromage"):
        return chain(scale_by_trust_ratio(min_norm), add_decayed_weights(decay), scale_by_learning_rate(rate))


__all__ = ["fromage"]
