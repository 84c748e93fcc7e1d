"""Keras 3's optimizers as gradtx chains: Keras's names, defaults and numbers.

Each builder is named as Keras's class and takes its constructor's arguments with Keras's names
and defaults: the optimizer's own (`beta_1`, `epsilon`, `rho`, ...), `learning_rate` (a number or
a gradtx schedule count -> value in place of a Keras LearningRateSchedule) and the base
optimizer's `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`,
`ema_momentum` and `ema_overwrite_frequency`. It returns a plain gradtx `chain`:

    keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.004, global_clipnorm=1.0)
    gradtx.presets.keras.AdamW(learning_rate=1e-3, weight_decay=0.004, global_clipnorm=1.0)

Keras's conventions in gradtx's blocks (the tests check each against Keras 3 with the JAX backend
in float64, 32 steps of a three-leaf model):

    epsilon            Kingma & Ba's eps-hat in Adam, AdamW and AMSGrad, added to sqrt(v) before the
                       bias correction (`eps_hat=True`); inside the root in RMSprop and Adagrad
                       (gradtx's and optax's default); outside the max in Adamax; default 1e-7
    weight_decay       decoupled, p <- p - lr wd p before the step, for every optimizer: before the
                       learning rate, or after the momentum where the momentum holds lr-scaled steps
    momentum (SGD,     m <- mu m - lr g on lr-scaled steps: trace after the learning rate
      RMSprop)
    clipnorm, clipvalue,   clip_by_leaf_norm (each variable's own norm), clip, clip_by_global_norm
      global_clipnorm      first (0 or None: off, as Keras; one at most)
    use_ema, ema_momentum, ema_params(ema_momentum, overwrite_frequency=ema_overwrite_frequency)
      ema_overwrite_frequency   last: W^ <- a W^ + (1 - a) p after each step (the first copies p),
                       p <- W^ after every F-th; read W^ with `gradtx.averaged_params(state, params)`,
                       Keras's `_model_variables_moving_average` (`finalize_variable_values`)

The base optimizer's part lives in gradtx/presets/keras_base.py. Not taken: `loss_scale_factor`,
`gradient_accumulation_steps` (use `gradtx.MultiSteps`) and `name`. `Adafactor`, `ScheduleFreeAdamW` and
`Muon` are defined in keras_adafactor.py, keras_schedule_free.py and keras_muon.py and re-exported here.
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import (
    LEARNING_RATE,
    MOMENTUM,
    NONNEG,
    OR_NONE,
    UNIT,
    arguments_of,
    check,
    check_flag,
    is_zero,
)
from gradtx.presets.keras_adafactor import Adafactor
from gradtx.presets.keras_base import _around, _base, _chain, _is_on, _momentum_chain, _name, _number_rate
from gradtx.presets.keras_muon import Muon, muon_labels  # noqa: F401  (a preset's repr names muon_labels)
from gradtx.presets.keras_schedule_free import ScheduleFreeAdamW
from gradtx.transforms.adadelta import scale_by_adadelta
from gradtx.transforms.adagrad import scale_by_rss
from gradtx.transforms.adam import scale_by_adam, scale_by_adamax, scale_by_amsgrad
from gradtx.transforms.ftrl import ftrl
from gradtx.transforms.layerwise import scale_by_trust_ratio
from gradtx.transforms.lion import scale_by_lion
from gradtx.transforms.nadam import scale_by_nadam
from gradtx.transforms.rmsprop import scale_by_rms, scale_by_stddev

_RENAMES = {"b1": "beta_1", "b2": "beta_2", "eps": "epsilon", "decay": "rho", "trace.decay": "momentum"}


def SGD(
    learning_rate: ScalarOrSchedule = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.SGD: momentum on lr-scaled steps, m <- mu m - lr g.

        m <- mu m - lr g;   p <- p + m       (nesterov: p <- p + mu m - lr g)
        p <- p - lr g                        (momentum = 0)

    `chain(scale_by_learning_rate(lr), trace(mu, nesterov))`, the same algorithm as gradtx.sgd and
    torch.optim.SGD for a constant learning rate; under a schedule the momentum keeps each step's
    own rate (`lint` reports it as momentum-lr).

    >>> from gradtx.presets import keras
    >>> keras.SGD(momentum=0.9)
    chain(scale_by_learning_rate(learning_rate=0.01, flip_sign=True), trace(decay=0.9, nesterov=False))
    """
    name = _name("SGD")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, momentum=(momentum, MOMENTUM))
    nesterov = check_flag(name, "nesterov", nesterov)
    with arguments_of(name, _RENAMES):
        if is_zero(momentum):
            return _chain(name, [], learning_rate, weight_decay, base)
        return _momentum_chain(name, [], learning_rate, momentum, nesterov, weight_decay, base)


def RMSprop(
    learning_rate: ScalarOrSchedule = 0.001,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.RMSprop: epsilon inside the root, momentum on lr-scaled steps.

        v <- rho v + (1 - rho) g^2;   d = lr g / sqrt(v + eps)     (centered: sqrt(v - gbar^2 + eps))
        m <- mu m + d;   p <- p - m                                (momentum = 0: p <- p - d)

    `chain(scale_by_rms(rho, epsilon), scale_by_learning_rate(lr), trace(momentum))`
    (`scale_by_stddev` when centered): gradtx.rmsprop's order and eps placement, with Keras's
    epsilon 1e-7 (torch: alpha 0.99, eps outside the root).

    >>> from gradtx.presets import keras
    >>> keras.RMSprop()
    chain(scale_by_rms(decay=0.9, eps=1e-07, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("RMSprop")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, rho=(rho, UNIT), momentum=(momentum, MOMENTUM), epsilon=(epsilon, NONNEG))
    with arguments_of(name, _RENAMES):
        if check_flag(name, "centered", centered):
            precondition = [scale_by_stddev(rho, epsilon)]
        else:
            precondition = [scale_by_rms(rho, epsilon)]
        if is_zero(momentum):
            return _chain(name, precondition, learning_rate, weight_decay, base)
        return _momentum_chain(name, precondition, learning_rate, momentum, False, weight_decay, base)


def _adam(name: str, beta_1: Any, beta_2: Any, epsilon: Any, amsgrad: Any) -> GradientTransformation:
    check(name, beta_1=(beta_1, UNIT), beta_2=(beta_2, UNIT), epsilon=(epsilon, NONNEG))
    if check_flag(name, "amsgrad", amsgrad):
        return scale_by_amsgrad(beta_1, beta_2, epsilon, max_then_correct=True, eps_hat=True)
    return scale_by_adam(beta_1, beta_2, epsilon, eps_hat=True)


def Adam(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Adam: epsilon is eps-hat, added to sqrt(v) before the bias correction.

        p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)    (v_max = max(v_max, v) for v: amsgrad)

    `chain(scale_by_adam(b1, b2, epsilon, eps_hat=True), scale_by_learning_rate(lr))`; for amsgrad
    `scale_by_amsgrad(..., max_then_correct=True, eps_hat=True)`. Against torch's and optax's
    u = m^ / (sqrt(v^) + eps): Keras's eps is larger by 1 / sqrt(1 - b2^t) (32x at t = 1) and 1e-7.

    >>> from gradtx.presets import keras
    >>> keras.Adam()
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-07, eps_root=0.0, nesterov=False, eps_hat=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Adam")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    with arguments_of(name, _RENAMES):
        precondition = _adam(name, beta_1, beta_2, epsilon, amsgrad)
        return _chain(name, [precondition], learning_rate, weight_decay, base)


def AdamW(
    learning_rate: ScalarOrSchedule = 0.001,
    weight_decay: float = 0.004,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.AdamW: `Adam` with weight_decay 0.004, p <- p - lr wd p before the step.

        p <- p - lr (sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) + wd p)

    `chain(scale_by_adam(b1, b2, epsilon, eps_hat=True), add_decayed_weights(wd),
    scale_by_learning_rate(lr))`. torch's AdamW decays 1e-2 by default, optax's 1e-4.

    >>> from gradtx.presets import keras
    >>> keras.AdamW()
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-07, eps_root=0.0, nesterov=False, eps_hat=True),
          add_decayed_weights(weight_decay=0.004), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("AdamW")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, weight_decay=(weight_decay, NONNEG))  # a number: Keras's AdamW refuses None
    with arguments_of(name, _RENAMES):
        precondition = _adam(name, beta_1, beta_2, epsilon, amsgrad)
        return _chain(name, [precondition], learning_rate, weight_decay, base)


def Nadam(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Nadam: Dozat's schedule mu_t = b1 (1 - 0.5 * 0.96^t) (torch's momentum_decay = 1).

        p <- p - lr ((1 - mu_t) g / (1 - pi_t) + mu_{t+1} m / (1 - pi_t mu_{t+1})) / (sqrt(v^) + eps)

    `chain(scale_by_nadam(b1, b2, epsilon, momentum_decay=1.0), scale_by_learning_rate(lr))`.
    Keras's mu_t rises to b1 within ~100 steps, torch's (0.96^(0.004 t)) over ~25,000.

    >>> from gradtx.presets import keras
    >>> keras.Nadam()
    chain(scale_by_nadam(b1=0.9, b2=0.999, eps=1e-07, momentum_decay=1.0, eps_root=0.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Nadam")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, beta_1=(beta_1, UNIT), beta_2=(beta_2, UNIT), epsilon=(epsilon, NONNEG))
    with arguments_of(name, _RENAMES):
        precondition = scale_by_nadam(beta_1, beta_2, epsilon, momentum_decay=1.0)
        return _chain(name, [precondition], learning_rate, weight_decay, base)


def Adamax(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Adamax: epsilon added to the infinity norm, outside its max.

        u <- max(b2 u, |g|);   p <- p - lr m / ((1 - b1^t) (u + eps))

    `chain(scale_by_adamax(b1, b2, epsilon, eps_outside_max=True), scale_by_learning_rate(lr))`
    (torch and optax: u <- max(b2 u, |g| + eps)).

    >>> from gradtx.presets import keras
    >>> keras.Adamax()
    chain(scale_by_adamax(b1=0.9, b2=0.999, eps=1e-07, eps_outside_max=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Adamax")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, beta_1=(beta_1, UNIT), beta_2=(beta_2, UNIT), epsilon=(epsilon, NONNEG))
    with arguments_of(name, _RENAMES):
        precondition = scale_by_adamax(beta_1, beta_2, epsilon, eps_outside_max=True)
        return _chain(name, [precondition], learning_rate, weight_decay, base)


def Adagrad(
    learning_rate: ScalarOrSchedule = 0.001,
    initial_accumulator_value: float = 0.1,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Adagrad: optax's form, s from 0.1, epsilon inside the root.

        s <- s + g^2;   p <- p - lr g / sqrt(s + eps)

    `chain(scale_by_rss(initial_accumulator_value, epsilon), scale_by_learning_rate(lr))`: the
    numbers of gradtx.adagrad and optax.adagrad (torch's: s from 0, eps 1e-10 outside the root).

    >>> from gradtx.presets import keras
    >>> keras.Adagrad()
    chain(scale_by_rss(initial_accumulator_value=0.1, eps=1e-07, eps_in_sqrt=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Adagrad")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, initial_accumulator_value=(initial_accumulator_value, NONNEG), epsilon=(epsilon, NONNEG))
    with arguments_of(name, _RENAMES):
        precondition = scale_by_rss(initial_accumulator_value, epsilon, eps_in_sqrt=True)
        return _chain(name, [precondition], learning_rate, weight_decay, base)


def Adadelta(
    learning_rate: ScalarOrSchedule = 0.001,
    rho: float = 0.95,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Adadelta: Zeiler's update times a learning rate of 1e-3 (torch: 1.0).

        s <- rho s + (1 - rho) g^2;  d = sqrt(x + eps) / sqrt(s + eps) g;  x <- rho x + (1 - rho) d^2
        p <- p - lr d

    `chain(scale_by_adadelta(rho, epsilon), scale_by_learning_rate(lr))`.

    >>> from gradtx.presets import keras
    >>> keras.Adadelta()
    chain(scale_by_adadelta(rho=0.95, eps=1e-07), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Adadelta")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, rho=(rho, UNIT), epsilon=(epsilon, NONNEG))
    with arguments_of(name, _RENAMES):
        return _chain(name, [scale_by_adadelta(rho, epsilon)], learning_rate, weight_decay, base)


def Lion(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.99,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Lion: the sign of b1 m + (1 - b1) g; no weight decay by default.

        p <- p - lr sign(b1 m + (1 - b1) g);   m <- b2 m + (1 - b2) g

    `chain(scale_by_lion(b1, b2), scale_by_learning_rate(lr))` (gradtx.lion and optax.lion decay
    1e-3 by default). As Keras, beta_1 must be in (0, 1].

    >>> from gradtx.presets import keras
    >>> keras.Lion()
    chain(scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Lion")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, beta_1=(beta_1, "(0, 1]"), beta_2=(beta_2, UNIT))
    with arguments_of(name, _RENAMES):
        return _chain(name, [scale_by_lion(beta_1, beta_2)], learning_rate, weight_decay, base)


def Lamb(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Lamb: Adam's step scaled by ||p|| / ||step|| per variable, decay before it.

        p <- p - lr wd p                                   (weight_decay: Keras decays first...)
        r = m^ / (sqrt(v^) + eps);   p <- p - lr ||p|| / ||r|| r    (... so ||p|| is the decayed norm)

    `chain(scale_by_adam(b1, b2, epsilon), scale_by_trust_ratio(trust_coefficient=c),
    add_decayed_weights(wd), scale_by_learning_rate(lr))` with c = |1 - lr wd| (1 without decay):
    the decayed weights' norm is c ||p||. So with a weight decay the learning rate must be a number.
    gradtx.lamb (optax's, the paper's) adds the decay to r before taking the ratio instead.

    >>> from gradtx.presets import keras
    >>> keras.Lamb()
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-07, eps_root=0.0, nesterov=False),
          scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Lamb")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, beta_1=(beta_1, UNIT), beta_2=(beta_2, UNIT), epsilon=(epsilon, NONNEG))
    check(name, learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE))
    coefficient = 1.0
    if _is_on(weight_decay):
        _number_rate(name, learning_rate, "the trust ratio reads the decayed weights, (1 - lr wd) p")
        coefficient = abs(1.0 - learning_rate * weight_decay)  # type: ignore[operator]
    with arguments_of(name, _RENAMES):
        precondition = [scale_by_adam(beta_1, beta_2, epsilon), scale_by_trust_ratio(trust_coefficient=coefficient)]
        return _chain(name, precondition, learning_rate, weight_decay, base)


def Ftrl(
    learning_rate: ScalarOrSchedule = 0.001,
    learning_rate_power: float = -0.5,
    initial_accumulator_value: float = 0.1,
    l1_regularization_strength: float = 0.0,
    l2_regularization_strength: float = 0.0,
    l2_shrinkage_regularization_strength: float = 0.0,
    beta: float = 0.0,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
) -> GradientTransformation:
    """keras.optimizers.Ftrl: FTRL-Proximal, the new weight a function of the accumulated z.

        n' = n + g^2;   W <- (1 - lr wd) W;   z <- z + g + 2 l2s W - (n'^(-p) - n^(-p)) / lr W
        W <- (clip(z, -l1, l1) - z) / (n'^(-p) / lr + 2 l2 + beta / lr)

    `chain([clip], ftrl(...))`: `gradtx.ftrl` holds the learning rate, and Keras's decoupled decay
    as `ftrl(weight_decay=wd)`, which decays the W that z reads (Keras decays the variable before
    the step, which then overwrites it). The learning rate must be positive (it divides).

    >>> from gradtx.presets import keras
    >>> keras.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01)
    chain(ftrl(learning_rate=0.1, learning_rate_power=-0.5, initial_accumulator_value=0.1,
               l1_regularization_strength=0.01, l2_regularization_strength=0.0,
               l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=0.0))
    """
    name = _name("Ftrl")
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(name, weight_decay=(weight_decay, NONNEG + OR_NONE))
    with arguments_of(name, _RENAMES):
        decay: float = weight_decay if weight_decay is not None and _is_on(weight_decay) else 0.0
        step = ftrl(
            learning_rate, learning_rate_power, initial_accumulator_value, l1_regularization_strength,
            l2_regularization_strength, l2_shrinkage_regularization_strength, beta, weight_decay=decay,
        )  # fmt: skip
        return _around(name, base, [step])


__all__ = [
    "SGD", "RMSprop", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Lamb", "Ftrl",
    "Adafactor", "ScheduleFreeAdamW", "Muon",
]  # fmt: skip
