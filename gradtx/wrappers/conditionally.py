"""conditionally_transform, conditionally_mask: run the inner transformation only at the steps a condition picks.

u = t(g) where should_transform_fn(step) holds; else u = g (conditionally_transform) or u = 0 (conditionally_mask)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, OptState, Updates, next_count, zero_count
from gradtx.checks import ArgumentTypeError, check_flag
from gradtx.combine import check_members, update_one, wrapper


class ConditionFn(Protocol):
    """`should_transform_fn(step, **extra_args) -> bool scalar`: step counts the updates before this one."""

    def __call__(self, step: jax.Array, **extra_args: Any) -> jax.Array: ...


class ConditionallyTransformState(NamedTuple):
    """inner_state; step: updates applied so far (int32), the condition's argument (optax's field order)."""

    inner_state: Any
    step: Count


class ConditionallyMaskState(NamedTuple):
    """step: updates applied so far (int32), the condition's argument; inner_state (optax's field order)."""

    step: Count
    inner_state: Any


def _condition(hp: Hyperparams, step: jax.Array, extra_args: dict) -> jax.Array:
    """should_transform_fn(step), checked to be a boolean scalar (lax.cond would take 2 as True)."""
    kwargs = extra_args if hp.forward_extra_args else {}
    value = hp.should_transform_fn(step, **kwargs)
    if jnp.shape(value) != () or jnp.result_type(value) != jnp.bool_:
        raise TypeError(
            f"{hp.builder}: should_transform_fn must return a boolean scalar, got a {jnp.result_type(value)}"
            f" value of shape {jnp.shape(value)}; compare, e.g. `lambda step: step % 2 == 0`"
        )
    return jnp.asarray(value)


def _conditional(hp: Hyperparams, g: Updates, inner_state: OptState, step: jax.Array, params, extra_args, skipped):
    def run() -> tuple[Updates, OptState]:
        return update_one(hp.args[0], g, inner_state, params, extra_args)

    def skip() -> tuple[Updates, OptState]:
        return skipped, inner_state  # the inner state as it was

    return jax.lax.cond(_condition(hp, step, extra_args), run, skip)


def _init_transform(hp: Hyperparams, params) -> ConditionallyTransformState:
    return ConditionallyTransformState(inner_state=hp.args[0].init(params), step=zero_count())


def _update_transform(hp: Hyperparams, g, state: ConditionallyTransformState, params=None, **extra_args):
    u, inner_state = _conditional(hp, g, state.inner_state, state.step, params, extra_args, skipped=g)
    return u, ConditionallyTransformState(inner_state=inner_state, step=next_count(state.step))


def _init_mask(hp: Hyperparams, params) -> ConditionallyMaskState:
    return ConditionallyMaskState(step=zero_count(), inner_state=hp.args[0].init(params))


def _update_mask(hp: Hyperparams, g, state: ConditionallyMaskState, params=None, **extra_args):
    u, inner_state = _conditional(hp, g, state.inner_state, state.step, params, extra_args, tree.zeros_like(g))
    return u, ConditionallyMaskState(step=next_count(state.step), inner_state=inner_state)


def _check(builder: str, inner: Any, should_transform_fn: Any, forward_extra_args: Any) -> bool:
    check_members(builder, (inner,))
    if not callable(should_transform_fn):
        raise ArgumentTypeError(
            builder, "should_transform_fn", f"must be a function step -> bool, got {should_transform_fn!r}"
        )
    return check_flag(builder, "forward_extra_args", forward_extra_args)


def conditionally_transform(
    inner: GradientTransformation, should_transform_fn: ConditionFn, forward_extra_args: bool = False
) -> GradientTransformation:
    """Runs `inner` at the steps where `should_transform_fn(step)` is True; passes updates through elsewhere.

        u = inner(g)   where should_transform_fn(step) holds (and inner's state moves on)
        u = g          elsewhere (and inner's state stays as it was)
        step <- step + 1                     (step = updates before this one, from 0)

    For a transformation that should act only now and then (a clip every k steps, a preconditioner
    switched on after a warm-up): `conditionally_transform(t, lambda step: step >= 100)`. The
    condition returns a boolean scalar; with `forward_extra_args=True` it also receives update's
    keyword arguments. To zero the updates at the other steps instead, `conditionally_mask`. As
    optax's, state `ConditionallyTransformState(inner_state, step)`.

    >>> import gradtx
    >>> tx = gradtx.conditionally_transform(gradtx.scale(10.0), lambda step: step >= 1)
    >>> state = tx.init(1.0)
    >>> u0, state = tx.update(1.0, state)
    >>> u1, state = tx.update(1.0, state)
    >>> float(u0), float(u1)
    (1.0, 10.0)
    """
    flag = _check("conditionally_transform", inner, should_transform_fn, forward_extra_args)
    return wrapper(
        "conditionally_transform", _init_transform, _update_transform, inner,
        should_transform_fn=should_transform_fn, forward_extra_args=flag,
    )  # fmt: skip


def conditionally_mask(
    inner: GradientTransformation, should_transform_fn: ConditionFn, forward_extra_args: bool = False
) -> GradientTransformation:
    """Runs `inner` at the steps where `should_transform_fn(step)` is True; zero updates elsewhere.

        u = inner(g)   where should_transform_fn(step) holds (and inner's state moves on)
        u = 0          elsewhere (the params stay; inner's state stays as it was)
        step <- step + 1                     (step = updates before this one, from 0)

    For an optimizer that should not move the params at some steps (a frozen warm-up, every other
    step of an alternating scheme): `conditionally_mask(adam(1e-3), lambda step: step % 2 == 0)`.
    The condition returns a boolean scalar; with `forward_extra_args=True` it also receives
    update's keyword arguments. To pass the updates through unchanged instead,
    `conditionally_transform`. As optax's, state `ConditionallyMaskState(step, inner_state)`.

    >>> import gradtx
    >>> tx = gradtx.conditionally_mask(gradtx.sgd(0.1), lambda step: step % 2 == 1)
    >>> state = tx.init(1.0)
    >>> u0, state = tx.update(1.0, state)
    >>> u1, state = tx.update(1.0, state)
    >>> float(u0), float(u1)
    (0.0, -0.1)
    """
    flag = _check("conditionally_mask", inner, should_transform_fn, forward_extra_args)
    return wrapper(
        "conditionally_mask", _init_mask, _update_mask, inner,
        should_transform_fn=should_transform_fn, forward_extra_args=flag,
    )  # fmt: skip


__all__ = [
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "conditionally_mask",
    "conditionally_transform",
]
