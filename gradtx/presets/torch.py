"""torch.optim's optimizers as gradtx chains: torch's names, defaults and numbers.

Each builder is named as torch's class and takes its constructor's arguments, less `params` (a
gradtx transformation is built before it sees params) and the switches that choose kernels, not
numbers (`foreach`, `fused`, `capturable`, `differentiable`). It returns a plain `chain` of gradtx
blocks, so `describe`, `lint`, `inject_hyperparams` and every contract of gradtx apply to it:

    torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=0.1, decoupled_weight_decay=True)
    gradtx.presets.torch.Adam(lr=3e-4, weight_decay=0.1, decoupled_weight_decay=True)

What each of torch's steps is in gradtx's blocks (the tests check every branch against torch.optim
2.13 in float64 at rtol 1e-10, 32 steps of a three-leaf model):

    maximize=True                 scale(-1.0) first: torch negates the gradient before anything else
    weight_decay (coupled L2)     add_decayed_weights(wd) before the preconditioner: g <- g + wd p
    decoupled weight decay        add_decayed_weights(wd) before the learning rate: p <- p - lr wd p
    momentum buffers              trace(momentum) before the learning rate (torch's buffers are not
                                  scaled by lr; gradtx.rmsprop's trace is, as optax's)
    lr                            scale_by_learning_rate(lr): a number, or a gradtx schedule
                                  count -> value in place of a torch LR scheduler

`state_from_torch` and `state_to_torch` (gradtx/presets/torch_state.py) move an optimizer's state
between torch and gradtx, so a run can be resumed on either side. torch's param groups with their
own hyperparameters are `gradtx.partition` with one preset per group. `Adafactor`, `LBFGS` and
`SparseAdam` are defined in gradtx/presets/torch_adafactor.py, torch_lbfgs.py and
torch_sparse_adam.py and re-exported here.
"""

from __future__ import annotations

from typing import Any

from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.checks import (
    LEARNING_RATE,
    MOMENTUM,
    NONNEG,
    SCHEDULE,
    UNIT,
    ArgumentTypeError,
    ArgumentValueError,
    arguments_of,
    check,
    check_flag,
    is_zero,
)
from gradtx.combine import chain
from gradtx.presets.torch_adafactor import Adafactor
from gradtx.presets.torch_lbfgs import LBFGS
from gradtx.presets.torch_sparse_adam import SparseAdam
from gradtx.presets.torch_state import state_from_torch, state_to_torch
from gradtx.schedules import constant_schedule, inverse_time_decay, join_schedules
from gradtx.transforms.adadelta import scale_by_adadelta
from gradtx.transforms.adagrad import scale_by_rss
from gradtx.transforms.adam import scale_by_adam, scale_by_adamax, scale_by_amsgrad
from gradtx.transforms.asgd import asgd
from gradtx.transforms.momentum import trace
from gradtx.transforms.nadam import scale_by_nadam
from gradtx.transforms.radam import scale_by_radam
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.rmsprop import scale_by_rms, scale_by_stddev
from gradtx.transforms.rprop import scale_by_rprop
from gradtx.transforms.scaling import scale, scale_by_learning_rate, scale_by_schedule

# A member's argument named as the preset names it, for errors raised while the chain is built.
_RENAMES = {"b1": "betas[0]", "b2": "betas[1]", "learning_rate": "lr", "decay": "momentum"}


def _name(cls: str) -> str:
    return f"presets.torch.{cls}"


def _pair(builder: str, name: str, value: Any, first: str, second: str) -> tuple[Any, Any]:
    """torch's two-number arguments (betas, etas, step_sizes), checked as a pair."""
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise ArgumentTypeError(builder, name, f"must be a pair ({first}, {second}), got {value!r}")
    return value[0], value[1]


def _betas(builder: str, betas: Any) -> tuple[Any, Any]:
    b1, b2 = _pair(builder, "betas", betas, "beta1", "beta2")
    check(builder, **{"betas[0]": (b1, UNIT), "betas[1]": (b2, UNIT)})
    return b1, b2


def _chain(
    builder: str,
    precondition: list[GradientTransformation],
    lr: ScalarOrSchedule,
    weight_decay: Any = 0,
    maximize: bool = False,
    decoupled: bool = False,
) -> GradientTransformation:
    """[scale(-1)] [L2: add_decayed_weights] preconditioner... [decoupled: add_decayed_weights] learning rate."""
    check(builder, lr=(lr, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + SCHEDULE))
    members = [scale(-1.0)] if check_flag(builder, "maximize", maximize) else []
    decay = [] if is_zero(weight_decay) else [add_decayed_weights(weight_decay)]
    members += ([] if decoupled else decay) + precondition + (decay if decoupled else [])
    return chain(*members, scale_by_learning_rate(lr))


def SGD(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: ScalarOrSchedule = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.SGD: heavy-ball or Nesterov momentum with dampening, and coupled weight decay.

        g <- g + wd p
        b <- g  (first step);   b <- mu b + (1 - dampening) g  (after)
        d = g + mu b  (nesterov),  d = b  (otherwise);     p <- p - lr d

    `chain(add_decayed_weights(wd), trace(mu, nesterov), scale_by_learning_rate(lr))`; dampening
    scales g by 1 - dampening from the second step on (`scale_by_schedule` before the trace: torch's
    first buffer is g itself), which `lint` counts as a second step size. As torch, nesterov needs
    momentum > 0 and dampening = 0. Without momentum the chain is the learning rate alone.

    >>> from gradtx.presets import torch as pt
    >>> pt.SGD(lr=0.1, momentum=0.9, nesterov=True)
    chain(trace(decay=0.9, nesterov=True), scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    name = _name("SGD")
    check(name, momentum=(momentum, MOMENTUM), dampening=(dampening, "[0, 1]"))
    if check_flag(name, "nesterov", nesterov) and (is_zero(momentum) or not is_zero(dampening)):
        raise ArgumentValueError(
            name, "nesterov", f"needs momentum > 0 and dampening = 0 (as torch), got {momentum=}, {dampening=}"
        )
    with arguments_of(name, _RENAMES):
        members = []
        if not is_zero(momentum):
            if not is_zero(dampening):  # torch's first buffer is g, later steps add (1 - dampening) g
                damped = join_schedules([constant_schedule(1.0), constant_schedule(1.0 - dampening)], [1])
                members.append(scale_by_schedule(damped))
            members.append(trace(decay=momentum, nesterov=nesterov))
        return _chain(name, members, lr, weight_decay, maximize)


def Adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    """torch.optim.Adam: eps added after the bias correction; AMSGrad keeps the max of the raw v.

        g <- g + wd p                     (coupled; decoupled_weight_decay: p <- p - lr wd p instead)
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   v_max <- max(v_max, v)  (amsgrad)
        p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)       (v_max for v with amsgrad)

    `chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))`, with
    `scale_by_amsgrad(..., max_then_correct=True)` for amsgrad (optax's amsgrad takes the max of
    the corrected v^ instead). Same defaults and numbers as gradtx.adam, which has no weight decay.

    >>> from gradtx.presets import torch as pt
    >>> pt.Adam()
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("Adam")
    b1, b2 = _betas(name, betas)
    check(name, eps=(eps, NONNEG))
    with arguments_of(name, _RENAMES):
        if check_flag(name, "amsgrad", amsgrad):
            precondition = scale_by_amsgrad(b1, b2, eps, max_then_correct=True)
        else:
            precondition = scale_by_adam(b1, b2, eps)
        decoupled = check_flag(name, "decoupled_weight_decay", decoupled_weight_decay)
        return _chain(name, [precondition], lr, weight_decay, maximize, decoupled)


def AdamW(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.AdamW: Adam with decoupled weight decay, p <- p - lr wd p (default wd 1e-2).

        p <- p - lr wd p
        p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)      (as `Adam`)

    `chain(scale_by_adam(b1, b2, eps), add_decayed_weights(wd), scale_by_learning_rate(lr))`: the
    decay is scaled by lr as torch's (gradtx.adamw too, with optax's default wd 1e-4).

    >>> from gradtx.presets import torch as pt
    >>> pt.AdamW(lr=1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
          add_decayed_weights(weight_decay=0.01), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("AdamW")
    b1, b2 = _betas(name, betas)
    check(name, eps=(eps, NONNEG))
    with arguments_of(name, _RENAMES):
        if check_flag(name, "amsgrad", amsgrad):
            precondition = scale_by_amsgrad(b1, b2, eps, max_then_correct=True)
        else:
            precondition = scale_by_adam(b1, b2, eps)
        return _chain(name, [precondition], lr, weight_decay, maximize, decoupled=True)


def NAdam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.NAdam: Dozat's momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay)).

        mu_t = b1 (1 - 0.5 * 0.96^(t psi)),   pi_t = mu_1 ... mu_t
        p <- p - lr ((1 - mu_t) g / (1 - pi_t) + mu_{t+1} m / (1 - pi_t mu_{t+1})) / (sqrt(v^) + eps)

    `chain(scale_by_nadam(b1, b2, eps, momentum_decay), scale_by_learning_rate(lr))`; see
    `gradtx.scale_by_nadam`. gradtx.nadam (optax's) has no schedule: a constant b1.

    >>> from gradtx.presets import torch as pt
    >>> pt.NAdam()
    chain(scale_by_nadam(b1=0.9, b2=0.999, eps=1e-08, momentum_decay=0.004, eps_root=0.0),
          scale_by_learning_rate(learning_rate=0.002, flip_sign=True))
    """
    name = _name("NAdam")
    b1, b2 = _betas(name, betas)
    check(name, eps=(eps, NONNEG), momentum_decay=(momentum_decay, NONNEG))
    decoupled = check_flag(name, "decoupled_weight_decay", decoupled_weight_decay)
    with arguments_of(name, _RENAMES):
        precondition = scale_by_nadam(b1, b2, eps, momentum_decay)
        return _chain(name, [precondition], lr, weight_decay, maximize, decoupled)


def RAdam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.RAdam: rectified Adam with eps added to sqrt(v) before the bias correction.

        p <- p - lr r_t m^ sqrt(1 - b2^t) / (sqrt(v) + eps)     if rho_t > 5
        p <- p - lr m^                                          otherwise (the first five steps)

    `chain(scale_by_radam(b1, b2, eps, eps_hat=True), scale_by_learning_rate(lr))`; see
    `gradtx.scale_by_radam` (optax's and gradtx.radam's eps is added after the correction).

    >>> from gradtx.presets import torch as pt
    >>> pt.RAdam(lr=1e-3)
    chain(scale_by_radam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, threshold=5.0, nesterov=False, eps_hat=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    name = _name("RAdam")
    b1, b2 = _betas(name, betas)
    check(name, eps=(eps, NONNEG))
    decoupled = check_flag(name, "decoupled_weight_decay", decoupled_weight_decay)
    with arguments_of(name, _RENAMES):
        precondition = scale_by_radam(b1, b2, eps, threshold=5.0, eps_hat=True)
        return _chain(name, [precondition], lr, weight_decay, maximize, decoupled)


def Adamax(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.Adamax: an infinity norm u <- max(b2 u, |g| + eps) in place of Adam's v.

        p <- p - lr (m / (1 - b1^t)) / u

    `chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(lr))` (gradtx's and optax's eps
    placement is torch's; Keras adds eps outside the max).

    >>> from gradtx.presets import torch as pt
    >>> pt.Adamax()
    chain(scale_by_adamax(b1=0.9, b2=0.999, eps=1e-08), scale_by_learning_rate(learning_rate=0.002, flip_sign=True))
    """
    name = _name("Adamax")
    b1, b2 = _betas(name, betas)
    check(name, eps=(eps, NONNEG))
    with arguments_of(name, _RENAMES):
        return _chain(name, [scale_by_adamax(b1, b2, eps)], lr, weight_decay, maximize)


def Adagrad(
    lr: ScalarOrSchedule = 1e-2,
    lr_decay: float = 0,
    weight_decay: ScalarOrSchedule = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.Adagrad: eps outside the root, the sum starting at 0, a 1/t learning-rate decay.

        s <- s + g^2                                       (s starts at initial_accumulator_value)
        p <- p - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)

    `chain(scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False),
    scale_by_learning_rate(lr))`, the rate `inverse_time_decay(lr, lr_decay)` when lr_decay > 0
    (then lr must be a number). optax's adagrad puts eps inside the root and starts s at 0.1.

    >>> from gradtx.presets import torch as pt
    >>> pt.Adagrad()
    chain(scale_by_rss(initial_accumulator_value=0, eps=1e-10, eps_in_sqrt=False),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    name = _name("Adagrad")
    check(name, lr_decay=(lr_decay, NONNEG), initial_accumulator_value=(initial_accumulator_value, NONNEG))
    check(name, eps=(eps, NONNEG), lr=(lr, LEARNING_RATE))
    rate: Any = lr
    if not is_zero(lr_decay):
        if callable(lr):
            raise ArgumentTypeError(
                name, "lr", f"must be a number when lr_decay > 0 (a schedule can hold the decay itself), got {lr!r}"
            )
        rate = inverse_time_decay(lr, lr_decay)  # type: ignore[arg-type]  # lr / (1 + k lr_decay), k = t - 1 updates applied
    with arguments_of(name, _RENAMES):
        precondition = scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=False)
        return _chain(name, [precondition], rate, weight_decay, maximize)


def Adadelta(
    lr: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.Adadelta: the ratio of the RMS of past steps to the RMS of gradients, times lr.

        s <- rho s + (1 - rho) g^2;  d = sqrt(x + eps) / sqrt(s + eps) g;  x <- rho x + (1 - rho) d^2
        p <- p - lr d

    `chain(scale_by_adadelta(rho, eps), scale_by_learning_rate(lr))` (gradtx.adadelta's numbers
    too; optax.adadelta() ascends, having no learning rate by default).

    >>> from gradtx.presets import torch as pt
    >>> pt.Adadelta()
    chain(scale_by_adadelta(rho=0.9, eps=1e-06), scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    name = _name("Adadelta")
    check(name, rho=(rho, UNIT), eps=(eps, NONNEG))
    with arguments_of(name, _RENAMES):
        return _chain(name, [scale_by_adadelta(rho, eps)], lr, weight_decay, maximize)


def RMSprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    momentum: float = 0,
    centered: bool = False,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.RMSprop: alpha = 0.99, eps outside the root, momentum on the unscaled steps.

        v <- alpha v + (1 - alpha) g^2,   a = sqrt(v) + eps     (centered: sqrt(v - gbar^2) + eps)
        b <- mu b + g / a,   p <- p - lr b                      (momentum; without it p <- p - lr g / a)

    `chain(scale_by_rms(alpha, eps, eps_in_sqrt=False), trace(momentum), scale_by_learning_rate(lr))`
    (`scale_by_stddev` when centered). The trace comes before the learning rate, as torch's buffer,
    so a learning-rate schedule acts at once; gradtx.rmsprop (optax's) traces the lr-scaled steps.
    optax's defaults are decay 0.9 and eps inside the root.

    >>> from gradtx.presets import torch as pt
    >>> pt.RMSprop(momentum=0.9)
    chain(scale_by_rms(decay=0.99, eps=1e-08, initial_scale=0.0, eps_in_sqrt=False, bias_correction=False),
          trace(decay=0.9, nesterov=False), scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    name = _name("RMSprop")
    check(name, alpha=(alpha, UNIT), eps=(eps, NONNEG), momentum=(momentum, MOMENTUM))
    with arguments_of(name, {**_RENAMES, "decay": "alpha", "trace.decay": "momentum"}):
        if check_flag(name, "centered", centered):
            members = [scale_by_stddev(alpha, eps, eps_in_sqrt=False)]
        else:
            members = [scale_by_rms(alpha, eps, eps_in_sqrt=False)]
        if not is_zero(momentum):
            members.append(trace(decay=momentum))
        return _chain(name, members, lr, weight_decay, maximize)


def Rprop(
    lr: float = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50),
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.Rprop (iRprop-): each coordinate's step grows by etas[1] while its gradient keeps
    its sign and shrinks by etas[0] when it flips, within step_sizes.

        s = sign(g_t) sign(g_{t-1})
        D <- min(eta_plus D, step_size_max)     if s > 0
        D <- max(eta_minus D, step_size_min)    if s < 0
        p <- p - D sign(g_t)                    (and g_t <- 0 where s < 0)

    `chain(scale_by_rprop(clip(lr, *step_sizes), etas[0], etas[1], *step_sizes), scale(-1.0))`: torch
    clips the first step size too. lr is the first step of every coordinate, a number.

    >>> from gradtx.presets import torch as pt
    >>> pt.Rprop()
    chain(scale_by_rprop(learning_rate=0.01, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-06, max_step_size=50),
          scale(step_size=-1.0))
    """
    name = _name("Rprop")
    eta_minus, eta_plus = _pair(name, "etas", etas, "etaminus", "etaplus")
    low, high = _pair(name, "step_sizes", step_sizes, "step_size_min", "step_size_max")
    check(name, lr=(lr, NONNEG), **{"etas[0]": (eta_minus, "(0, 1)"), "etas[1]": (eta_plus, "(1, inf)")})
    check(name, **{"step_sizes[0]": (low, NONNEG), "step_sizes[1]": (high, NONNEG)})
    numbers = all(isinstance(x, int | float) for x in (lr, low, high))
    if numbers and low > high:
        raise ArgumentValueError(name, "step_sizes", f"must have step_sizes[0] <= step_sizes[1], got {step_sizes!r}")
    with arguments_of(name, {"learning_rate": "lr", "eta_minus": "etas[0]", "eta_plus": "etas[1]"}):
        members = [scale(-1.0)] if check_flag(name, "maximize", maximize) else []
        first = min(max(lr, low), high) if numbers else lr  # torch clips the first step size too
        return chain(*members, scale_by_rprop(first, eta_minus, eta_plus, low, high), scale(-1.0))


def ASGD(
    lr: float = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0,
    maximize: bool = False,
) -> GradientTransformation:
    """torch.optim.ASGD: SGD with the step eta_k = lr / (1 + lambd lr k)^alpha and a running average ax.

        W <- W (1 - lambd eta_k) - eta_k (g + wd W);   ax <- ax + mu_k (W - ax),  mu_k = 1 / max(1, k - t0)

    `chain(asgd(lr, lambd, alpha, t0, weight_decay))` (`scale(-1.0)` first for maximize): the
    average is in the state, `gradtx.asgd_averaged_params(state)`, and `state_from_torch` /
    `state_to_torch` carry torch's ax, step, eta and mu. lr is a number (it shapes eta_k).

    >>> from gradtx.presets import torch as pt
    >>> pt.ASGD()
    chain(asgd(learning_rate=0.01, lambd=0.0001, alpha=0.75, t0=1000000.0, weight_decay=0))
    """
    name = _name("ASGD")
    with arguments_of(name, _RENAMES):
        members = [scale(-1.0)] if check_flag(name, "maximize", maximize) else []
        return chain(*members, asgd(lr, lambd, alpha, t0, weight_decay))


__all__ = [
    "SGD", "Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Rprop", "ASGD",
    "Adafactor", "LBFGS", "SparseAdam",
    "state_from_torch", "state_to_torch",
]  # fmt: skip

from gradtx.presets.torch_muon import Muon  # noqa: E402  (the matrix optimizers: torch_muon.py)

__all__ += ["Muon"]
