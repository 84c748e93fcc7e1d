"""Rprop: each coordinate's step grows while its gradient keeps its sign and shrinks when it flips
(Riedmiller & Braun, 1993).

    scale_by_rprop   s <- min(s eta_plus, max_step) if g g_prev > 0;  max(s eta_minus, min_step) if < 0
                     u = s sign(g)   (and g is forgotten after a flip)
    rprop            chain(scale_by_rprop, scale(-1))

Step sizes are real and at least float32 (a float16 step size could not hold the default minimum
1e-6 as a normal number).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, Updates, transformation
from gradtx.checks import NONNEG, ArgumentValueError, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.scaling import scale

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
    kept = jnp.where(jnp.isnan(s), s.astype(step.dtype), step)  # a NaN gradient poisons the step, as in torch
    return jnp.where(s > 0, grown, jnp.where(s < 0, shrunk, kept))


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
        raise ArgumentValueError(
            "scale_by_rprop", "min_step_size", f"must be <= max_step_size, got {min_step_size!r} > {max_step_size!r}"
        )
    return transformation(
        "scale_by_rprop", _init_rprop, _update_rprop,
        learning_rate=learning_rate, eta_minus=eta_minus, eta_plus=eta_plus,
        min_step_size=min_step_size, max_step_size=max_step_size,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop (Riedmiller & Braun, 1993): `chain(scale_by_rprop(...), scale(-1))`.

    See `scale_by_rprop`: `learning_rate` is the first step of every coordinate (a number), after
    which each step grows by eta_plus or shrinks by eta_minus. For full-batch training. Matches
    torch.optim.Rprop(lr, etas=(eta_minus, eta_plus), step_sizes=(min_step_size, max_step_size))
    when lr is within [min_step_size, max_step_size].

    >>> import gradtx
    >>> gradtx.rprop(1e-3)
    chain(scale_by_rprop(learning_rate=0.001, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-06, max_step_size=50.0),
          scale(step_size=-1.0))
    """
    check("rprop", learning_rate=(learning_rate, "[0, inf)"))
    with arguments_of("rprop"):
        return chain(scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size), scale(-1.0))


__all__ = ["ScaleByRpropState", "rprop", "scale_by_rprop"]
