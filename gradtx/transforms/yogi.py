"""Yogi: Adam with an additive second-moment update (Zaheer et al., 2018).

scale_by_yogi   v <- v - (1 - b2) sign(v - g^2) g^2;   u = m / (sqrt(v) + eps)
yogi            chain(scale_by_yogi, scale_by_learning_rate)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, next_count, transformation, zero_count
from gradtx.checks import LEARNING_RATE, NONNEG, REAL, UNIT, arguments_of, check, check_dtype
from gradtx.combine import chain
from gradtx.transforms.adam import ScaleByAdamState
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# Yogi


def _init_yogi(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype, hp.mu_init),  # m_0 (optax: initial_accumulator_value)
        nu=tree.second_moment_like(params, hp.initial_accumulator_value),
    )


def _update_yogi(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    g2 = tree.abs_sq(g)  # g^2 (|g|^2 for complex g), at least float32
    direction = jax.tree.map(jnp.sign, tree.sub(state.nu, g2))  # sign(v - g^2)
    nu = tree.add_scale(state.nu, -(1 - hp.b2), tree.mul(direction, g2))  # v <- v - (1 - b2) sign(v - g^2) g^2
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_hat, v_hat, hp.eps, hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
    *,
    accumulator_dtype: Any = None,
    mu_init: float = 0.0,
) -> GradientTransformation:
    """Yogi's preconditioner (Zaheer et al., 2018): Adam whose v moves by at most (1 - b2) g^2.

        m <- b1 m + (1 - b1) g
        v <- v - (1 - b2) sign(v - g^2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    Adam's v <- v - (1 - b2) (v - g^2) can fall fast once gradients shrink, making steps large;
    Yogi's additive step keeps v from forgetting a past large gradient too quickly (v >= 0 if it
    starts so). v starts at `initial_accumulator_value` and m at 0, both bias-corrected, as in the
    authors' code; the defaults are optax's (eps = 1e-3 is the paper's). optax also starts m at
    `initial_accumulator_value`, so zero gradients move its params (by about 1e-6 / sqrt(v^) at
    t = 1): `mu_init=initial_accumulator_value` (m_0) gives optax's numbers.

    >>> import gradtx
    >>> gradtx.scale_by_yogi()
    scale_by_yogi(b1=0.9, b2=0.999, eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06, mu_init=0.0)
    """
    check(
        "scale_by_yogi",
        b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
        initial_accumulator_value=(initial_accumulator_value, NONNEG), mu_init=(mu_init, REAL),
    )  # fmt: skip
    dtype = check_dtype("scale_by_yogi", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_yogi", _init_yogi, _update_yogi,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, initial_accumulator_value=initial_accumulator_value,
        accumulator_dtype=dtype, mu_init=mu_init,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    *,
    accumulator_dtype: Any = None,
    mu_init: float = 0.0,
) -> GradientTransformation:
    """Yogi (Zaheer et al., 2018): `chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(lr))`.

    See `scale_by_yogi` (v starts at 1e-6 as in optax; m at 0, as in the authors' code, where optax's
    starts at 1e-6 too: `mu_init=1e-6` gives optax's numbers).

    >>> import gradtx
    >>> gradtx.yogi(1e-2)
    chain(scale_by_yogi(b1=0.9, b2=0.999, eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06,
                        mu_init=0.0),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    check("yogi", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("yogi"):
        return chain(
            scale_by_yogi(b1, b2, eps, accumulator_dtype=accumulator_dtype, mu_init=mu_init),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["scale_by_yogi", "yogi"]
