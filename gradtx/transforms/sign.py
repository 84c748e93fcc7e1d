"""Sign methods: every coordinate moves by the same amount, in the direction of a sign.

    scale_by_sign   u = sign(g)                                          (Bernstein et al., 2018)
    sign_sgd        chain(scale_by_sign, scale_by_learning_rate):  W <- W - eta sign(g)
    signum          chain(ema(beta, debias=False), scale_by_sign, scale_by_learning_rate)

Lion (lion.py) and Rprop (rprop.py) are sign methods too, each with its own file.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, init_empty, transformation
from gradtx.checks import LEARNING_RATE, check
from gradtx.combine import chain
from gradtx.transforms.momentum import ema
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# Sign of the gradient


def _sign_update(hp: Hyperparams, updates, state, params=None):
    return jax.tree.map(jnp.sign, updates), state


def scale_by_sign() -> GradientTransformation:
    """u <- sign(g) (signSGD; Bernstein et al., 2018). Zero gradients give zero updates."""
    return transformation("scale_by_sign", init_empty, _sign_update)


# ---------------------------------------------------------------------------------------------------
# Optimizers


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD (Bernstein et al., 2018): `chain(scale_by_sign(), scale_by_learning_rate(lr))`: W <- W - eta sign(g).

    >>> import gradtx
    >>> gradtx.sign_sgd(1e-3)
    chain(scale_by_sign(), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("sign_sgd", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


def signum(
    learning_rate: ScalarOrSchedule, beta: ScalarOrSchedule = 0.9, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum (Bernstein et al., 2018): signSGD of the momentum, W <- W - eta sign(m).

    `chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(lr))` with
    m <- beta m + (1 - beta) g (no bias correction: it would not change the sign).

    >>> import gradtx
    >>> gradtx.signum(1e-3)
    chain(ema(decay=0.9, debias=False), scale_by_sign(), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("signum", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["scale_by_sign", "sign_sgd", "signum"]
