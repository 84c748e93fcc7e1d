"""Regularization: terms added to the updates that pull the parameters toward zero.

    add_decayed_weights(lambda):   u = g + lambda W      (the gradient of (lambda / 2) ||W||^2)

Where it stands in a chain decides whether it is L2 regularization or decoupled weight decay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Params,
    ScalarOrSchedule,
    init_empty,
    next_count,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import SCHEDULE, check, require_params
from gradtx.combine import check_mask_leaves, is_function, masked


class AddDecayedWeightsState(NamedTuple):
    """count: updates applied (int32), the weight-decay schedule's argument (optax: WeightDecaySchedule)."""

    count: Count


def _init_decay_schedule(hp: Hyperparams, params) -> AddDecayedWeightsState:
    return AddDecayedWeightsState(count=zero_count())


def _update_add_decayed_weights(hp: Hyperparams, g, state, params=None):
    params = require_params("add_decayed_weights", params)
    if callable(hp.weight_decay):
        lam = value_at(hp.weight_decay, state.count)
        state = AddDecayedWeightsState(count=next_count(state.count))
    elif isinstance(hp.weight_decay, int | float) and hp.weight_decay == 0:
        return g, state  # as optax: a zero constant adds nothing, not even 0 * inf = nan
    else:
        lam = hp.weight_decay

    def decay(g_leaf: Any, p_leaf: Any) -> Any:
        if g_leaf is None:  # a frozen leaf (grad None) stays None
            return None
        return tree.add_scale(g_leaf, lam, p_leaf)  # u = g + lambda W

    return jax.tree.map(decay, g, params, is_leaf=lambda x: x is None), state


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any | Callable[[Params], Any] | None = None,
) -> GradientTransformation:
    """Adds the parameters times weight_decay to the updates: L2 regularization's gradient.

        u = g + lambda W          (lambda = weight_decay >= 0, a number or a schedule)

    Placed before an adaptive preconditioner this is L2 regularization (the decay is rescaled with
    the gradient); placed after it and before the learning rate it is decoupled weight decay
    (AdamW; Loshchilov & Hutter, 2019). A schedule is evaluated at k = updates already applied and
    the state is then `AddDecayedWeightsState(count)` (optax: `WeightDecaySchedule(count)`), else
    `EmptyState()`. `mask` (optax's argument): None, a tree of bools with the params' structure (or
    a prefix of it) or a function params -> such a tree; leaves marked False pass unchanged (e.g. no
    decay on biases and norm scales). With a mask it is `masked(add_decayed_weights(weight_decay),
    mask)`, as in optax, and its state is then a `MaskedState`. `update` needs params.

    >>> import gradtx
    >>> gradtx.add_decayed_weights(1e-4)
    add_decayed_weights(weight_decay=0.0001)
    >>> gradtx.add_decayed_weights(1e-4, mask={"w": True, "b": False})
    masked(add_decayed_weights(weight_decay=0.0001), mask={'w': True, 'b': False})
    """
    check("add_decayed_weights", weight_decay=(weight_decay, "[0, inf)" + SCHEDULE))
    if mask is not None and not is_function(mask):
        check_mask_leaves("add_decayed_weights", mask)
    init = _init_decay_schedule if callable(weight_decay) else init_empty
    decay = transformation("add_decayed_weights", init, _update_add_decayed_weights, weight_decay=weight_decay)
    return decay if mask is None else masked(decay, mask)


__all__ = ["AddDecayedWeightsState", "add_decayed_weights"]
