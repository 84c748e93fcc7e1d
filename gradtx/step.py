"""A compiled training step that reuses the memory of params and optimizer state.

    step = gradtx.make_step(tx, loss_fn)          # jitted; params and state donated
    params, state, loss = step(params, state, x, y)

    apply = gradtx.make_step(tx)                  # without a loss: you bring the gradients
    params, state = apply(params, state, grads)

With `loss_fn`, the step also hands `tx.update` the loss as optax's extra arguments: `value=` (the
loss), `grad=` (its gradient) and `value_fn=` (the loss of other params on the same batch). The
transformations that read them get them (lbfgs and the line searches evaluate `value_fn` at trial
steps; polyak_sgd reads `value`); every other one ignores them. So `make_step(gradtx.lbfgs(),
loss_fn)` is a complete L-BFGS step.

A step reads params, grads and state and writes new params and state. Under `jax.jit` without
donation, every step allocates new params and state (and on a CPU pays the page faults of touching
that memory): 3x to 6x the time of the same step that writes into the old buffers. `make_step`
donates params and state by default, so that is what a training loop gets without knowing about it.
Donated arrays are deleted by the call: keep using the ones it returns (`donate=False` keeps them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax

from gradtx import tree
from gradtx.base import GradientTransformation, OptState, Params, Updates, apply_updates
from gradtx.combine import update_one
from gradtx.packing import unpack


def _apply(tx: GradientTransformation, params: Params, state: OptState, grads: Updates, **extra_args: Any) -> Any:
    updates, state = tx.update(grads, state, params, **extra_args)
    return apply_updates(params, updates), state


def _first(fn: Callable[..., Any], trainable: Params) -> Any:
    return fn(trainable)[0]  # the loss of a `(loss, aux)` objective


def _train(
    tx: GradientTransformation,
    loss_fn: Callable[..., Any],
    has_aux: bool,
    params: Params,
    state: OptState,
    *args: Any,
    **kwargs: Any,
) -> Any:
    def objective(trainable: Params) -> Any:
        # Gradients are taken for the floating leaves only; integer and boolean leaves (equinox's
        # static fields, counters) are read as they are. Packed params are unpacked for the loss.
        return loss_fn(unpack(tree.with_frozen(trainable, params)), *args, **kwargs)

    value, grads = jax.value_and_grad(objective, has_aux=has_aux)(tree.trainable(params))
    # optax's extra arguments, for the transformations that take them (update_one passes them only
    # to those): the loss, its gradient, and the loss as a function of the (float) params.
    loss, value_fn = (value[0], partial(_first, objective)) if has_aux else (value, objective)
    updates, state = update_one(tx, grads, state, params, dict(value=loss, grad=grads, value_fn=value_fn))
    return apply_updates(params, updates), state, value


def make_step(
    tx: GradientTransformation, loss_fn: Callable[..., Any] | None = None, *, has_aux: bool = False, donate: bool = True
) -> Callable[..., Any]:
    """A jitted optimizer step with params and state donated.

    With `loss_fn(params, *batch) -> loss` (or `(loss, aux)` with `has_aux=True`):
    `step(params, state, *batch) -> (params, state, loss)` (`(loss, aux)` in place of `loss`): one
    compiled program that takes the gradient of the loss and applies `tx`, passing it the loss as
    `tx.update(grads, state, params, value=loss)` (what reduce_on_plateau and momo read; an optax
    transformation gets it where it takes keyword arguments). The loss always sees the
    params tree as written: `gradtx.Packed` params are unpacked for it (`gradtx.pack`), and integer
    and boolean leaves get no gradient.

    The update also gets `value=loss, grad=grads, value_fn=` the loss as a function of the params
    (on the same batch), optax's extra arguments: line searches (lbfgs) and Polyak's step size read
    them, every other transformation ignores them (an optax transformation gets them only where it
    takes extra arguments). `value_fn` sees the float leaves (integer ones are None, as in every
    update) and puts the others back before calling `loss_fn`.

    Without `loss_fn`: `step(params, state, grads, **extra_args) -> (params, state)`; pass what
    `tx` needs yourself (for lbfgs: `value=`, `grad=`, `value_fn=`).

    `donate=True` (the default) lets XLA write the new params and state into the old ones' memory:
    the arrays passed in are deleted, so use the returned ones. `tx` may be any optax-protocol
    transformation.

    >>> import jax.numpy as jnp, gradtx
    >>> step = gradtx.make_step(gradtx.sgd(0.1), lambda w, x: jnp.sum((w - x) ** 2))
    >>> w = jnp.zeros(3)
    >>> w, state, loss = step(w, gradtx.sgd(0.1).init(w), jnp.ones(3))
    >>> float(loss), w.tolist()
    (3.0, [0.2, 0.2, 0.2])
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"make_step: tx must be a gradient transformation (with init and update), got {tx!r}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"make_step: loss_fn must be callable or None, got {loss_fn!r}")
    donate_argnums = (0, 1) if donate else ()
    if loss_fn is None:
        return jax.jit(partial(_apply, tx), donate_argnums=donate_argnums)
    return jax.jit(partial(_train, tx, loss_fn, has_aux), donate_argnums=donate_argnums)
