"""freeze, selective_transform: hold the params a mask marks fixed, and optimize only the others.

freeze(mask):                          u = 0 where mask is True, u = g elsewhere
selective_transform(t, freeze_mask=m): u = 0 where m is True, u = t(g) elsewhere (t keeps state for those alone)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gradtx.base import GradientTransformation, Hyperparams, Params
from gradtx.checks import is_tracer
from gradtx.combine import (
    MaskedState,
    PartitionState,
    _masked_init_with,
    _masked_update_with,
    check_mask_leaves,
    check_members,
    is_function,
    set_to_zero,
    wrapper,
)


def _as_mask(builder: str, mask: Any) -> Any:
    """A mask with concrete 0-d boolean arrays (optax allows a jnp.bool_ scalar) as Python bools, checked."""
    if is_function(mask):
        return mask

    def leaf(x: Any) -> Any:
        if isinstance(x, jax.Array | np.ndarray) and not is_tracer(x) and x.shape == () and x.dtype == np.bool_:
            return bool(x)
        return x

    mask = jax.tree.map(leaf, mask)
    check_mask_leaves(builder, mask)
    return mask


# ---------------------------------------------------------------------------------------------------
# freeze


def _init_freeze(hp: Hyperparams, params) -> MaskedState:
    return _masked_init_with("freeze", set_to_zero(), hp.mask, params)


def _update_freeze(hp: Hyperparams, g, state: MaskedState, params=None, **extra_args):
    return _masked_update_with("freeze", set_to_zero(), hp.mask, g, state, params, extra_args)


def freeze(mask: bool | Any | Callable[[Params], Any]) -> GradientTransformation:
    """Zero updates for the params where `mask` is True: those params stay as they are.

        u = 0   where mask is True        (frozen)
        u = g   where mask is False       (passed on to what follows in a chain)

    `mask` is one bool (True: freeze everything), a tree of bools with the params' structure or a
    prefix of it, or a function params -> such a tree (gradtx also takes a function, as `masked`
    does). It is `masked(set_to_zero(), mask)`, optax's definition, with its state
    `MaskedState(inner_state=EmptyState())`. Put it before an optimizer and the frozen leaves'
    zero gradients still reach that optimizer's state (its moments decay); to keep no state for
    them at all, `selective_transform`.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.chain(gradtx.freeze({"encoder": True, "head": False}), gradtx.sgd(0.1))
    >>> params = {"encoder": jnp.ones(2), "head": jnp.ones(2)}
    >>> u, _ = tx.update(params, tx.init(params))
    >>> print(u["encoder"], u["head"])
    [0. 0.] [-0.1 -0.1]
    """
    return wrapper("freeze", _init_freeze, _update_freeze, mask=_as_mask("freeze", mask))


# ---------------------------------------------------------------------------------------------------
# selective_transform


def _groups(hp: Hyperparams, full: Any) -> tuple[Any, Any]:
    """(the mask of the leaves to train, the mask of the leaves to freeze) over `full`."""
    frozen = hp.freeze_mask(full) if is_function(hp.freeze_mask) else hp.freeze_mask
    check_mask_leaves("selective_transform", frozen)
    return jax.tree.map(lambda f: not f, frozen), frozen


def _init_selective(hp: Hyperparams, params) -> PartitionState:
    train, frozen = _groups(hp, params)
    return PartitionState(
        inner_states={
            "train": _masked_init_with("selective_transform", hp.args[0], train, params),
            "freeze": _masked_init_with("selective_transform", set_to_zero(), frozen, params),
        }
    )


def _update_selective(hp: Hyperparams, g, state: PartitionState, params=None, **extra_args):
    train, frozen = _groups(hp, g)  # as partition: a mask function is given the updates
    states = state.inner_states
    g, train_state = _masked_update_with(
        "selective_transform", hp.args[0], train, g, states["train"], params, extra_args
    )  # u = t(g) on the leaves to train
    g, freeze_state = _masked_update_with(
        "selective_transform", set_to_zero(), frozen, g, states["freeze"], params, extra_args
    )  # u = 0 on the frozen ones
    return g, PartitionState(inner_states={"train": train_state, "freeze": freeze_state})


def selective_transform(
    optimizer: GradientTransformation, *, freeze_mask: bool | Any | Callable[[Params], Any]
) -> GradientTransformation:
    """Runs `optimizer` on the params where `freeze_mask` is False; zero updates where it is True.

        u = optimizer(g)   where freeze_mask is False  (optimizer sees, and keeps state for, these alone)
        u = 0              where freeze_mask is True

    Fine-tuning part of a model: the frozen leaves cost no optimizer state. `freeze_mask` is one
    bool, a tree of bools with the params' structure (or a prefix of it), or (gradtx only) a function
    params -> such a tree. As optax's: `partition({"train": optimizer, "freeze": set_to_zero()},
    labels)`, with its state `PartitionState(inner_states={"train": ..., "freeze": ...})`, so
    checkpoints move between the two libraries. Compare `freeze`, which only zeros the updates.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.selective_transform(gradtx.adam(1e-3), freeze_mask={"encoder": True, "head": False})
    >>> params = {"encoder": jnp.ones(2), "head": jnp.ones(2)}
    >>> tx.init(params).inner_states["train"].inner_state[0].mu["encoder"]  # no moments for the encoder
    MaskedNode()
    """
    check_members("selective_transform", (optimizer,))
    mask = _as_mask("selective_transform", freeze_mask)
    return wrapper("selective_transform", _init_selective, _update_selective, optimizer, freeze_mask=mask)


__all__ = ["freeze", "selective_transform"]
