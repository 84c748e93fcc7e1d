"""Averaging: a running average of the params themselves, kept in the state for evaluation (Polyak averaging).

    ema_params(a):        W^ <- a W^ + (1 - a) W              (the lecture's Polyak averaging; Keras's use_ema)
    swa_params():         W^ <- W^ + (W - W^) / (n + 1)        (the uniform average: SWA, Polyak & Juditsky)
    averaged_params(state, params)  ->  the params with each averaged leaf replaced by W^

W is the params *after* this update: W = params + u, with u the updates this stage receives. So the
stage goes LAST in a chain, after the learning rate, where u is the step `apply_updates` will add:

    tx = gradtx.chain(gradtx.adam(1e-3), gradtx.ema_params(0.999))

Placed earlier it would average params plus an unfinished update (a gradient, a preconditioned
direction): `gradtx.lint` warns about that. Inside `MultiSteps` it averages once per real step (put
it inside: outside, it would also average the mini-steps, whose updates are zero); inside `masked`
or `partition` it averages the leaves it is given; on packed params (`gradtx.pack`) the average is
packed too, and under sharding each average has its param's sharding. The updates pass through
unchanged (except at `ema_params`'s overwrite steps).

Names: optax's vocabulary has `ema` (an average of the updates), `incremental_update` (one EMA step
of a target network) and `contrib.schedule_free_eval_params(state, params)` (the params to evaluate,
read from a state). So `ema_params` is `ema` of the params, `swa_params` SWA's uniform average (as
torch.optim.swa_utils names it), and `averaged_params` a reader of the same kind as optax's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Params,
    ScalarOrSchedule,
    next_count,
    transformation,
    value_at,
    zero_count,
)
from gradtx.checks import COUNT, OR_NONE, POSITIVE_COUNT, SCHEDULE, UNIT, check, check_dtype, require_params
from gradtx.combine import MaskedNode


class AveragedParamsState(NamedTuple):
    """count: updates seen (int32); n_averaged: params averaged so far (int32, torch's name); average: W^."""

    count: Count
    n_averaged: Count
    average: Params


def _average_like(params: Params, accumulator_dtype: Any) -> Params:
    # At least float32 by default: a bfloat16 average with decay 0.999 would move by 0.1% of
    # W - W^ a step, below what bfloat16 resolves (0.4%), and never move at all.
    # A copy, never the params' own buffer: a step that donates params and state donates each once.
    if accumulator_dtype is None:
        return jax.tree.map(lambda p: jnp.array(p, dtype=tree.compute_dtype(jnp.result_type(p)), copy=True), params)
    like = tree.first_moment_like(params, accumulator_dtype)
    return jax.tree.map(lambda p, m: jnp.array(p, dtype=m.dtype, copy=True), params, like)


def _init_average(hp: Hyperparams, params) -> AveragedParamsState:
    average = _average_like(params, hp.accumulator_dtype)
    return AveragedParamsState(count=zero_count(), n_averaged=zero_count(), average=average)


def _is_none(x: Any) -> bool:
    return x is None


def _after(average: Params, params: Params, g: Any) -> Params:
    """W = params + u in the average's dtypes (a None update: W = params).

    For float32 and float64 params this is apply_updates' sum; for bfloat16 and float16 params it
    is that sum before it is rounded to the params' dtype (and never overflows it).
    """

    def add(m: Any, p: Any, u: Any) -> Any:
        if m is None:
            return None
        return p.astype(m.dtype) if u is None else p.astype(m.dtype) + u.astype(m.dtype)

    return jax.tree.map(add, average, params, g, is_leaf=_is_none)


def _update_ema_params(hp: Hyperparams, g, state: AveragedParamsState, params=None):
    w = _after(state.average, require_params(hp.builder, params), g)  # W = params + u
    k = state.count
    a = value_at(hp.decay, k)
    started = k >= hp.start_step
    ema = tree.ema(state.average, w, a)  # W^ <- a W^ + (1 - a) W
    average = tree.where(k <= hp.start_step, w, ema)  # W^ = W up to the first average
    if hp.overwrite_frequency is not None:
        overwrite = next_count(k) % hp.overwrite_frequency == 0  # Keras: after every F-th update, W <- W^

        def to_average(m: Any, u: Any, p: Any) -> Any:
            return u if u is None or m is None else jnp.where(overwrite, (m - p.astype(m.dtype)).astype(u.dtype), u)

        g = jax.tree.map(to_average, average, g, params, is_leaf=_is_none)  # u = W^ - params: params + u = W^
    n = jnp.where(started, next_count(state.n_averaged), state.n_averaged)
    return g, AveragedParamsState(count=next_count(k), n_averaged=n, average=average)


def ema_params(
    decay: ScalarOrSchedule = 0.999,
    start_step: int = 0,
    overwrite_frequency: int | None = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """An exponential moving average of the params, kept in the state: the lecture's Polyak averaging.

        W = params + u                      (the params after this update; u passes through)
        W^ = W                              for k <= S  (up to and with the first averaged update)
        W^ <- a W^ + (1 - a) W              for k > S
        every F-th update (F = overwrite_frequency):  u = W^ - params, so the params become W^

    The lecture's W^_T = a W^_(T-1) + (1 - a) W_T; a = `decay` in [0, 1), a number or a schedule
    (a_k at k = updates already applied), S = `start_step`. Read W^ with `averaged_params(state,
    params)`. Goes last in a chain (see the module docstring). The first averaged update copies W,
    as Keras's `use_ema=True` (its first step) and torch's `AveragedModel` (its first
    `update_parameters`) do; Keras's `ema_momentum` is a, its `ema_overwrite_frequency` is F, and
    `torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(a))` updated
    after every step from update S + 1 on is this for k >= S (before S, torch's average holds the
    params as they were copied; here W^ follows the params). W^ is kept in at least float32 (a
    bfloat16 EMA with a = 0.999 would never move; torch and Keras keep the params' dtype);
    `accumulator_dtype` sets it. Polyak & Juditsky (1992); Tarvainen & Valpola (2017) average so.

    >>> import gradtx
    >>> tx = gradtx.chain(gradtx.adam(1e-3), gradtx.ema_params(0.999))  # last, where it sees the step
    >>> tx.hyperparams.args[-1]
    ema_params(decay=0.999, start_step=0)
    """
    builder = "ema_params"
    check(
        builder, decay=(decay, UNIT + SCHEDULE), start_step=(start_step, COUNT),
        overwrite_frequency=(overwrite_frequency, POSITIVE_COUNT + OR_NONE),
    )  # fmt: skip
    dtype = check_dtype(builder, "accumulator_dtype", accumulator_dtype)
    return transformation(
        builder, _init_average, _update_ema_params,
        decay=decay, start_step=start_step, overwrite_frequency=overwrite_frequency, accumulator_dtype=dtype,
    )  # fmt: skip


def _update_swa_params(hp: Hyperparams, g, state: AveragedParamsState, params=None):
    w = _after(state.average, require_params(hp.builder, params), g)  # W = params + u
    k, n = state.count, state.n_averaged
    take = (k >= hp.start_step) & ((k - hp.start_step) % hp.every == 0)

    def average(m: jax.Array, x: jax.Array) -> jax.Array:
        m32, x32 = m.astype(tree.compute_dtype(m.dtype)), x.astype(tree.compute_dtype(m.dtype))
        new = m32 + (x32 - m32) / (n + 1).astype(m32.dtype)  # W^ + (W - W^) / (n + 1)
        return jnp.where(take, new, jnp.where(k < hp.start_step, x32, m32)).astype(m.dtype)  # W^ = W before the start

    averaged = jax.tree.map(average, state.average, w)
    return g, AveragedParamsState(count=next_count(k), n_averaged=jnp.where(take, next_count(n), n), average=averaged)


def swa_params(start_step: int = 0, every: int = 1, accumulator_dtype: Any = None) -> GradientTransformation:
    """The uniform average of the params from `start_step` on, kept in the state: stochastic weight averaging.

        W = params + u                      (the params after this update; u passes through)
        W^ = W                              for k < S  (no average yet)
        W^ <- W^ + (W - W^) / (n + 1);  n <- n + 1     for k >= S with (k - S) divisible by c

    so W^ is the mean of the n params averaged: after updates S + 1, S + 1 + c, ... (k = updates
    already applied, S = `start_step`, c = `every`). Read it with `averaged_params(state, params)`;
    goes last in a chain (see the module docstring). Polyak & Juditsky (1992) average every
    iterate; Izmailov et al. (2018), SWA, average once per epoch (c = steps per epoch) under a
    constant or cyclic rate (`gradtx.swa_schedule`, `gradtx.cyclic_schedule`).
    torch.optim.swa_utils.AveragedModel (its default, equal-weight average) with `update_parameters`
    called after those updates holds the same W^ from the first (before it, torch's average holds
    the params as copied; here W^ follows the params). W^ is kept in at least float32
    (`accumulator_dtype` sets it; torch keeps the params' dtype).

    >>> import gradtx
    >>> decay = gradtx.cosine_decay_schedule(0.1, 1000)
    >>> lr = gradtx.join_schedules([decay, gradtx.swa_schedule(float(decay(750)), 0.05)], [750])
    >>> tx = gradtx.chain(gradtx.sgd(lr, momentum=0.9), gradtx.swa_params(start_step=750, every=10))
    >>> tx.hyperparams.args[-1]
    swa_params(start_step=750, every=10)
    """
    builder = "swa_params"
    check(builder, start_step=(start_step, COUNT), every=(every, POSITIVE_COUNT))
    dtype = check_dtype(builder, "accumulator_dtype", accumulator_dtype)
    return transformation(
        builder, _init_average, _update_swa_params, start_step=start_step, every=every, accumulator_dtype=dtype
    )


# ---------------------------------------------------------------------------------------------------
# Reading the average


def _is_node(x: Any) -> bool:
    return isinstance(x, AveragedParamsState)


def _is_hole(x: Any) -> bool:
    return x is None or isinstance(x, MaskedNode)


def averaged_params(state: Any, params: Params | None = None) -> Params:
    """The params to evaluate and checkpoint: the average W^ where the state keeps one, the params elsewhere.

        averaged_params(state, params)[leaf] = W^[leaf]   where the state averages that leaf
                                             = params[leaf]  elsewhere (masked out, integer leaves)

    `state` is the whole optimizer state (a chain's, a `masked`'s, a `MultiSteps`' ...): the
    averaging states are found inside it, and where several average different leaves (one per
    `partition` label) each gives its own. With `params` the result has their structure and
    dtypes (W^ cast back); without, it is the average as stored (at least float32), which needs a
    single averaging state that averages every leaf. Like optax's
    `contrib.schedule_free_eval_params(state, params)`.

    >>> import jax.numpy as jnp, gradtx
    >>> params = {"w": jnp.zeros(2)}
    >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.ema_params(0.5))
    >>> state = tx.init(params)
    >>> for g in (-1.0, -1.0):  # W: 1, then 2; W^: 1 (the first copies), then 0.5 * 1 + 0.5 * 2
    ...     updates, state = tx.update({"w": jnp.full(2, g)}, state, params)
    ...     params = gradtx.apply_updates(params, updates)
    >>> [float(x) for x in gradtx.averaged_params(state, params)["w"]]
    [1.5, 1.5]
    """
    found = [s for s in jax.tree.leaves(state, is_leaf=_is_node) if _is_node(s)]
    if not found:
        raise ValueError(
            "averaged_params: the state holds no ema_params or swa_params state; put one last in the"
            " optimizer's chain: chain(optimizer, ema_params(0.999))"
        )
    if params is None:
        holes = [x for s in found for x in jax.tree.leaves(s.average, is_leaf=_is_hole) if isinstance(x, MaskedNode)]
        if len(found) > 1 or holes:
            raise ValueError(
                "averaged_params: the state averages only some leaves (masked, partitioned or several"
                " averaging states); pass the params, whose leaves fill the rest: averaged_params(state, params)"
            )
        return found[0].average
    out = params
    for s in found:
        out = jax.tree.map(_take, s.average, out, is_leaf=_is_hole)
    return out


def _take(average: Any, current: Any) -> Any:
    return current if _is_hole(average) else average.astype(jnp.result_type(current))


__all__ = ["AveragedParamsState", "ema_params", "swa_params", "averaged_params"]
