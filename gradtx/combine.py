"""Composition: transformations in sequence.

    chain(t1, t2, ..., tn):  u <- t1(g);  u <- t2(u);  ...;  state = (s1, s2, ..., sn)

`chain` accepts any object with `init` and `update` (optax's too), and its state is a plain tuple
of the members' states, exactly as optax's, so states and checkpoints move between the libraries.
"""

from __future__ import annotations

from typing import Any

from gradtx.base import (
    GradientTransformation,
    Hyperparams,
    OptState,
    Params,
    UpdateFn,
    Updates,
    transformation,
)


def _takes_extra_args(tx: Any) -> bool:
    # Every gradtx update ignores keywords it does not use; optax marks those that accept them by
    # their class. A plain optax GradientTransformation would raise on them, so it gets none.
    return isinstance(tx.update, UpdateFn) or type(tx).__name__ == "GradientTransformationExtraArgs"


def _update_one(tx: Any, updates: Updates, state: OptState, params: Params, extra_args: dict) -> Any:
    if extra_args and _takes_extra_args(tx):
        return tx.update(updates, state, params, **extra_args)
    return tx.update(updates, state, params)


def _check_members(builder: str, transforms: tuple) -> None:
    for i, tx in enumerate(transforms):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"{builder}: argument {i} must be a gradient transformation (with init and update),"
                f" got {type(tx).__name__}: {tx!r}"
            )


def _chain_init(hp: Hyperparams, params: Params) -> tuple:
    return tuple(tx.init(params) for tx in hp.args)


def _chain_update(
    hp: Hyperparams, updates: Updates, state: tuple, params: Params = None, **extra_args: Any
) -> tuple[Updates, tuple]:
    if len(state) != len(hp.args):
        raise ValueError(
            f"chain: state has {len(state)} members but the chain has {len(hp.args)} transformations;"
            " was the state built by this chain's init?"
        )
    new_state = []
    for tx, s in zip(hp.args, state, strict=True):
        updates, s = _update_one(tx, updates, s, params, extra_args)
        new_state.append(s)
    return updates, tuple(new_state)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Applies transformations in sequence; the state is the tuple of their states.

    >>> import gradtx
    >>> gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.scale_by_sign(), gradtx.scale(-1e-3))
    chain(clip_by_global_norm(max_norm=1.0), scale_by_sign(), scale(step_size=-0.001))
    """
    _check_members("chain", transforms)
    return transformation("chain", _chain_init, _chain_update, *transforms, extra_args=True)


def _named_chain_init(hp: Hyperparams, params: Params) -> dict:
    return {name: tx.init(params) for name, tx in hp.args}


def _named_chain_update(
    hp: Hyperparams, updates: Updates, state: dict, params: Params = None, **extra_args: Any
) -> tuple[Updates, dict]:
    new_state = {}
    for name, tx in hp.args:
        updates, new_state[name] = _update_one(tx, updates, state[name], params, extra_args)
    return updates, new_state


def named_chain(*transforms: tuple[str, GradientTransformation]) -> GradientTransformation:
    """Like `chain`, with each member named: the state is a dict from name to member state.

    >>> import gradtx
    >>> tx = gradtx.named_chain(("clip", gradtx.clip(1.0)), ("sgd", gradtx.scale(-0.1)))
    >>> list(tx.init({"w": 0.0}))
    ['clip', 'sgd']
    """
    names = [pair[0] if isinstance(pair, tuple) and len(pair) == 2 else None for pair in transforms]
    if None in names or not all(isinstance(n, str) for n in names):
        raise TypeError("named_chain: each argument must be a (name, transformation) pair")
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be unique, got {names}")
    _check_members("named_chain", tuple(tx for _, tx in transforms))
    return transformation("named_chain", _named_chain_init, _named_chain_update, *transforms, extra_args=True)
