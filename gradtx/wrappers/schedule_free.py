"""Schedule-free learning: no decaying schedule, an average of the iterates instead (Defazio et al., 2024,
"The Road Less Scheduled", arXiv:2405.15682).

    y_t     = (1 - b1) z_t + b1 x_t                    (the params: gradients are taken here)
    z_{t+1} = z_t + base(g(y_t))                       (the base optimizer's step, e.g. -lr g)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}      (x: the average to evaluate)
    c_{t+1} = w_{t+1} / (w_1 + ... + w_{t+1}),   w_t = t^r lr_max^weight_lr_power

The params are y; the state keeps z, and x is recomputed from them, x = (y - (1 - b1) z) / b1, so
the memory is that of the base optimizer plus one copy of the params. Evaluate, checkpoint and
export x: `schedule_free_eval_params(state, params)`.

    schedule_free(base, lr)      any base optimizer (without momentum: b1 replaces it)
    schedule_free_sgd(lr)        base = SGD (with optional L2 weight decay at y)
    schedule_free_adamw(lr)      base = Adam without first moment, decoupled weight decay at y
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    OptState,
    Params,
    ScalarOrSchedule,
    next_count,
    value_at,
)
from gradtx.checks import (
    COUNT,
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    UNIT,
    ArgumentTypeError,
    arguments_of,
    check,
    check_dtype,
    check_flag,
    is_zero,
    require_params,
)
from gradtx.combine import chain, check_members, update_one, wrapper
from gradtx.schedules import warmup_constant_schedule
from gradtx.transforms.momentum import sgd
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.rmsprop import scale_by_rms
from gradtx.transforms.scaling import scale_by_learning_rate

# b1 = 0 would divide by zero in x = (y - (1 - b1) z) / b1; b1 = 1 is primal averaging (y = x).
B1 = "(0, 1]"


class ScheduleFreeState(NamedTuple):
    """optax.contrib's fields: b1, the interpolation (for `schedule_free_eval_params`); weight_sum,
    the sum of the averaging weights w_1 + ... + w_t; step_count, 1 + the updates applied (int32,
    optax's: it starts at 1); max_lr, the largest learning rate seen; base_optimizer_state; z, the
    base optimizer's iterates (in `state_dtype`, by default the params'). The scalars are in the
    params' widest compute dtype (at least float32)."""

    b1: jax.Array
    weight_sum: jax.Array
    step_count: Count
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Params


def _scalar_dtype(params: Params) -> np.dtype:
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _init_schedule_free(hp: Hyperparams, params) -> ScheduleFreeState:
    dtype = _scalar_dtype(params)
    # z_0 = y_0 = x_0, in a buffer of its own (donating params and state to a jitted step stays valid);
    # a complex param's z stays complex, of state_dtype's precision (the first-moment dtype rule).
    z = tree.add(tree.first_moment_like(params, hp.state_dtype), params)
    return ScheduleFreeState(
        b1=jnp.asarray(hp.b1).astype(dtype),
        weight_sum=jnp.zeros([], dtype),
        step_count=jnp.ones([], jnp.int32),
        max_lr=jnp.zeros([], dtype),
        base_optimizer_state=hp.args[0].init(params),
        z=z,
    )


def _averaging_weight(hp: Hyperparams, state: ScheduleFreeState) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(c_{t+1}, weight_sum, max_lr) after this update: c = w / (w_1 + ... + w_{t+1})."""
    dtype = state.max_lr.dtype
    # The step's own learning rate: the schedule at the updates already applied, the count at which
    # the base optimizer reads it too. optax.contrib 0.2.8 reads it at step_count (one count ahead).
    count = state.step_count if hp.schedule_at_next_count else state.step_count - 1
    lr = jnp.asarray(value_at(hp.learning_rate, count)).astype(dtype)
    max_lr = jnp.maximum(state.max_lr, lr)  # lr_max <- max(lr_max, lr_t)
    w = max_lr ** jnp.asarray(hp.weight_lr_power).astype(dtype)  # w_t = lr_max^weight_lr_power
    if hp.r is not None:
        w = state.step_count.astype(dtype) ** jnp.asarray(hp.r).astype(dtype) * w  # w_t = t^r lr_max^power
    weight_sum = state.weight_sum + w
    empty = weight_sum == 0  # no weight yet (lr = 0 during a warmup from 0): x stays where it is
    c = jnp.where(empty, jnp.zeros([], dtype), w / jnp.where(empty, jnp.ones([], dtype), weight_sum))
    return c, weight_sum, max_lr


class _Step(NamedTuple):
    """One leaf's (update, new z), a node of its own type so that a params tuple is not taken for one."""

    u: Any
    z: Any


def _is_step(x: Any) -> bool:
    return isinstance(x, _Step)


def _step_leaf(b1: Any, c: jax.Array, g: Any, y: Any, z_old: Any, u_base: Any) -> _Step:
    if g is None:  # a frozen leaf: no update, z kept
        return _Step(None, z_old)
    dtype = tree.compute_dtype(jnp.result_type(y))
    z = (z_old.astype(dtype) + u_base.astype(dtype)).astype(z_old.dtype)  # z_{t+1} = z_t + base(g), in state_dtype
    dz = z.astype(dtype) - z_old.astype(dtype)  # the step z took, as stored
    b1, c = jnp.asarray(b1).astype(dtype), c.astype(dtype)
    # y_{t+1} - y_t with x_t = (y_t - (1 - b1) z_t) / b1 substituted: no division by b1, and exactly 0
    # where z did not move and y = z (zero gradients from the start), as the authors' in-place form.
    u = (1 - b1 + c * b1) * dz + c * (z_old.astype(dtype) - y.astype(dtype))  # u = (1 - b1 (1 - c)) dz + c (z_t - y_t)
    return _Step(u.astype(g.dtype), z)


def _update_schedule_free(hp: Hyperparams, g, state: ScheduleFreeState, params=None, **extra_args):
    params = require_params("schedule_free", params)
    c, weight_sum, max_lr = _averaging_weight(hp, state)
    u_base, base_state = update_one(hp.args[0], g, state.base_optimizer_state, params, extra_args)
    out = jax.tree.map(
        lambda g_, y, z, u: _step_leaf(hp.b1, c, g_, y, z, u), g, params, state.z, u_base,
        is_leaf=lambda x: x is None,
    )  # fmt: skip
    u = jax.tree.map(lambda o: o.u, out, is_leaf=_is_step)
    z = jax.tree.map(lambda o: o.z, out, is_leaf=_is_step)
    return u, ScheduleFreeState(
        b1=state.b1,
        weight_sum=weight_sum,
        step_count=next_count(state.step_count),
        max_lr=max_lr,
        base_optimizer_state=base_state,
        z=z,
    )


def _state_dtype(builder: str, state_dtype: Any, accumulator_dtype: Any) -> Any:
    if state_dtype is not None and accumulator_dtype is not None:
        raise ArgumentTypeError(builder, None, "pass state_dtype or its alias accumulator_dtype, not both")
    return check_dtype(builder, "state_dtype", state_dtype if accumulator_dtype is None else accumulator_dtype)


def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    r: float = 0.0,
    schedule_at_next_count: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free `base_optimizer` (Defazio et al., 2024, "The Road Less Scheduled"): its steps
    move z, the params are an interpolation y of z and the running average x of z.

        y_t     = (1 - b1) z_t + b1 x_t                 (the params; gradients are taken at y)
        z_{t+1} = z_t + base_optimizer(g(y_t))           (for SGD: z_t - lr g(y_t))
        lr_max  = max(lr_1, ..., lr_{t+1}),   w_{t+1} = (t + 1)^r lr_max^weight_lr_power
        c_{t+1} = w_{t+1} / (w_1 + ... + w_{t+1})
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
        u       = y_{t+1} - y_t,   y_{t+1} = (1 - b1) z_{t+1} + b1 x_{t+1}

    z_0 = x_0 = y_0 are the params at `init`. Only z is stored; x = (y - (1 - b1) z) / b1 is
    recomputed from the params, as the authors' and optax's memory-light form does, so `update`
    needs params and the updates must reach the params unchanged. Turn the base optimizer's
    momentum off (`adam(lr, b1=0.0)`, `sgd(lr)`): b1 here takes its place. `learning_rate` is the
    base optimizer's, to weigh the average (w_t above; with a warmup, the early iterates count
    less); give both the same number or schedule. b1 = 1 is primal averaging (y = x).

    Evaluate at x, not at the params: `schedule_free_eval_params(state, params)`. In a training
    loop:

        state = tx.init(params)
        for batch in batches:
            grads = jax.grad(loss)(params, batch)            # at y
            updates, state = tx.update(grads, state, params)
            params = gradtx.apply_updates(params, updates)
        eval_params = gradtx.schedule_free_eval_params(state, params)   # x: evaluate, export
        # keep `params` (y) and `state` (with z) to resume training

    The state is optax.contrib's `ScheduleFreeState`, with its values (step_count starts at 1).
    Where gradtx differs, and the switch that gives the other numbers:

    - a schedule's step-0 value weighs the first update: the averaging weight reads the schedule at
      the updates already applied, the count at which the base optimizer reads its own (and the
      authors' code). optax.contrib 0.2.8 reads it at step_count, one count ahead, so its first
      update weighs with lr(1) while its base optimizer steps with lr(0) (optax PR #1744).
      `schedule_at_next_count=True` gives optax's numbers; with a constant learning rate the two agree.
    - the update is formed with x substituted, u = (1 - b1 (1 - c)) (z_{t+1} - z_t) + c (z_t - y_t),
      the authors' in-place form: no division by b1, and exactly 0 for zero gradients from the
      start (optax forms x and y and subtracts; the two agree to rounding).
    - `r` > 0 is the authors' polynomial weighting (their `r`; optax has none).
    - `state_dtype` (alias `accumulator_dtype`) is z's dtype; the scalars are kept in the params'
      widest compute dtype (optax: their narrowest, so b1 = 0.9 is rounded in bfloat16).
    - inside `MultiSteps`, the inner update runs only at the k-th gradient, on the params the k
      microbatches saw, so MultiSteps(schedule_free(...), k) is schedule-free on the mean of k
      gradients (optax issue #1038: for bfloat16 params optax's update came back in float32, and
      MultiSteps' two branches differed in dtype; gradtx's update has the gradients' dtype and its
      state keeps its dtypes).

    References: Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, "The Road Less Scheduled",
    NeurIPS 2024 (arXiv:2405.15682); the authors' code, `schedulefree` (facebookresearch/schedule_free),
    whose AdamWScheduleFree and SGDScheduleFree tests/test_schedule_free.py holds these to.

    >>> import gradtx
    >>> gradtx.schedule_free(gradtx.sgd(1.0), 1.0)
    schedule_free(chain(scale_by_learning_rate(learning_rate=1.0, flip_sign=True)), learning_rate=1.0, b1=0.9,
                  weight_lr_power=2.0)
    """
    check_members("schedule_free", (base_optimizer,))
    check(
        "schedule_free",
        learning_rate=(learning_rate, LEARNING_RATE), b1=(b1, B1), weight_lr_power=(weight_lr_power, NONNEG),
        r=(r, NONNEG + OR_NONE),
    )  # fmt: skip
    # r and schedule_at_next_count are stored as None when off (0, False), so that the repr reads
    # as optax's call; None, as stored, means off.
    at_next = schedule_at_next_count is not None and check_flag(
        "schedule_free", "schedule_at_next_count", schedule_at_next_count
    )
    return wrapper(
        "schedule_free", _init_schedule_free, _update_schedule_free, base_optimizer,
        learning_rate=learning_rate, b1=b1, weight_lr_power=weight_lr_power,
        state_dtype=_state_dtype("schedule_free", state_dtype, accumulator_dtype),
        r=None if r is None or is_zero(r) else r,
        schedule_at_next_count=at_next or None,
    )  # fmt: skip


def _warmup(builder: str, learning_rate: ScalarOrSchedule, warmup_steps: int | None) -> ScalarOrSchedule:
    """optax's warmup: lr_k = lr k / W for k < W, from 0 (`warmup_constant_schedule(0, lr, W)`)."""
    check(builder, warmup_steps=(warmup_steps, COUNT + OR_NONE))
    if warmup_steps is None or is_zero(warmup_steps):
        return learning_rate
    if callable(learning_rate):
        raise ArgumentTypeError(
            builder, "warmup_steps", f"needs a number learning_rate (it is the warmup's peak), got {learning_rate!r}"
        )
    return warmup_constant_schedule(0.0, learning_rate, warmup_steps)  # type: ignore[arg-type]  # a number here


def schedule_free_sgd(
    learning_rate: float = 1.0,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: float | None = None,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    r: float = 0.0,
    schedule_at_next_count: bool = False,
) -> GradientTransformation:
    """Schedule-free SGD (Defazio et al., 2024): `schedule_free(sgd(lr), lr, b1)`, optax.contrib's.

        z_{t+1} = z_t - lr_t (g(y_t) + weight_decay y_t)
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},    y_{t+1} = (1 - b1) z_{t+1} + b1 x_{t+1}

    with c_{t+1} as in `schedule_free` (1 / (t + 1) for a constant learning rate). The weight
    decay is L2, evaluated at y (`add_decayed_weights` before SGD), as the authors' SGDScheduleFree
    (whose `momentum` is b1). Evaluate at `schedule_free_eval_params(state, params)`.
    The warmup is optax's, lr_k = lr k / W for k < W (k = updates already applied), so
    the first update has lr = 0 and moves nothing. The authors' code (schedulefree's
    warmup_steps) and Keras warm up as lr_k = lr (k + 1) / W; pass that schedule as the
    learning rate instead: `learning_rate=gradtx.linear_schedule(lr / W, lr, W - 1)`.

    >>> import gradtx
    >>> tx = gradtx.schedule_free_sgd(0.5)
    """
    check(
        "schedule_free_sgd",
        learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE),
    )  # fmt: skip
    with arguments_of("schedule_free_sgd"):
        lr = _warmup("schedule_free_sgd", learning_rate, warmup_steps)
        base = sgd(lr) if weight_decay is None else chain(add_decayed_weights(weight_decay), sgd(lr))
        return schedule_free(
            base, lr, b1=b1, weight_lr_power=weight_lr_power, state_dtype=state_dtype, r=r,
            schedule_at_next_count=schedule_at_next_count,
        )  # fmt: skip


def schedule_free_adamw(
    learning_rate: float = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    r: float = 0.0,
    schedule_at_next_count: bool = False,
) -> GradientTransformation:
    """Schedule-free AdamW (Defazio et al., 2024), optax.contrib's: `schedule_free` around Adam
    without its first moment (b1 takes its place), with decoupled weight decay at y.

        v <- b2 v + (1 - b2) g^2,   v^ = v / (1 - b2^t)     (g at y_t; t counts updates from 1)
        z_{t+1} = z_t - lr_t (g / (sqrt(v^) + eps) + weight_decay y_t)
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},    y_{t+1} = (1 - b1) z_{t+1} + b1 x_{t+1}

    The base optimizer is `chain(scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr))`. The same as the authors'
    AdamWScheduleFree (weight decay at y, the bias-corrected second moment, eps outside the root);
    their reference version's `decay_at_z=True` (decay at z) is not this. Keras's
    ScheduleFreeAdamW averages uniformly (weight_lr_power=0) and decays y before the step:
    `gradtx.presets.keras.ScheduleFreeAdamW`. Evaluate at `schedule_free_eval_params(state, params)`.
    The warmup is optax's, lr_k = lr k / W for k < W (k = updates already applied), so
    the first update has lr = 0 and moves nothing. The authors' code (schedulefree's
    warmup_steps) and Keras warm up as lr_k = lr (k + 1) / W; pass that schedule as the
    learning rate instead: `learning_rate=gradtx.linear_schedule(lr / W, lr, W - 1)`.

    >>> import gradtx
    >>> tx = gradtx.schedule_free_adamw(1e-3, weight_decay=1e-4)
    """
    check(
        "schedule_free_adamw",
        learning_rate=(learning_rate, LEARNING_RATE), b2=(b2, UNIT), eps=(eps, NONNEG),
        weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    with arguments_of("schedule_free_adamw", {"decay": "b2"}):
        lr = _warmup("schedule_free_adamw", learning_rate, warmup_steps)
        base = chain(
            scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
            add_decayed_weights(weight_decay),
            scale_by_learning_rate(lr),
        )
        return schedule_free(
            base, lr, b1=b1, weight_lr_power=weight_lr_power, state_dtype=state_dtype, r=r,
            schedule_at_next_count=schedule_at_next_count,
        )  # fmt: skip


def _is_schedule_free_state(x: Any) -> bool:
    return isinstance(x, ScheduleFreeState)


def schedule_free_eval_params(state: OptState, params: Params) -> Params:
    """The params to evaluate a schedule-free run at: the average x = (y - (1 - b1) z) / b1.

        x = (y - (1 - b1) z) / b1          (y: the params trained on; z: the state's)

    `state` is the state of an optimizer with one `schedule_free` in it (chain, MultiSteps,
    inject_hyperparams, ... states are searched) or that ScheduleFreeState itself; `params` are the
    current params y. The result has the params' dtypes. This is the authors' `optimizer.eval()`
    (their `.train()` is the params themselves). optax.contrib's takes the ScheduleFreeState alone.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.schedule_free_sgd(0.1)
    >>> params = {"w": jnp.ones(2, jnp.float32)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.ones(2, jnp.float32)}, state, params)
    >>> params = gradtx.apply_updates(params, updates)
    >>> gradtx.schedule_free_eval_params(state, params)["w"]
    Array([0.9, 0.9], dtype=float32)
    """
    found = [s for s in jax.tree.leaves(state, is_leaf=_is_schedule_free_state) if isinstance(s, ScheduleFreeState)]
    if len(found) != 1:
        raise ValueError(
            f"schedule_free_eval_params: the state holds {len(found)} schedule_free states, expected one. Pass"
            " the state of an optimizer with one gradtx.schedule_free (or schedule_free_sgd/adamw) in it."
        )
    s = found[0]

    def average(y: Any, z: Any) -> Any:
        if y is None or z is None or not tree.is_inexact(y):
            return y
        dtype = tree.compute_dtype(jnp.result_type(y))
        b1 = s.b1.astype(dtype)
        return ((y.astype(dtype) - (1 - b1) * z.astype(dtype)) / b1).astype(y.dtype)

    return jax.tree.map(average, params, s.z, is_leaf=lambda x: x is None)


__all__ = [
    "ScheduleFreeState", "schedule_free", "schedule_free_adamw", "schedule_free_eval_params", "schedule_free_sgd",
]  # fmt: skip
