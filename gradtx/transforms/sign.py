"""Sign methods: the direction of each coordinate comes from a sign, its size from elsewhere.

    scale_by_lion    u = sign(b1 m + (1 - b1) g);  m <- b2 m + (1 - b2) g     (Chen et al., 2023)
    scale_by_rprop   u = step sign(g), each step grown or shrunk as g keeps or flips its sign
                                                                          (Riedmiller & Braun, 1993)

`scale_by_sign` (signSGD) is in scaling.py. Signs are exact in every dtype; moments follow
adaptive.py's policy (`mu_dtype`/`accumulator_dtype` for Lion's), and Rprop's step sizes are real
and at least float32 (a float16 step size could not hold the default minimum 1e-6 as a normal number).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Updates,
    check,
    next_count,
    transformation,
    zero_count,
)
from gradtx.transforms.adaptive import NONNEG, UNIT, first_moment_dtype

# ---------------------------------------------------------------------------------------------------
# Lion

LION_MODES = ("hard", "smooth", "refined")


class ScaleByLionState(NamedTuple):
    """count: updates applied (int32); mu: m, the EMA of g with decay b2."""

    count: Count
    mu: Updates


def _init_lion(hp: Hyperparams, params) -> ScaleByLionState:
    return ScaleByLionState(count=zero_count(), mu=tree.first_moment_like(params, hp.accumulator_dtype))


def _soft_sign(hp: Hyperparams, c: jax.Array) -> jax.Array:
    if hp.mode == "smooth":  # tanh(beta c)
        return jnp.tanh(jnp.asarray(hp.smooth_beta).astype(c.dtype) * c)
    if hp.mode == "refined":  # c where |c| < 1, sign(c) beyond
        return jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
    return jnp.sign(c)


def _update_lion(hp: Hyperparams, g, state: ScaleByLionState, params=None):
    c = tree.lerp(tree.compute_like(state.mu, g), g, hp.b1, 1 - hp.b1)  # c = b1 m + (1 - b1) g
    u = jax.tree.map(lambda x: _soft_sign(hp, x), c)  # u = sign(c)
    mu = tree.ema(state.mu, g, hp.b2)  # m <- b2 m + (1 - b2) g
    return tree.cast_like(u, g), ScaleByLionState(count=next_count(state.count), mu=mu)


def scale_by_lion(
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float = 1.0,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Lion's direction (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

        c = b1 m + (1 - b1) g
        u = sign(c)
        m <- b2 m + (1 - b2) g

    The update interpolates with b1 but the momentum decays with b2 > b1, so the momentum remembers
    longer than the update looks. Every coordinate moves by exactly the learning rate: Lion wants a
    learning rate 3-10x smaller than AdamW's. `mode` (optax's extension) replaces sign: "smooth" is
    tanh(smooth_beta c), "refined" is c where |c| < 1 and sign(c) beyond. `accumulator_dtype`
    (alias `mu_dtype`) sets m's dtype. Complex params: sign(c) = c / |c|. The count is kept for
    optax's state layout; Lion itself does not use it.

    >>> import gradtx
    >>> gradtx.scale_by_lion()
    scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0)
    """
    check("scale_by_lion", b1=(b1, "[0, 1]"), b2=(b2, UNIT), smooth_beta=(smooth_beta, NONNEG))
    if mode not in LION_MODES:
        raise ValueError(f"scale_by_lion: mode must be one of {LION_MODES}, got {mode!r}")
    dtype = first_moment_dtype("scale_by_lion", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_lion", _init_lion, _update_lion,
        b1=b1, b2=b2, accumulator_dtype=dtype, mode=mode, smooth_beta=smooth_beta,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Rprop


class ScaleByRpropState(NamedTuple):
    """step_sizes: Delta, each coordinate's step (real, at least float32); prev_updates: the last Delta sign(g)."""

    step_sizes: Updates
    prev_updates: Updates


def _init_rprop(hp: Hyperparams, params) -> ScaleByRpropState:
    for leaf in jax.tree.leaves(params):
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                "scale_by_rprop: complex params have no sign to keep or flip (Rprop compares the signs of"
                f" successive gradients), got a {leaf.dtype} leaf. Use it on real params only."
            )
    return ScaleByRpropState(
        step_sizes=tree.second_moment_like(params, hp.learning_rate), prev_updates=tree.zeros_like(params)
    )


def _as(value: Any, like: jax.Array) -> jax.Array:
    return jnp.asarray(value).astype(like.dtype)  # a number or a tracer never widens a dtype


def _next_step(hp: Hyperparams, s: jax.Array, step: jax.Array) -> jax.Array:
    grown = jnp.minimum(_as(hp.eta_plus, step) * step, _as(hp.max_step_size, step))
    shrunk = jnp.maximum(_as(hp.eta_minus, step) * step, _as(hp.min_step_size, step))
    return jnp.where(s > 0, grown, jnp.where(s < 0, shrunk, step))


def _rprop_step(s: jax.Array, step: jax.Array, g: jax.Array) -> jax.Array:
    return jnp.where(s < 0, jnp.zeros_like(step), step * jnp.sign(g).astype(step.dtype)).astype(g.dtype)


def _update_rprop(hp: Hyperparams, g, state: ScaleByRpropState, params=None):
    # s = sign(g_t) sign(g_{t-1}): the sign of g_t g_{t-1} without the product's underflow
    s = jax.tree.map(lambda x, prev: jnp.sign(x) * jnp.sign(prev).astype(x.dtype), g, state.prev_updates)
    step = jax.tree.map(lambda si, d: _next_step(hp, si, d), s, state.step_sizes)  # Delta grown, shrunk or kept
    u = jax.tree.map(_rprop_step, s, step, g)  # u = Delta sign(g_t), or 0 after a flip
    return u, ScaleByRpropState(step_sizes=step, prev_updates=tree.cast_like(u, state.prev_updates))


def scale_by_rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop's steps (Riedmiller & Braun, 1993; the iRprop- variant of Igel & Huesken, 2000).

        s = sign(g_t) sign(g_{t-1})
        Delta <- min(eta_plus Delta, max_step_size)     if s > 0   (the same sign: speed up)
        Delta <- max(eta_minus Delta, min_step_size)    if s < 0   (a flip: overshot, slow down)
        u = Delta sign(g_t), and g_t is forgotten (taken as 0), where s >= 0; u = 0 where s < 0

    Delta starts at `learning_rate`; g_0 = 0. Only signs are used: full-batch training, not
    mini-batches (noisy signs flip at random). A positive update, as every transformation gives:
    `rprop` follows it with `scale(-1)`. Same as optax, and as torch.optim.Rprop(lr, etas,
    step_sizes) while the first step Delta_0 = lr lies within [min_step_size, max_step_size]
    (torch clips it at the first step too). Real params only.

    >>> import gradtx
    >>> gradtx.scale_by_rprop(0.01)
    scale_by_rprop(learning_rate=0.01, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-06, max_step_size=50.0)
    """
    check(
        "scale_by_rprop",
        learning_rate=(learning_rate, NONNEG), eta_minus=(eta_minus, "(0, 1]"), eta_plus=(eta_plus, "[1, inf)"),
        min_step_size=(min_step_size, NONNEG), max_step_size=(max_step_size, NONNEG),
    )  # fmt: skip
    numbers = isinstance(min_step_size, int | float) and isinstance(max_step_size, int | float)
    if numbers and min_step_size > max_step_size:
        raise ValueError(
            f"scale_by_rprop: min_step_size must be <= max_step_size, got {min_step_size!r} > {max_step_size!r}"
        )
    return transformation(
        "scale_by_rprop", _init_rprop, _update_rprop,
        learning_rate=learning_rate, eta_minus=eta_minus, eta_plus=eta_plus,
        min_step_size=min_step_size, max_step_size=max_step_size,
    )  # fmt: skip


__all__ = ["ScaleByLionState", "ScaleByRpropState", "scale_by_lion", "scale_by_rprop"]
