"""Optimistic gradient methods: a step along the gradient plus a correction by its last change,
for min-max games where plain gradient descent cycles (Daskalakis et al., 2018; Mokhtari et al., 2020).

    scale_by_optimistic_gradient   u = (alpha + beta) g - beta g_prev     (g_prev = g at the first step)
    optimistic_gradient_descent    chain(scale_by_optimistic_gradient, scale_by_learning_rate)
    optimistic_adam_v2             chain(scale_by_adam(nesterov), scale_by_optimistic_gradient, scale_by_learning_rate)
    optimistic_adam                the same with alpha = lr, beta = optimism and a unit learning rate
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, Updates, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, OR_NONE, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.scaling import scale_by_learning_rate


class ScaleByOptimisticGradientState(NamedTuple):
    """is_initial_step: a boolean scalar, True before the first update; previous_gradient: the last
    incoming update g_prev. optax's field names."""

    is_initial_step: Any
    previous_gradient: Updates


def _init_optimistic(hp: Hyperparams, params) -> ScaleByOptimisticGradientState:
    return ScaleByOptimisticGradientState(is_initial_step=jnp.asarray(True), previous_gradient=tree.zeros_like(params))


def _update_optimistic(hp: Hyperparams, g, state: ScaleByOptimisticGradientState, params=None):
    prev = tree.where(state.is_initial_step, tree.cast_like(g, state.previous_gradient), state.previous_gradient)
    u = tree.lerp(g, prev, hp.alpha + hp.beta, -hp.beta)  # u = (alpha + beta) g - beta g_prev
    new = ScaleByOptimisticGradientState(
        is_initial_step=jnp.zeros_like(state.is_initial_step), previous_gradient=tree.cast_like(g, prev)
    )
    return u, new


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0) -> GradientTransformation:
    """The generalized optimistic gradient (Mokhtari et al., 2020): today's gradient, extrapolated.

        u = (alpha + beta) g - beta g_prev        (g_prev = g at the first step: u = alpha g)

    alpha = beta = 1 is optimistic gradient descent, u = 2 g - g_prev (Daskalakis et al., 2018), an
    approximation of extra-gradient with one gradient a step. The first step uses g for the missing
    g_prev, as optax does since its issue 1082. Same numbers and state as optax's.

    >>> import gradtx
    >>> gradtx.scale_by_optimistic_gradient()
    scale_by_optimistic_gradient(alpha=1.0, beta=1.0)
    """
    check("scale_by_optimistic_gradient", alpha=(alpha, NONNEG), beta=(beta, NONNEG))
    return transformation("scale_by_optimistic_gradient", _init_optimistic, _update_optimistic, alpha=alpha, beta=beta)


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule, alpha: float = 1.0, beta: float = 1.0
) -> GradientTransformation:
    """Optimistic gradient descent: `chain(scale_by_optimistic_gradient(alpha, beta),
    scale_by_learning_rate(lr))`, W <- W - eta ((alpha + beta) g - beta g_prev).

    optax types alpha and beta as schedules but calls them as numbers; here they are numbers.

    >>> import gradtx
    >>> gradtx.optimistic_gradient_descent(0.1)
    chain(scale_by_optimistic_gradient(alpha=1.0, beta=1.0),
          scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("optimistic_gradient_descent", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("optimistic_gradient_descent"):
        return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Optimistic Adam (Daskalakis et al., 2018): the optimistic step on Adam's update r.

        r_t = m^ / (sqrt(v^ + eps_root) + eps)          (scale_by_adam; NAdam's m^ when nesterov)
        u   = -eta ((alpha + beta) r_t - beta r_{t-1})

    `chain(scale_by_adam(b1, b2, eps, eps_root, nesterov=nesterov), scale_by_optimistic_gradient(alpha,
    beta), scale_by_learning_rate(lr))`, optax's chain, keyword arguments and defaults.

    >>> import gradtx
    >>> gradtx.optimistic_adam_v2(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=True),
          scale_by_optimistic_gradient(alpha=1.0, beta=1.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("optimistic_adam_v2", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("optimistic_adam_v2"):
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            scale_by_optimistic_gradient(alpha, beta),
            scale_by_learning_rate(learning_rate),
        )


def optimistic_adam(
    learning_rate: float,
    optimism: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Optimistic Adam with optax's first interface: the learning rate and the optimism o enter the
    optimistic step, u = -(lr r_t + o (r_t - r_{t-1})).

    `chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
    scale_by_learning_rate(1.0))`; `optimism` None means o = learning_rate, as in the paper. The
    learning rate is a number (it is the optimistic step's alpha). optax deprecates this interface
    for `optimistic_adam_v2` (the same algorithm: this is `optimistic_adam_v2(1.0, alpha=lr,
    beta=optimism)`); gradtx keeps both, without a warning, with optax's numbers.

    >>> import gradtx
    >>> gradtx.optimistic_adam(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=True),
          scale_by_optimistic_gradient(alpha=0.001, beta=0.001),
          scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    check("optimistic_adam", learning_rate=(learning_rate, NONNEG), optimism=(optimism, NONNEG + OR_NONE))
    renames = {"scale_by_optimistic_gradient.alpha": "learning_rate", "scale_by_optimistic_gradient.beta": "optimism"}
    with arguments_of("optimistic_adam", renames):
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            scale_by_optimistic_gradient(alpha=learning_rate, beta=learning_rate if optimism is None else optimism),
            scale_by_learning_rate(1.0),
        )


__all__ = [
    "ScaleByOptimisticGradientState", "optimistic_adam", "optimistic_adam_v2", "optimistic_gradient_descent",
    "scale_by_optimistic_gradient",
]  # fmt: skip
