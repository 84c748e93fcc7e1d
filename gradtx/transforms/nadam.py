"""NAdam as Dozat (2016) wrote it: Nesterov momentum whose coefficient warms up over the steps.

    scale_by_nadam   mu_t = b1 (1 - 0.5 * 0.96^(t psi));   pi_t = mu_1 ... mu_t
                     u = ((1 - mu_t) g / (1 - pi_t) + mu_{t+1} m / (1 - pi_t mu_{t+1})) / (sqrt(v^) + eps)

The `nadam` optimizer in adam.py is optax's (a constant b1, `scale_by_adam(nesterov=True)`);
this is the paper's schedule, as torch.optim.NAdam (psi = momentum_decay = 0.004, the paper's
1/250) and Keras's Nadam (psi = 1) compute it. The product pi_t is one scalar of the state, in
the widest dtype of the params' second moments (float64 for float64 params, float32 otherwise).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Updates, next_count, transformation, zero_count
from gradtx.checks import NONNEG, UNIT, check, check_dtype


class ScaleByNadamState(NamedTuple):
    """count: updates applied (int32); mu: m; nu: v (real); mu_product: pi_t, the product of the mu_s so far."""

    count: Count
    mu: Updates
    nu: Updates
    mu_product: jax.Array


def _product_dtype(params: Any) -> np.dtype:
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.dtype(np.result_type(*dtypes)) if dtypes else np.dtype(jnp.float32)


def _init_nadam(hp: Hyperparams, params) -> ScaleByNadamState:
    return ScaleByNadamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
        mu_product=jnp.ones([], _product_dtype(params)),
    )


def _momentum_at(hp: Hyperparams, t: jax.Array, dtype: Any) -> jax.Array:
    """mu_t = b1 (1 - 0.5 * 0.96^(t psi))."""
    b1 = jnp.asarray(hp.b1).astype(dtype)
    return b1 * (1 - 0.5 * jnp.power(jnp.asarray(0.96, dtype), t.astype(dtype) * jnp.asarray(hp.momentum_decay, dtype)))


def _update_nadam(hp: Hyperparams, g, state: ScaleByNadamState, params=None):
    t = next_count(state.count)
    dtype = state.mu_product.dtype
    mu_t = _momentum_at(hp, t, dtype)  # mu_t = b1 (1 - 0.5 * 0.96^(t psi))
    mu_next = _momentum_at(hp, next_count(t), dtype)  # mu_{t+1} (t + 1 saturating: no int32 wrap)
    pi = state.mu_product * mu_t  # pi_t = pi_{t-1} mu_t
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m, g_ = tree.compute_like(mu, g), tree.compute_like(g, g)
    m_bar = tree.lerp(g_, m, (1 - mu_t) / (1 - pi), mu_next / (1 - pi * mu_next))  # (1 - mu_t) g / (1 - pi_t) + ...
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_bar, v_hat, hp.eps, hp.eps_root)  # u = m_bar / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByNadamState(count=t, mu=mu, nu=nu, mu_product=pi)


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    eps_root: float = 0.0,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NAdam's preconditioner with Dozat's (2016) momentum schedule and its running product.

        mu_t = b1 (1 - 0.5 * 0.96^(t psi))          (psi = momentum_decay; t counts updates from 1)
        pi_t = pi_{t-1} mu_t                        (pi_0 = 1)
        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        v^ = v / (1 - b2^t)
        u  = ((1 - mu_t) g / (1 - pi_t) + mu_{t+1} m / (1 - pi_t mu_{t+1})) / (sqrt(v^ + eps_root) + eps)

    Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR workshop, 2016), Algorithm 2 with the
    schedule of his Sec. 3 (psi = 1/250 = 0.004). The moment m decays with the constant b1; only the
    look-ahead's weights follow mu_t, which rises from about b1 / 2 toward b1. psi = 0 holds mu_t at
    b1 / 2: the constant-b1 NAdam is optax's `nadam` (`scale_by_adam(nesterov=True)`) instead.
    torch.optim.NAdam(lr, betas, eps, momentum_decay) is this followed by the learning rate
    (`gradtx.presets.torch.NAdam`); Keras's Nadam is momentum_decay=1 (`gradtx.presets.keras.Nadam`).
    Not in optax.

    >>> import gradtx
    >>> gradtx.scale_by_nadam()
    scale_by_nadam(b1=0.9, b2=0.999, eps=1e-08, momentum_decay=0.004, eps_root=0.0)
    """
    check(
        "scale_by_nadam",
        b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), momentum_decay=(momentum_decay, NONNEG),
        eps_root=(eps_root, NONNEG),
    )  # fmt: skip
    dtype = check_dtype("scale_by_nadam", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_nadam", _init_nadam, _update_nadam,
        b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay, eps_root=eps_root, accumulator_dtype=dtype,
    )  # fmt: skip


__all__ = ["ScaleByNadamState", "scale_by_nadam"]
