"""SAM: sharpness-aware minimization, an ascent to the worst nearby point, then a descent step from the
point it left with the gradient taken there (Foret et al., 2021).

    sam(opt, adv, k)   k - 1 calls: u = -adv(g)                      (ascend: x <- x + rho g / ||g||)
                       the k-th:    u = x_sync - x + opt(g)           (back to x_sync, then opt's step
                                                                       with the gradient at the ascended x)

In the default (transparent) mode every call is one step of an ordinary loop, so SAM needs no
loop of its own: take the gradient at the current params and apply the update, k calls per SAM
step. In opaque mode one call does the whole SAM step, calling `grad_fn` for the ascent.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Params, apply_updates, zero_count
from gradtx.checks import POSITIVE_COUNT, ArgumentTypeError, check, check_flag, require_params
from gradtx.combine import check_members, update_one, wrapper


class SAMState(NamedTuple):
    """steps_since_sync: calls since the last outer step (int32); opt_state: the outer optimizer's
    state; adv_state: the adversarial optimizer's state; cache: the params at the last sync, x_sync
    (None in opaque mode)."""

    steps_since_sync: Count
    opt_state: Any
    adv_state: Any
    cache: Params | None


def _init_sam(hp: Hyperparams, params) -> SAMState:
    optimizer, adv_optimizer = hp.args
    return SAMState(
        steps_since_sync=zero_count(),
        opt_state=optimizer.init(params),
        adv_state=adv_optimizer.init(params),
        cache=None if hp.opaque_mode else jax.tree.map(jnp.copy, params),
    )


def _without_grad_fn(extra_args: dict) -> dict:
    return {k: v for k, v in extra_args.items() if k != "grad_fn"}


def _transparent(hp: Hyperparams, g, state: SAMState, params, extra_args: dict):
    optimizer, adv_optimizer = hp.args
    first = state.steps_since_sync == 0  # this call starts an ascent from x_sync = params
    last = state.steps_since_sync == hp.sync_period - 1  # this call is the outer step
    adv_u, adv_state = update_one(adv_optimizer, g, state.adv_state, params, extra_args)
    adv_u = tree.scale(-1, tree.compute_like(adv_u, g))  # u = -adv(g): ascend
    opt_u, opt_state = update_one(optimizer, g, state.opt_state, state.cache, extra_args)
    # u = x_sync - x + opt(g): back to the synced params, then the outer step from there
    opt_u = tree.add(tree.sub(tree.compute_like(state.cache, g), tree.compute_like(params, g)), opt_u)
    u = tree.cast_like(tree.where(last, opt_u, adv_u), g)
    restart = adv_optimizer.init(params) if hp.reset_state else state.adv_state
    return u, SAMState(
        steps_since_sync=(state.steps_since_sync + 1) % hp.sync_period,
        opt_state=tree.where(last, opt_state, state.opt_state),
        adv_state=tree.where(last, restart, adv_state),
        cache=tree.where(first, params, state.cache),
    )


def _opaque(hp: Hyperparams, g, state: SAMState, params, extra_args: dict):
    optimizer, adv_optimizer = hp.args
    grad_fn, extra_args = extra_args.get("grad_fn"), _without_grad_fn(extra_args)
    if grad_fn is None:
        raise TypeError(
            "sam: with opaque_mode=True, update needs grad_fn, a function (params, i) -> gradients, as a keyword"
            " argument: tx.update(grads, state, params, grad_fn=jax.grad(lambda p, i: loss(p, batch)))"
        )
    adv_params, adv_g, adv_state = params, g, state.adv_state
    for i in range(hp.sync_period - 1):  # the ascent, inside this one call
        adv_u, adv_state = update_one(adv_optimizer, adv_g, adv_state, adv_params, extra_args)
        adv_params = apply_updates(adv_params, tree.scale(-1, adv_u))  # x <- x - adv(g)
        adv_g = grad_fn(adv_params, i)  # the gradient at the ascended point
        if hp.batch_axis_name is not None:
            adv_g = jax.lax.pmean(adv_g, axis_name=hp.batch_axis_name)
    if hp.reset_state:
        adv_state = adv_optimizer.init(params)
    u, opt_state = update_one(optimizer, adv_g, state.opt_state, params, extra_args)  # the step from params
    return u, SAMState(steps_since_sync=zero_count(), opt_state=opt_state, adv_state=adv_state, cache=None)


def _update_sam(hp: Hyperparams, g, state: SAMState, params=None, **extra_args):
    params = require_params("sam", params)
    if hp.opaque_mode:
        return _opaque(hp, g, state, params, extra_args)
    return _transparent(hp, g, state, params, _without_grad_fn(extra_args))


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    """SAM (Foret et al., 2021): minimize the loss at the worst point within a small ball.

        calls 1 .. k-1:  u = -adv_optimizer(g)             (with adv = chain(normalize(), sgd(rho)):
                                                            x <- x + rho g / ||g||, the ascent)
        call k:          u = x_sync - x + optimizer(g)     (g taken at the ascended x; x_sync the
                                                            params at the ascent's start)
        (k = sync_period; x_sync, the optimizer's state and the adversarial state are kept)

    A training loop stays as it is: each call takes the gradient at the current params, and the
    updates alternate between ascent and outer steps; sync_period = 2 is the paper's SAM (one
    ascent), and k calls make one SAM step (count loss evaluations and epochs accordingly):

        for batch in batches:
            grads = jax.grad(loss)(params, batch)      # at the ascended params on outer calls
            updates, state = tx.update(grads, state, params)
            params = gradtx.apply_updates(params, updates)

    `reset_state` restarts the adversarial optimizer at every sync. `opaque_mode=True` does the
    whole SAM step in one call (for models with side effects per step, such as batch-norm
    statistics): pass `grad_fn=lambda params, i: grads at params` to `update` (called k - 1 times
    with i = 0, 1, ...; a TypeError says so when it is missing); `batch_axis_name` then averages
    its gradients over that pmap/shard_map axis. `update` needs params. The state is
    `SAMState(steps_since_sync, opt_state, adv_state, cache)`, as optax.contrib.sam's, whose
    numbers this gives; keyword arguments of `update` reach both optimizers.

    >>> import gradtx
    >>> tx = gradtx.sam(gradtx.sgd(0.1), gradtx.chain(gradtx.normalize(), gradtx.sgd(0.05)))
    """
    check_members("sam", (optimizer, adv_optimizer))
    check("sam", sync_period=(sync_period, POSITIVE_COUNT))
    if batch_axis_name is not None and not isinstance(batch_axis_name, str):
        raise ArgumentTypeError(
            "sam", "batch_axis_name", f"must be an axis name (a str) or None, got {batch_axis_name!r}"
        )
    return wrapper(
        "sam", _init_sam, _update_sam, optimizer, adv_optimizer,
        sync_period=sync_period, reset_state=check_flag("sam", "reset_state", reset_state),
        opaque_mode=check_flag("sam", "opaque_mode", opaque_mode), batch_axis_name=batch_axis_name,
    )  # fmt: skip


__all__ = ["SAMState", "sam"]
