"""Optimizers: each is a short `chain` of transformations; the math lives with the transformations.

    sgd       chain(trace(momentum, nesterov)?, scale_by_learning_rate(learning_rate))
    adagrad   chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))
    rmsprop   chain(scale_by_rms or scale_by_stddev (centered), scale_by_learning_rate, trace(momentum)?)
    adadelta  chain(add_decayed_weights(weight_decay)?, scale_by_adadelta(rho, eps), scale_by_learning_rate)
    adam      chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))
    adamw     chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask), scale_by_learning_rate)
    nadam     adam with nesterov=True (Dozat, 2016)
    adamax    chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))
    amsgrad   chain(scale_by_amsgrad(b1, b2, eps, eps_root, ...), scale_by_learning_rate(learning_rate))

`?` marks a member that is present only when asked for (momentum given, weight decay nonzero).
Names, arguments, order and defaults are optax's, so `import gradtx as optax` works. The learning
rate is a number >= 0 or a schedule of k = the number of updates already applied. Where an optimizer
matches torch.optim, its docstring says with which settings (tests/test_optimizers_torch.py checks it).
"""

from __future__ import annotations

from typing import Any

from gradtx.base import SCHEDULE, GradientTransformation, ScalarOrSchedule, check
from gradtx.combine import chain
from gradtx.transforms.adaptive import (
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from gradtx.transforms.momentum import trace
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

LEARNING_RATE = "[0, inf)" + SCHEDULE  # a negative rate would ascend the loss: use scale_by_learning_rate for that


def _is_zero(value: Any) -> bool:
    """True for a concrete number equal to 0 (not for a schedule or a tracer)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent: `chain(trace(momentum, nesterov), scale_by_learning_rate(lr))`.

    Without momentum (the default) the chain is `scale_by_learning_rate` alone: W <- W - eta g.
    With it, see `trace` (heavy ball, or Nesterov with `nesterov=True`). Matches
    torch.optim.SGD(lr, momentum, nesterov=nesterov) (dampening 0).

    >>> import gradtx
    >>> gradtx.sgd(0.1, momentum=0.9)
    chain(trace(decay=0.9, nesterov=False), scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("sgd", learning_rate=(learning_rate, LEARNING_RATE))
    if momentum is None:
        return chain(scale_by_learning_rate(learning_rate))
    return chain(
        trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """AdaGrad (Duchi et al., 2011): `chain(scale_by_rss(...), scale_by_learning_rate(lr))`.

    See `scale_by_rss`. optax's defaults put eps inside the root; the lecture form (Goodfellow
    et al., Alg. 8.4) and torch.optim.Adagrad(lr, eps=eps) put it outside: pass
    `initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False` (a gradtx extension) for torch's.

    >>> import gradtx
    >>> gradtx.adagrad(0.1)
    chain(scale_by_rss(initial_accumulator_value=0.1, eps=1e-07, eps_in_sqrt=True),
          scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("adagrad", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """RMSProp (Hinton, lecture 6.5): `chain(scale_by_rms(...), scale_by_learning_rate(lr), trace(momentum))`.

    `centered=True` uses `scale_by_stddev` (Graves, 2013) instead of `scale_by_rms`; the trace is
    there only when `momentum` is given (`nesterov=True`: Sutskever et al., 2013). The momentum
    accumulates steps already scaled by the learning rate, as torch does. Matches
    torch.optim.RMSprop(lr, alpha=decay, eps=eps, momentum=..., centered=...) with
    `eps_in_sqrt=False` (torch puts eps outside the root). `accumulator_dtype` sets the dtype of
    the first moments (the centered mean and the momentum trace).

    >>> import gradtx
    >>> gradtx.rmsprop(0.01, momentum=0.9)
    chain(scale_by_rms(decay=0.9, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True), trace(decay=0.9, nesterov=False))
    """
    check("rmsprop", learning_rate=(learning_rate, LEARNING_RATE))
    if centered:
        precondition = scale_by_stddev(
            decay, eps, initial_scale, eps_in_sqrt, bias_correction, accumulator_dtype=accumulator_dtype
        )
    else:
        precondition = scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    if momentum is None:
        return chain(precondition, scale_by_learning_rate(learning_rate))
    return chain(
        precondition,
        scale_by_learning_rate(learning_rate),
        trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
    )


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adadelta (Zeiler, 2012): `chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)`.

    See `scale_by_adadelta`. `learning_rate=None` means 1.0, the paper's (no learning rate), and
    gradtx still *descends*: optax's `adadelta()` with its default None drops the learning-rate
    block and with it the sign flip, so it ascends the loss. `add_decayed_weights` (coupled L2
    decay, before the preconditioner) is in the chain unless `weight_decay` is 0 and no mask is
    given, so that `update` then needs no params. Matches torch.optim.Adadelta(lr, rho, eps,
    weight_decay).

    >>> import gradtx
    >>> gradtx.adadelta()
    chain(scale_by_adadelta(rho=0.9, eps=1e-06), scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    check("adadelta", learning_rate=(learning_rate, LEARNING_RATE))
    learning_rate = 1.0 if learning_rate is None else learning_rate
    members = [scale_by_adadelta(rho=rho, eps=eps), scale_by_learning_rate(learning_rate)]
    if not (_is_zero(weight_decay) and weight_decay_mask is None):
        members.insert(0, add_decayed_weights(weight_decay, mask=weight_decay_mask))
    return chain(*members)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam (Kingma & Ba, 2015): `chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(lr))`.

    See `scale_by_adam`. Matches torch.optim.Adam(lr, betas=(b1, b2), eps=eps); `nesterov=True`
    is `nadam`.

    >>> import gradtx
    >>> gradtx.adam(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adam", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    `chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`:
    the decay is added after the preconditioner and before the learning rate, so
    W <- W - eta (u + lambda W), with u Adam's update. Matches torch.optim.AdamW(lr, betas, eps,
    weight_decay) (torch's default weight_decay is 1e-2, optax's and gradtx's 1e-4). `mask`
    selects the leaves that decay (see `add_decayed_weights`).

    >>> import gradtx
    >>> gradtx.adamw(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=False),
          add_decayed_weights(weight_decay=0.0001), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adamw", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NAdam (Dozat, 2016): `chain(scale_by_adam(..., nesterov=True), scale_by_learning_rate(lr))`.

    See `scale_by_adam`. torch.optim.NAdam differs: it also decays b1 over the steps
    (momentum_decay), which neither optax nor gradtx does.

    >>> import gradtx
    >>> gradtx.nadam(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, nesterov=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("nadam", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adamax (Kingma & Ba, 2015, Sec. 7.1): `chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(lr))`.

    See `scale_by_adamax`, and there how its eps differs from optax's and torch.optim.Adamax's
    (they agree when eps is negligible next to |g|).

    >>> import gradtx
    >>> gradtx.adamax(2e-3)
    chain(scale_by_adamax(b1=0.9, b2=0.999, eps=1e-08), scale_by_learning_rate(learning_rate=0.002, flip_sign=True))
    """
    check("adamax", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_adamax(b1, b2, eps, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AMSGrad (Reddi et al., 2018): `chain(scale_by_amsgrad(...), scale_by_learning_rate(lr))`.

    See `scale_by_amsgrad`, and there how it differs from torch.optim.Adam(amsgrad=True).

    >>> import gradtx
    >>> gradtx.amsgrad(1e-3)
    chain(scale_by_amsgrad(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, bias_correction_mu=True,
          bias_correction_nu=True), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("amsgrad", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_amsgrad(
            b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
            accumulator_dtype=accumulator_dtype,
        ),
        scale_by_learning_rate(learning_rate),
    )  # fmt: skip


__all__ = ["adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "nadam", "rmsprop", "sgd"]
