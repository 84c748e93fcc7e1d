"""with_extra_args_support: an update without keyword arguments made to accept (and ignore) them.

u = t(g), whatever keyword arguments update is given
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, GradientTransformationExtraArgs, Hyperparams, UpdateFn
from gradtx.combine import check_members, wrapper


def _init_with_extra_args(hp: Hyperparams, params) -> Any:
    return hp.args[0].init(params)


def _update_with_extra_args(hp: Hyperparams, g, state, params=None, **extra_args):
    return hp.args[0].update(g, state, params)  # the keyword arguments are dropped here


def with_extra_args_support(tx: Any) -> Any:
    """`tx` as a GradientTransformationExtraArgs: its update accepts keyword arguments and ignores them.

        with_extra_args_support(t).update(g, s, p, **kw) = t.update(g, s, p)

    For a hand-built `GradientTransformation(init, update)` (or an optax one) whose `update` takes
    no keyword arguments, before calling it with some. Every transformation gradtx builds already
    takes them (and a hand-built `GradientTransformationExtraArgs` is assumed to): those come back
    as they are, as in optax. The state is `tx`'s own; `chain` and the wrappers do this themselves.

    >>> import gradtx
    >>> plain = gradtx.GradientTransformation(gradtx.init_empty_state, lambda u, s, p=None: (u, s))
    >>> tx = gradtx.with_extra_args_support(plain)
    >>> float(tx.update(1.0, tx.init(1.0), None, loss=0.5)[0])
    1.0
    >>> sgd = gradtx.sgd(0.1)
    >>> gradtx.with_extra_args_support(sgd) is sgd
    True
    """
    check_members("with_extra_args_support", (tx,))
    if isinstance(tx, GradientTransformationExtraArgs) or type(tx).__name__ == "GradientTransformationExtraArgs":
        return tx  # gradtx's or optax's: it takes them already
    if isinstance(tx, GradientTransformation) and isinstance(tx.update, UpdateFn):
        return GradientTransformationExtraArgs(tx.init, tx.update)  # a gradtx update, rewrapped by hand
    return wrapper("with_extra_args_support", _init_with_extra_args, _update_with_extra_args, tx)


__all__ = ["with_extra_args_support"]
