"""lookahead: k steps forward with a fast optimizer, then the slow weights move part of the way."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    GradientTransformationExtraArgs,
    Hyperparams,
    InitFn,
    OptState,
    Params,
    UpdateFn,
    Updates,
    next_count,
    zero_count,
)
from gradtx.checks import FRACTION, POSITIVE_COUNT, check, check_matching_trees, require_params
from gradtx.combine import check_members, update_one

# ---------------------------------------------------------------------------------------------------
# lookahead


class LookaheadState(NamedTuple):
    """fast_state: the fast optimizer's state; steps_since_sync: its steps since the last sync (int32)."""

    fast_state: Any
    steps_since_sync: Count


class LookaheadParams(NamedTuple):
    """The fast weights (take gradients here) and the slow weights (evaluate these)."""

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        """Fast and slow weights both equal to `params`: where a run starts."""
        return cls(fast=params, slow=params)


def _is_pair(params: Any) -> bool:
    return getattr(params, "_fields", None) == ("fast", "slow")  # gradtx's or optax's LookaheadParams


def _init_lookahead(hp: Hyperparams, params) -> LookaheadState:
    fast = params.fast if _is_pair(params) else params  # as optax: the fast weights alone do too
    return LookaheadState(fast_state=hp.args[0].init(fast), steps_since_sync=zero_count())


def _update_lookahead(hp: Hyperparams, g, state: LookaheadState, fast, slow, extra_args: dict):
    u, fast_state = update_one(hp.args[0], g, state.fast_state, fast, extra_args)  # the fast step
    sync = state.steps_since_sync + 1 >= hp.sync_period  # this is the k-th fast step: synchronize
    alpha = hp.slow_step_size
    d = tree.sub(tree.add(fast, u), slow)  # d = W_fast' - W_slow, W_fast' = W_fast + u
    slow_u = tree.scale(jnp.where(sync, alpha, 0.0), d)  # W_slow <- W_slow + alpha d
    fast_u = tree.lerp(u, d, 1.0, jnp.where(sync, alpha - 1.0, 0.0))  # W_fast <- W_slow (new): u - (1 - alpha) d
    if hp.reset_state:
        fast_state = tree.where(sync, hp.args[0].init(fast), fast_state)
    steps = jnp.where(sync, zero_count(), next_count(state.steps_since_sync))
    return fast_u, slow_u, LookaheadState(fast_state=fast_state, steps_since_sync=steps)


class _LookaheadUpdateFn(UpdateFn):
    """lookahead's update: the params are a (fast, slow) pair, the gradients those of the fast weights,
    and the updates a (fast, slow) pair for `apply_updates`."""

    __slots__ = ()

    def _traced(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        params = require_params("lookahead", params)
        if not _is_pair(params):
            raise TypeError(
                f"lookahead: params must be LookaheadParams(fast, slow), got {type(params).__name__}."
                " Start from gradtx.LookaheadParams.init_synced(params) and take gradients at params.fast."
            )
        g = tree.trainable(updates)
        check_matching_trees("lookahead", updates, g, None, params.fast)
        fast, slow = tree.trainable(params.fast), tree.trainable(params.slow)
        fast_u, slow_u, state = self.fn(self.hp, g, state, fast, slow, extra_args)
        return type(params)(tree.with_frozen(fast_u, updates), tree.with_frozen(slow_u, updates)), state


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead (Zhang et al., 2019): k steps forward with a fast optimizer, then one step back.

        W_fast <- W_fast + fast_optimizer(g)        every step, g taken at W_fast
        every k = sync_period steps:
            W_slow <- W_slow + alpha (W_fast - W_slow)     (alpha = slow_step_size)
            W_fast <- W_slow

    The params are `LookaheadParams(fast, slow)` (`LookaheadParams.init_synced(params)` to start),
    the gradients are taken at `params.fast`, and the updates are a `LookaheadParams` pair for
    `apply_updates`; evaluate the slow weights. `reset_state=True` restarts the fast optimizer's
    state at each sync. The state is `LookaheadState(fast_state, steps_since_sync)`, as optax's.
    `update` needs params. Do not change the updates before applying them: the pair is one step.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.lookahead(gradtx.sgd(0.1), sync_period=5, slow_step_size=0.5)
    >>> params = gradtx.LookaheadParams.init_synced({"w": jnp.ones(2)})
    >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> params = gradtx.apply_updates(params, updates)
    """
    check_members("lookahead", (fast_optimizer,))
    check("lookahead", sync_period=(sync_period, POSITIVE_COUNT), slow_step_size=(slow_step_size, FRACTION))
    hp = Hyperparams(
        "lookahead", (fast_optimizer,),
        {"sync_period": sync_period, "slow_step_size": slow_step_size, "reset_state": reset_state},
    )  # fmt: skip
    return GradientTransformationExtraArgs(InitFn(_init_lookahead, hp), _LookaheadUpdateFn(_update_lookahead, hp))


__all__ = ["LookaheadParams", "LookaheadState", "lookahead"]
