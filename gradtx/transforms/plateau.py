"""Reduce on plateau: a step-size factor that shrinks when the loss stops improving.

    reduce_on_plateau   A = the mean of the last accumulation_size losses         (one evaluation)
                        best_value <- A   if A < (1 - rtol) best_value - atol
                        scale <- max(factor scale, min_scale)   after patience evaluations without improvement
                        u = scale g

A transformation, not a wrapper: it holds no inner transformation, only a factor in its state, and
multiplies whatever reaches it (like `scale_by_schedule`, with a schedule driven by the loss). It
goes after an optimizer: `chain(adam(1e-3), reduce_on_plateau())`. The loss reaches it as the
`value=` keyword of `update`; `gradtx.make_step(tx, loss_fn)` passes it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Params, next_count, transformation, zero_count
from gradtx.checks import COUNT, FRACTION, NONNEG, POSITIVE_COUNT, ArgumentValueError, check, is_zero


class ReduceLROnPlateauState(NamedTuple):
    """scale: the factor applied to the updates (1 at first); best_value: the best mean loss so far
    (inf at first); plateau_count: evaluations since the last improvement (int32); cooldown_count:
    evaluations left in the cooldown (int32); count: losses in the running mean (int32); avg_value:
    their mean. The floats are in the params' widest compute dtype."""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: Count
    cooldown_count: Count
    count: Count
    avg_value: jax.Array


def _scalar_dtype(params: Params) -> np.dtype:
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _init_plateau(hp: Hyperparams, params) -> ReduceLROnPlateauState:
    dtype = _scalar_dtype(params)
    return ReduceLROnPlateauState(
        scale=jnp.ones([], dtype),
        best_value=jnp.full([], jnp.inf, dtype),
        plateau_count=zero_count(),
        cooldown_count=zero_count(),
        count=zero_count(),
        avg_value=jnp.zeros([], dtype),
    )


def _loss(extra_args: dict, dtype: np.dtype) -> jax.Array:
    value = extra_args.get("value")
    if value is None:
        raise TypeError(
            "reduce_on_plateau: update needs the loss as a keyword argument: tx.update(grads, state, params,"
            " value=loss). gradtx.make_step(tx, loss_fn) passes it; in a chain, pass it to the chain's update."
        )
    if jnp.shape(value) != ():
        raise ValueError(f"reduce_on_plateau: value must be the scalar loss, got shape {jnp.shape(value)}")
    return jnp.asarray(value).astype(dtype)


def _decide(hp: Hyperparams, s: ReduceLROnPlateauState) -> ReduceLROnPlateauState:
    """The end of an accumulation: compare the mean with the best, count the plateau, maybe reduce."""
    improved = s.avg_value < (1 - hp.rtol) * s.best_value - hp.atol  # A < (1 - rtol) best - atol
    best = jnp.where(improved, s.avg_value, s.best_value)
    plateau = jnp.where(improved, zero_count(), next_count(s.plateau_count))
    reduce = plateau >= hp.patience  # `patience` evaluations without improvement
    cooling = s.cooldown_count > 0  # in the cooldown after a reduction, bad evaluations are not counted
    scale = jnp.maximum(jnp.where(reduce, s.scale * hp.factor, s.scale), hp.min_scale)
    return ReduceLROnPlateauState(
        scale=jnp.where(cooling, s.scale, scale).astype(s.scale.dtype),
        best_value=best,
        plateau_count=jnp.where(cooling | reduce, zero_count(), plateau),
        cooldown_count=jnp.where(cooling, s.cooldown_count - 1, jnp.where(reduce, hp.cooldown, 0)).astype(jnp.int32),
        count=zero_count(),
        avg_value=jnp.zeros_like(s.avg_value),
    )


def _update_plateau(hp: Hyperparams, g, state: ReduceLROnPlateauState, params=None, **extra_args):
    value = _loss(extra_args, state.avg_value.dtype)
    n = next_count(state.count)
    dtype = state.avg_value.dtype
    avg = (state.count.astype(dtype) * state.avg_value + value) / n.astype(dtype)  # the running mean A
    state = state._replace(avg_value=avg, count=n)
    decided = _decide(hp, state)
    state = jax.tree.map(lambda a, b: jnp.where(n >= hp.accumulation_size, a, b), decided, state)
    return tree.scale(state.scale, g), state  # u = scale g


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformation:
    """Multiplies the updates by a scale that drops by `factor` when the loss plateaus.

        A = the mean of the last accumulation_size losses                       (one evaluation)
        best_value <- A   if A < (1 - rtol) best_value - atol                   (an improvement)
        if cooldown_count > 0:  cooldown_count <- cooldown_count - 1,  plateau_count <- 0     (scale unchanged)
        otherwise plateau_count <- 0 after an improvement, else plateau_count + 1, then
        if plateau_count >= patience:  scale <- max(factor scale, min_scale),  plateau_count <- 0,
                                       cooldown_count <- cooldown
        u = scale g

    Pass the loss to every update: `tx.update(grads, state, params, value=loss)` (a TypeError names
    `value` when it is missing); `make_step(tx, loss_fn)` passes it. Use a held-out loss with
    accumulation_size = 1, or the minibatch losses averaged over an epoch (accumulation_size = the
    batches in it). A NaN loss counts as no improvement (as in optax and torch). Same as
    optax.contrib.reduce_on_plateau; like torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min",
    threshold_mode="rel", threshold=rtol) with torch's patience = patience - 1 and cooldown =
    cooldown (torch reduces after more than `patience` bad epochs). The scale is kept in the
    params' widest compute dtype (optax: their narrowest), `min_scale` at most 1 (the scale only
    falls), and `rtol` and `atol` not both 0 (optax's rule).

    >>> import gradtx
    >>> tx = gradtx.chain(gradtx.sgd(0.1), gradtx.reduce_on_plateau(factor=0.5, patience=2))
    >>> params = {"w": 1.0}
    >>> state = tx.init(params)
    >>> for loss in [3.0, 3.0, 3.0]:  # no improvement after the first: the second such halves the scale
    ...     u, state = tx.update({"w": 1.0}, state, params, value=loss)
    >>> float(state[1].scale), float(u["w"])
    (0.5, -0.05)
    """
    check(
        "reduce_on_plateau",
        factor=(factor, "(0, 1)"), patience=(patience, POSITIVE_COUNT), rtol=(rtol, FRACTION), atol=(atol, NONNEG),
        cooldown=(cooldown, COUNT), accumulation_size=(accumulation_size, POSITIVE_COUNT),
        min_scale=(min_scale, FRACTION),
    )  # fmt: skip
    if is_zero(rtol) and is_zero(atol):
        raise ArgumentValueError(
            "reduce_on_plateau", "rtol", "and atol must not both be 0 (optax's rule): give a tolerance, e.g. rtol=1e-4"
        )
    return transformation(
        "reduce_on_plateau", _init_plateau, _update_plateau,
        factor=factor, patience=patience, rtol=rtol, atol=atol, cooldown=cooldown,
        accumulation_size=accumulation_size, min_scale=min_scale, extra_args=True,
    )  # fmt: skip


__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]
