"""Mechanic: a learned scale for the steps of any optimizer (Cutkosky, Defazio & Mehta, 2023).

    mechanize(base_optimizer)   Delta <- Delta - base_optimizer(g),   x = x_0 - s_sum Delta,   s_sum = sum_j s_j
                                (s_j learned online by num_betas coin-betting learners, decays 1 - 10^-j)

The base optimizer proposes a direction (its updates, learning rate 1 or a schedule's shape);
Mechanic keeps the sum of those updates, Delta, and learns how far along it to go.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Params, Updates, next_count, zero_count
from gradtx.checks import NONNEG, POSITIVE, POSITIVE_COUNT, check, require_params
from gradtx.combine import check_members, update_one, wrapper


class MechanicState(NamedTuple):
    """base_optimizer_state; count: updates applied (int32); r: each learner's reward; m: each
    learner's largest |h| (decayed); v: each learner's decayed sum of h^2; s: each learner's scale
    (r, m, v, s of shape (num_betas,), in the params' widest compute dtype); x0: the params at the
    first update, x_0."""

    base_optimizer_state: Any
    count: Count
    r: jax.Array
    m: jax.Array
    v: jax.Array
    s: jax.Array
    x0: Params


def _scalar_dtype(params: Params) -> np.dtype:
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _sqrt0(x: jax.Array) -> jax.Array:
    """sqrt with derivative 0 at 0 (jax.grad through an update at zero gradients stays finite)."""
    zero = x == 0
    return jnp.where(zero, jnp.zeros_like(x), jnp.sqrt(jnp.where(zero, jnp.ones_like(x), x)))


def _vdot(a: Updates, b: Updates, dtype: Any) -> jax.Array:
    """<a, b> = Re(sum over all leaves of conj(a) b), as a scalar of `dtype`."""
    parts = [
        jnp.sum((jnp.conj(x) * y).real).astype(dtype)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(parts, jnp.zeros([], dtype))


def _init_mechanize(hp: Hyperparams, params) -> MechanicState:
    dtype = _scalar_dtype(params)
    zeros = jnp.zeros([hp.num_betas], dtype)
    return MechanicState(
        base_optimizer_state=hp.args[0].init(params),
        count=zero_count(),
        r=zeros,
        m=zeros,
        v=zeros,
        s=jnp.full([hp.num_betas], hp.s_init, dtype),
        x0=jax.tree.map(jnp.copy, params),
    )


def _update_mechanize(hp: Hyperparams, g, state: MechanicState, params=None, **extra_args):
    params = require_params("mechanize", params)
    dtype = state.s.dtype
    base_u, base_state = update_one(hp.args[0], g, state.base_optimizer_state, params, extra_args)  # base(g)
    x0 = tree.where(state.count == 0, params, state.x0)  # x_0: the params the first update sees
    x, gc, base_u = (tree.compute_like(t, g) for t in (params, g, base_u))
    s_sum = jnp.sum(state.s)
    grad_norm, param_norm = _sqrt0(tree.sum_sq(gc).astype(dtype)), _sqrt0(tree.sum_sq(x).astype(dtype))
    # g' = g + weight_decay s_sum ||g|| / (||x|| + eps) x: Mechanic's own decay, on the raw gradients
    g_decayed = tree.add_scale(gc, hp.weight_decay * s_sum * grad_norm / (param_norm + hp.eps), x)
    delta_prev = tree.scale(1 / (s_sum + hp.eps), tree.sub(tree.compute_like(x0, g), x))  # Delta = (x_0 - x) / s_sum
    delta = tree.sub(delta_prev, base_u)  # Delta <- Delta - base(g)  (base(g) already points downhill)
    h = _vdot(g_decayed, delta_prev, dtype)  # h = <g', Delta>
    betas = jnp.asarray([1.0 - 0.1**j for j in range(1, hp.num_betas + 1)], dtype)  # beta_j = 1 - 10^-j
    clipped_h = jnp.clip(h, -state.m, state.m)  # h clipped to [-m, m], the old m
    m = jnp.maximum(betas * state.m, jnp.abs(h) + hp.eps)  # m <- max(beta m, |h| + eps)
    v = betas**2 * state.v + h**2  # v <- beta^2 v + h^2
    r = betas * state.r + clipped_h * state.s  # r <- beta r + clip(h) s
    wealth = hp.s_init / hp.num_betas * m + jnp.maximum(r, jnp.zeros_like(r))  # W = s_init / n m + max(r, 0)
    s = wealth / (_sqrt0(v) + hp.eps)  # s = W / (sqrt(v) + eps)
    new_x = tree.add_scale(tree.compute_like(x0, g), -jnp.sum(s), delta)  # x' = x_0 - (sum_j s_j) Delta
    u = tree.cast_like(tree.sub(new_x, x), g)
    return u, MechanicState(base_optimizer_state=base_state, count=next_count(state.count), r=r, m=m, v=v, s=s, x0=x0)


def mechanize(
    base_optimizer: GradientTransformation,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> GradientTransformation:
    """Mechanic (Cutkosky, Defazio & Mehta, 2023): learns the scale of `base_optimizer`'s steps.

        g'    = g + weight_decay s_sum ||g|| / (||x|| + eps) x       (s_sum = sum_j s_j)
        Delta = (x_0 - x) / (s_sum + eps) - base_optimizer(g)
        h     = <g', (x_0 - x) / (s_sum + eps)>
        for j = 1, ..., num_betas,  with beta_j = 1 - 10^(-j):
            m_j <- max(beta_j m_j, |h| + eps);   v_j <- beta_j^2 v_j + h^2
            r_j <- beta_j r_j + clip(h, -m_j, m_j) s_j               (the old m_j)
            s_j = (s_init / num_betas m_j + max(r_j, 0)) / (sqrt(v_j) + eps)
        x'    = x_0 - (sum_j s_j) Delta,    u = x' - x

    Give `base_optimizer` a learning rate of 1 (or a schedule peaking at 1): Mechanic finds the
    scale. x_0 is taken from the params at the first update (a run that loads weights after init
    starts from them). `weight_decay` is Mechanic's own, on the raw gradients, apart from any decay
    of the base optimizer. The memory-light form of the paper (Delta recomputed from x_0 and x);
    `update` needs params and passes its keyword arguments on to `base_optimizer`. Same as
    optax.contrib.mechanize (whose numbers this gives) and the authors' `mechanic_pytorch`;
    r, m, v, s are kept in the params' widest compute dtype (optax: their narrowest).

    >>> import gradtx
    >>> gradtx.mechanize(gradtx.adam(1.0))
    mechanize(chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
              scale_by_learning_rate(learning_rate=1.0, flip_sign=True)), weight_decay=0.01, eps=1e-08,
              s_init=1e-06, num_betas=6)
    """
    check_members("mechanize", (base_optimizer,))
    check(
        "mechanize",
        weight_decay=(weight_decay, NONNEG), eps=(eps, POSITIVE), s_init=(s_init, POSITIVE),
        num_betas=(num_betas, POSITIVE_COUNT),
    )  # fmt: skip
    return wrapper(
        "mechanize", _init_mechanize, _update_mechanize, base_optimizer,
        weight_decay=weight_decay, eps=eps, s_init=s_init, num_betas=num_betas,
    )  # fmt: skip


__all__ = ["MechanicState", "mechanize"]
