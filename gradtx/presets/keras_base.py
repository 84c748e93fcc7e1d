"""What every Keras preset shares: keras.optimizers.Optimizer's own arguments as gradtx blocks.

Keras's base optimizer wraps each optimizer's step in the same way, and so do the presets:

    g <- clip(g)                     one of clipnorm (each variable's norm), clipvalue, global_clipnorm
    p <- p - lr wd p                 weight_decay (decoupled), placed by each preset
    p <- the optimizer's step
    W^ <- a W^ + (1 - a) p           use_ema (a = ema_momentum; the first step copies p)
    p <- W^                          every ema_overwrite_frequency-th step

as `chain([clip_by_leaf_norm(clipnorm) | clip(clipvalue) | clip_by_global_norm(global_clipnorm)],
step..., [ema_params(ema_momentum, overwrite_frequency=ema_overwrite_frequency)])`. The average
is read with `gradtx.averaged_params(state, params)`: Keras's `_model_variables_moving_average`,
what its `finalize_variable_values` writes into the variables at the end of `fit`. None and 0 turn
a clip off, as in Keras; two clips on at once are refused, as Keras refuses two set (Keras also
refuses a second one set to 0). ema_overwrite_frequency None or 0: no overwrite, as Keras. Two
differences, both refusals: the EMA arguments are checked also while use_ema is False (Keras checks
them only with use_ema), and ema_momentum = 1, which Keras accepts (the average then stays the
first step's params), is refused as `ema_params` refuses a decay of 1. The average is kept in at
least float32 (Keras: in each variable's dtype); for float32 and float64 params the numbers agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import (
    COUNT,
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    UNIT,
    ArgumentTypeError,
    ArgumentValueError,
    check,
    check_flag,
)
from gradtx.combine import chain
from gradtx.transforms.averaging import ema_params
from gradtx.transforms.clipping import clip, clip_by_global_norm, clip_by_leaf_norm
from gradtx.transforms.momentum import trace
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale, scale_by_learning_rate


def _name(cls: str) -> str:
    return f"presets.keras.{cls}"


def _is_on(value: Any) -> bool:
    """Keras's test for its optional numbers: None and 0 are off."""
    return value is not None and not (isinstance(value, int | float) and value == 0)


class _Base(NamedTuple):
    """The base optimizer's arguments besides weight_decay, checked (`_base`)."""

    clipnorm: Any = None
    clipvalue: Any = None
    global_clipnorm: Any = None
    use_ema: bool = False
    ema_momentum: Any = 0.99
    ema_overwrite_frequency: Any = None


def _base(
    builder: str,
    clipnorm: Any = None,
    clipvalue: Any = None,
    global_clipnorm: Any = None,
    use_ema: Any = False,
    ema_momentum: Any = 0.99,
    ema_overwrite_frequency: Any = None,
) -> _Base:
    """Checks the base optimizer's arguments (also while use_ema is False, where Keras checks none)."""
    clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
    check(builder, **{k: (v, NONNEG + OR_NONE) for k, v in clips.items()})
    on = [k for k, v in clips.items() if _is_on(v)]
    if len(on) > 1:
        raise ArgumentValueError(
            builder, None, f"set one of clipnorm, clipvalue and global_clipnorm, not {' and '.join(on)} (as Keras)"
        )
    use_ema = check_flag(builder, "use_ema", use_ema)
    # ema_momentum = 1 (Keras accepts it: the average stays the first step's params) is refused, as ema_params does.
    frequency = ema_overwrite_frequency
    check(builder, ema_momentum=(ema_momentum, UNIT), ema_overwrite_frequency=(frequency, COUNT + OR_NONE))
    return _Base(clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)


def _clipping(builder: str, base: _Base) -> list[GradientTransformation]:
    """Keras's `_clip_gradients`: the one clip that is on, first."""
    if _is_on(base.clipnorm):
        return [clip_by_leaf_norm(base.clipnorm)]
    if _is_on(base.global_clipnorm):
        return [clip_by_global_norm(base.global_clipnorm)]
    return [clip(base.clipvalue)] if _is_on(base.clipvalue) else []


def _averaging(base: _Base) -> list[GradientTransformation]:
    """use_ema: the average of the params after each step, last; ema_overwrite_frequency 0 or None: no overwrite."""
    if not base.use_ema:
        return []
    return [ema_params(base.ema_momentum, overwrite_frequency=base.ema_overwrite_frequency or None)]


def _around(builder: str, base: _Base, members: list[GradientTransformation]) -> GradientTransformation:
    """chain([clip], members..., [ema_params]): the base optimizer around a step."""
    return chain(*_clipping(builder, base), *members, *_averaging(base))


def _number_rate(builder: str, learning_rate: Any, why: str) -> None:
    if callable(learning_rate):
        raise ArgumentTypeError(
            builder, "learning_rate", f"must be a number when weight_decay is set ({why}), got {learning_rate!r}"
        )


def _chain(
    builder: str,
    precondition: list[GradientTransformation],
    learning_rate: ScalarOrSchedule,
    weight_decay: Any,
    base: _Base,
) -> GradientTransformation:
    """[clip] preconditioner... [add_decayed_weights(wd)] scale_by_learning_rate(lr) [ema]: p <- p - lr (u + wd p)."""
    check(builder, learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE))
    members = list(precondition)
    if _is_on(weight_decay):
        members.append(add_decayed_weights(weight_decay))
    return _around(builder, base, [*members, scale_by_learning_rate(learning_rate)])


def _momentum_chain(
    builder: str,
    precondition: list[GradientTransformation],
    learning_rate: ScalarOrSchedule,
    momentum: float,
    nesterov: bool,
    weight_decay: Any,
    base: _Base,
) -> GradientTransformation:
    """Keras's momentum m <- mu m - lr u, p <- p + m (nesterov: p <- p + mu m - lr u), decay p <- p - lr wd p:

    chain([clip], preconditioner..., scale_by_learning_rate(lr), trace(mu, nesterov)), or with a
    decay, which must not enter the momentum, chain(..., scale_by_learning_rate(lr, flip_sign=False),
    trace(mu, nesterov), add_decayed_weights(lr wd), scale(-1.0)); then [ema].
    """
    check(builder, learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE))
    if not _is_on(weight_decay):
        return _around(
            builder, base, [*precondition, scale_by_learning_rate(learning_rate), trace(momentum, nesterov=nesterov)]
        )
    _number_rate(builder, learning_rate, "the decay lr wd p bypasses the momentum, which holds lr-scaled steps")
    return _around(builder, base, [
        *precondition,
        scale_by_learning_rate(learning_rate, flip_sign=False),
        trace(momentum, nesterov=nesterov),
        add_decayed_weights(learning_rate * weight_decay),
        scale(-1.0),
    ])  # fmt: skip


__all__: list[str] = []  # helpers of the presets.keras modules; the presets are their public names
