"""keras.optimizers.ScheduleFreeAdamW as a gradtx chain (re-exported by `gradtx.presets.keras`).

Keras's schedule-free AdamW is `gradtx.schedule_free` around Adam's second moment with three
choices of its own, each a public block of the chain:

    lr_t  = lr min((t + 1) / W, 1)              (warmup_steps = W; t = updates already applied)
    c_t   = 1 / (t + 1)                         (a uniform average: weight_lr_power = 0)
    y    <- y - lr wd y  before the step        (Keras's decoupled decay, at y, outside z)

The decay moves y, from which x = (y - (1 - b1) z) / b1 is recovered, so it reaches the params as
-(1 - c_t) lr wd y = -lr wd y + lr wd y / (t + 1) after the schedule-free step: `scale(-1.0),
add_decayed_weights(lr wd), add_decayed_weights(inverse_time_decay(-lr wd, 1.0)), scale(-1.0)` (the
two decays between the flips: each carries the sign of the decay it stands for).
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import COUNT, LEARNING_RATE, NONNEG, OR_NONE, UNIT, arguments_of, check
from gradtx.combine import chain
from gradtx.presets.keras_base import _around, _base, _is_on, _name
from gradtx.schedules import constant_schedule, inverse_time_decay, linear_schedule, multiply_schedules
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.rmsprop import scale_by_rms
from gradtx.transforms.scaling import scale, scale_by_learning_rate
from gradtx.wrappers.schedule_free import schedule_free


def _warmed_up(learning_rate: Any, warmup_steps: int) -> ScalarOrSchedule:
    """lr_t = lr min((t + 1) / W, 1): a line from lr / W at t = 0 to lr at t = W - 1."""
    if warmup_steps <= 1:
        return learning_rate  # min((t + 1) / 1, 1) = 1
    if callable(learning_rate):
        return multiply_schedules([learning_rate, linear_schedule(1.0 / warmup_steps, 1.0, warmup_steps - 1)])
    return linear_schedule(learning_rate / warmup_steps, learning_rate, warmup_steps - 1)


def ScheduleFreeAdamW(
    learning_rate: ScalarOrSchedule = 0.0025,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    warmup_steps: int = 0,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.ScheduleFreeAdamW: schedule-free Adam with a uniform average.

        z <- z - lr_t g / (sqrt(v^) + eps),   v^ = v / (1 - b2^(t+1))     (v <- b2 v + (1 - b2) g^2)
        x <- (1 - c_t) x + c_t z,   y = (1 - b1) z + b1 x,   c_t = 1 / (t + 1)
        lr_t = lr min((t + 1) / W, 1)                                        (W = warmup_steps)

    `chain(schedule_free(chain(scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    scale_by_learning_rate(lr_t)), lr_t, b1, weight_lr_power=0.0))`, and with `weight_decay` Keras's
    y <- y - lr wd y before the step (lr without the warmup), which reaches the params as
    -(1 - c_t) lr wd y: `scale(-1.0), add_decayed_weights(lr wd),
    add_decayed_weights(inverse_time_decay(-lr wd, 1.0)), scale(-1.0)` after it. Against
    `gradtx.schedule_free_adamw` (optax's, the authors'): the average is uniform, not weighted by
    lr^2; the warmup starts at lr / W, not 0; the decay is not part of z's step. Evaluate at
    `gradtx.schedule_free_eval_params(state, params)` (Keras keeps x implicit too).

    >>> from gradtx.presets import keras
    >>> tx = keras.ScheduleFreeAdamW(warmup_steps=10)
    """
    name = _name("ScheduleFreeAdamW")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(
        name,
        learning_rate=(learning_rate, LEARNING_RATE), beta_1=(beta_1, "(0, 1]"), beta_2=(beta_2, UNIT),
        epsilon=(epsilon, NONNEG), warmup_steps=(warmup_steps, COUNT), weight_decay=(weight_decay, NONNEG + OR_NONE),
    )  # fmt: skip
    with arguments_of(name, {"b1": "beta_1", "decay": "beta_2", "eps": "epsilon"}):
        lr = _warmed_up(learning_rate, warmup_steps)
        adam = chain(scale_by_rms(beta_2, epsilon, eps_in_sqrt=False, bias_correction=True), scale_by_learning_rate(lr))
        members = [schedule_free(adam, lr, beta_1, weight_lr_power=0.0)]
        if _is_on(weight_decay):
            # u - (1 - c_t) lr wd y = u - lr wd y + lr wd y / (t + 1), in public blocks whose repr rebuilds them
            wd: Any = weight_decay
            rate: Any = learning_rate * wd if not callable(learning_rate) else None
            late: Any = inverse_time_decay(-rate, 1.0) if rate is not None else None
            if callable(learning_rate):
                rate = multiply_schedules([learning_rate, constant_schedule(wd)])
                late = multiply_schedules([learning_rate, inverse_time_decay(-wd, 1.0)])
            members += [scale(-1.0), add_decayed_weights(rate), add_decayed_weights(late), scale(-1.0)]
        return _around(name, base, members)


__all__ = ["ScheduleFreeAdamW"]
