"""Loss-spike rollback: go back to the last good params and optimizer state when the loss spikes.

    good    = loss is finite and (no average yet, or loss <= factor x average, or params just restored)
    good:     keep (params, inner state);  average <- the running mean of the good losses;
              u = inner(g)
    not good: u = last good params - params;  inner state <- the one kept with them;  rollbacks + 1
    after max_consecutive_rollbacks rollbacks without a good step between them (a step from the
    restored params does not count as one), the next step is taken whatever its loss and the
    average restarts: a run whose loss has moved for good does not roll back forever

The loss arrives as a keyword argument of `update`: `tx.update(grads, state, params, loss=loss)`,
the loss at `params` (where `grads` were taken). A spike shows in the loss of the params that the
previous steps produced; going back to the last params whose loss was good, with the inner state
they were stepped from, undoes those steps, and the next batch is tried from there (the large-model
practice of skipping the batches around a spike, in one wrapper).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Params, next_count, zero_count
from gradtx.checks import check, require_params
from gradtx.combine import check_members, update_one, wrapper

__all__ = ["RollbackState", "rollback"]


class RollbackState(NamedTuple):
    """inner_state; good_params: the last params whose loss was good; good_inner_state: the inner
    state those params were stepped from; loss_average: the running mean of the good losses (the
    debiased EMA, 0 before the first); num_losses: good losses in that average (int32);
    consecutive: rollbacks since the last good step from params not just restored (int32);
    rollbacks: rollbacks in all (int32); rolled_back: whether the last update rolled back (bool)."""

    inner_state: Any
    good_params: Params
    good_inner_state: Any
    loss_average: jax.Array
    num_losses: Count
    consecutive: Count
    rollbacks: Count
    rolled_back: jax.Array


def _loss_dtype(params: Params) -> np.dtype:
    """The widest compute dtype of the params' float leaves, real (float32 for none): a float64 run
    keeps its loss average in float64, a bfloat16 one in float32."""
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _init_rollback(hp: Hyperparams, params: Params) -> RollbackState:
    inner_state = hp.args[0].init(params)
    return RollbackState(
        inner_state=inner_state,
        good_params=jax.tree.map(jnp.asarray, params),
        good_inner_state=inner_state,
        loss_average=jnp.zeros([], _loss_dtype(params)),
        num_losses=zero_count(),
        consecutive=zero_count(),
        rollbacks=zero_count(),
        rolled_back=jnp.asarray(False),
    )


def _update_rollback(hp: Hyperparams, g, state: RollbackState, params=None, **extra_args):
    params = require_params("rollback", params)
    if "loss" not in extra_args:
        raise TypeError(
            "rollback: update needs the loss at params, as a keyword argument:"
            " tx.update(grads, state, params, loss=loss)"
        )
    loss = jnp.asarray(extra_args["loss"])
    if loss.shape != ():
        raise ValueError(f"rollback: loss must be a scalar, got shape {loss.shape}")
    loss = loss.astype(state.loss_average.dtype)
    n, average, restored = state.num_losses, state.loss_average, state.rolled_back
    # A spike is judged against the losses before it, never itself; A + (factor - 1) |A| is factor A
    # for A >= 0 and keeps the test meaningful for a negative loss (a log-likelihood). The params
    # just restored are the last good ones: only a non-finite loss stops a step from them.
    spike = (n > 0) & (loss > average + (hp.factor - 1) * jnp.abs(average))
    good = jnp.isfinite(loss) & (restored | ~spike)
    give_up = ~good & (state.consecutive >= hp.max_consecutive_rollbacks)  # accept it, and start over
    accept = good | give_up

    def step() -> tuple[Any, Any]:
        return update_one(hp.args[0], g, state.inner_state, params, extra_args)

    def back() -> tuple[Any, Any]:
        return tree.sub(state.good_params, params), state.good_inner_state  # u = good params - params

    u, inner_state = jax.lax.cond(accept, step, back)
    # The average of the good losses: A_n = A_{n-1} + (loss - A_{n-1}) (1 - d) / (1 - d^n), the
    # debiased EMA with decay d (A_1 = the first loss). Giving up restarts it from this loss; a
    # non-finite loss taken on giving up starts no average.
    n_new = jnp.where(give_up, jnp.ones_like(n), jnp.where(good, next_count(n), n))
    d = jnp.asarray(hp.decay, loss.dtype)
    weight = (1 - d) / (1 - d ** jnp.maximum(n_new, 1).astype(loss.dtype))
    average = jnp.where(give_up, loss, jnp.where(good, average + (loss - average) * weight, average))
    finite = jnp.isfinite(average)
    # consecutive: rollbacks since the last good step taken from params that were not just restored.
    consecutive = jnp.where(
        accept, jnp.where(good & restored, state.consecutive, zero_count()), next_count(state.consecutive)
    )
    return u, RollbackState(
        inner_state=inner_state,
        good_params=jax.tree.map(lambda p, q: jnp.where(accept, p, q), params, state.good_params),
        good_inner_state=jax.tree.map(lambda a, b: jnp.where(accept, a, b), state.inner_state, state.good_inner_state),
        loss_average=jnp.where(finite, average, jnp.zeros_like(average)),
        num_losses=jnp.where(finite, n_new, zero_count()),
        consecutive=consecutive,
        rollbacks=jnp.where(accept, state.rollbacks, next_count(state.rollbacks)),
        rolled_back=~accept,
    )


def rollback(
    inner: GradientTransformation,
    factor: float = 4.0,
    decay: float = 0.9,
    max_consecutive_rollbacks: int = 5,
) -> GradientTransformation:
    """Restores the last good params and inner state when the loss is non-finite or spikes.

        good = isfinite(loss) and (n = 0 or loss <= factor A or restored)   (A: mean of n good losses)
        u    = inner(g)                   if good (params and inner state kept as the good ones)
        u    = P_good - params            otherwise (inner state <- the one kept with P_good)
        A_n  = A_{n-1} + (loss - A_{n-1}) (1 - decay) / (1 - decay^n)

    `restored`: the params are the ones the last update went back to; a step from them is taken
    (unless the loss is non-finite) and the next loss judged as usual, so a step that spikes every
    time it is tried counts one more rollback per try.

    Pass the loss at `params` to every update: `tx.update(grads, state, params, loss=loss)` (a
    TypeError names the keyword when it is missing); `update` needs params. After
    `max_consecutive_rollbacks` rollbacks with no good step between them (a step from restored
    params is not one) the next step is taken whatever its loss, and
    the average restarts from it (a non-finite loss starts no average). For a negative average the
    test reads loss <= A + (factor - 1) |A|. `apply_updates(params, u)`
    lands on the kept params up to one rounding per coordinate (u is their difference). The state
    `RollbackState` holds the counters to log: `rollbacks` (in all), `consecutive`, `rolled_back`,
    `loss_average`, `num_losses`; and keeps one copy of the params and one of the inner state (adam inside: 5 x the
    params' bytes in all). `factor` must stand above the batch-to-batch noise of the loss: a
    minibatch loss near 0 varies by several times its average (notebooks/12_tools.ipynb shows 2
    rolling back good steps), a language model's loss by a few percent. Not in optax.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.rollback(gradtx.sgd(0.1), factor=2.0)
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> u, state = tx.update({"w": jnp.ones(2)}, state, params, loss=1.0)     # good: a step
    >>> u2, state = tx.update({"w": jnp.ones(2)}, state, params, loss=jnp.inf)  # not: back
    >>> int(state.rollbacks), float(state.loss_average)
    (1, 1.0)
    """
    check_members("rollback", (inner,))
    check(
        "rollback",
        factor=(factor, "[1, inf)"),
        decay=(decay, "[0, 1)"),
        max_consecutive_rollbacks=(max_consecutive_rollbacks, "[0, inf)"),
    )
    if isinstance(max_consecutive_rollbacks, float):
        raise TypeError(f"rollback: max_consecutive_rollbacks must be an integer, got {max_consecutive_rollbacks!r}")
    return wrapper(
        "rollback", _init_rollback, _update_rollback, inner,
        factor=factor, decay=decay, max_consecutive_rollbacks=max_consecutive_rollbacks,
    )  # fmt: skip
