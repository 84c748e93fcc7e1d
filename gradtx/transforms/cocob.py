"""COCOB: training without a learning rate by betting on each coordinate (Orabona & Tommasi, 2017).

    scale_by_cocob   L <- max(L, |g|);  G <- G + |g|;  R <- max(R - g (x - x_0), 0);  theta <- theta - g
                     u = x_0 + theta / (L max(G + L, alpha L)) (L + R) - x
    cocob            chain(add_decayed_weights, scale_by_learning_rate(lr, flip_sign=False), scale_by_cocob)

Each coordinate is a gambler who bets a fraction of its wealth L + R on the sign of the negative
gradients seen so far; the bet is the displacement from x_0. The update already descends: it is
the new point minus the current one, so no sign flip follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, Params, ScalarOrSchedule, Updates, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, POSITIVE, arguments_of, check, require_params
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# COCOB-Backprop


class COCOBState(NamedTuple):
    """init_particles: x_0; cumulative_gradients: theta, minus the sum of the gradients; scale: L, the
    largest |g| so far (eps at first); subgradients: G, the sum of |g|; reward: R, the gambler's
    winnings (L, G and R real and at least float32)."""

    init_particles: Params
    cumulative_gradients: Updates
    scale: Updates
    subgradients: Updates
    reward: Updates


def _init_cocob(hp: Hyperparams, params) -> COCOBState:
    for leaf in jax.tree.leaves(params):
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                "scale_by_cocob: complex params have no sign to bet on (COCOB bets on each real coordinate),"
                f" got a {leaf.dtype} leaf. Wrap it: split_real_and_imaginary(cocob(...))."
            )
    return COCOBState(
        init_particles=jax.tree.map(jnp.copy, params),
        cumulative_gradients=tree.first_moment_like(params),
        scale=tree.second_moment_like(params, hp.eps),
        subgradients=tree.second_moment_like(params),
        reward=tree.second_moment_like(params),
    )


class _Leaf(NamedTuple):
    """One coordinate block's results, kept together while mapping over the trees."""

    u: jax.Array
    theta: jax.Array
    big_l: jax.Array
    big_g: jax.Array
    reward: jax.Array


def _cocob_leaf(alpha: Any, g, x, x0, theta, big_l, big_g, reward) -> _Leaf:
    dtype = big_l.dtype  # real, at least float32
    g_, dx = g.astype(dtype), x.astype(dtype) - x0.astype(dtype)
    big_l = jnp.maximum(big_l, jnp.abs(g_))  # L <- max(L, |g|)
    big_g = big_g + jnp.abs(g_)  # G <- G + |g|
    reward = jnp.maximum(reward - g_ * dx, jnp.zeros_like(reward))  # R <- max(R - g (x - x_0), 0)
    new_theta = theta.astype(dtype) - g_  # theta <- theta - g
    bet = new_theta / (big_l * jnp.maximum(big_g + big_l, alpha * big_l)) * (big_l + reward)  # fraction x wealth
    u = x0.astype(dtype) + bet - x.astype(dtype)  # u = x_0 + bet - x
    return _Leaf(u.astype(g.dtype), new_theta.astype(theta.dtype), big_l, big_g, reward)


def _update_cocob(hp: Hyperparams, g, state: COCOBState, params=None):
    params = require_params("scale_by_cocob", params)
    out = jax.tree.map(lambda *leaves: _cocob_leaf(hp.alpha, *leaves), g, params, *state)
    part = lambda i: jax.tree.map(lambda leaf: leaf[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
    return part(0), COCOBState(
        init_particles=state.init_particles,
        cumulative_gradients=part(1),
        scale=part(2),
        subgradients=part(3),
        reward=part(4),
    )


def scale_by_cocob(alpha: float = 100.0, eps: float = 1e-8) -> GradientTransformation:
    """COCOB-Backprop's step (Orabona & Tommasi, 2017, Algorithm 2), per coordinate.

        L     <- max(L, |g|)                      (L starts at eps)
        G     <- G + |g|
        R     <- max(R - g (x - x_0), 0)
        theta <- theta - g
        u     = x_0 + theta / (L max(G + L, alpha L)) (L + R) - x

    `alpha` bounds the first bets (the paper's 100); `eps` > 0 is L's start, so nothing divides by
    zero before a nonzero gradient. The update descends as it is (no sign flip after it); `update`
    needs params. Real params only (wrap complex ones in `split_real_and_imaginary`). Same as
    optax.contrib.scale_by_cocob; L, G and R are kept real and in at least float32 (optax: the
    params' dtype).

    >>> import gradtx
    >>> gradtx.scale_by_cocob()
    scale_by_cocob(alpha=100.0, eps=1e-08)
    """
    check("scale_by_cocob", alpha=(alpha, NONNEG), eps=(eps, POSITIVE))
    return transformation("scale_by_cocob", _init_cocob, _update_cocob, alpha=alpha, eps=eps)


# ---------------------------------------------------------------------------------------------------
# Optimizer


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha: float = 100.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mask: Any | Callable[[Params], Any] | None = None,
) -> GradientTransformation:
    """COCOB-Backprop (Orabona & Tommasi, 2017): `chain(add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate, flip_sign=False), scale_by_cocob(alpha, eps))`.

        g' = learning_rate (g + weight_decay x);   u = scale_by_cocob(g')     (see `scale_by_cocob`)

    Learning-rate free: `learning_rate` (default 1) only rescales the gradients it bets on, e.g. to
    inject a schedule. Same as optax.contrib.cocob.

    >>> import gradtx
    >>> gradtx.cocob()
    chain(add_decayed_weights(weight_decay=0.0), scale_by_learning_rate(learning_rate=1.0, flip_sign=False),
          scale_by_cocob(alpha=100.0, eps=1e-08))
    """
    check("cocob", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("cocob"):
        return chain(
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate, flip_sign=False),
            scale_by_cocob(alpha, eps),
        )


__all__ = ["COCOBState", "cocob", "scale_by_cocob"]
