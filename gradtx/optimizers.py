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
    lamb      chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask), scale_by_trust_ratio(),
                    scale_by_learning_rate(learning_rate))
    lars      chain(add_decayed_weights(weight_decay, mask), masked(scale_by_trust_ratio(...), mask),
                    scale_by_learning_rate(learning_rate), trace(momentum, nesterov))
    adafactor chain(scale_by_factored_rms(...), clip_by_block_rms?, scale_by_learning_rate?,
                    scale_by_param_block_rms?, ema(momentum)?, add_decayed_weights?, scale(-1))
    lion      chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay, mask), scale_by_learning_rate)
    radam     chain(scale_by_radam(b1, b2, eps, eps_root, threshold), scale_by_learning_rate(learning_rate))
    adabelief chain(scale_by_belief(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))
    yogi      chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))
    novograd  chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay), scale_by_learning_rate)
    noisy_sgd chain(add_noise(eta, gamma, key), scale_by_learning_rate(learning_rate))
    sign_sgd  chain(scale_by_sign(), scale_by_learning_rate(learning_rate))
    signum    chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(learning_rate))
    rprop     chain(scale_by_rprop(learning_rate, eta_minus, eta_plus, ...), scale(-1))

`?` marks a member that is present only when asked for (momentum given, weight decay nonzero).
Names, arguments, order and defaults are optax's, so `import gradtx as optax` works. The learning
rate is a number >= 0 or a schedule of k = the number of updates already applied. Where an optimizer
matches torch.optim, its docstring says with which settings (tests/test_optimizers_torch.py checks it).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradtx.base import SCHEDULE, GradientTransformation, ScalarOrSchedule, check
from gradtx.combine import chain, masked
from gradtx.transforms.adam_variants import scale_by_belief, scale_by_novograd, scale_by_radam, scale_by_yogi
from gradtx.transforms.adaptive import (
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from gradtx.transforms.layerwise import (
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradtx.transforms.momentum import ema, trace
from gradtx.transforms.noise import add_noise
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale, scale_by_learning_rate, scale_by_sign
from gradtx.transforms.sign import scale_by_lion, scale_by_rprop

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


# ---------------------------------------------------------------------------------------------------
# Layerwise optimizers (gradtx/transforms/layerwise.py)


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """LAMB (You et al., 2019): Adam with decoupled weight decay and a layerwise trust ratio.

    `chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_trust_ratio(), scale_by_learning_rate(lr))`, the paper's Algorithm 2 with phi the
    identity: r = m^ / (sqrt(v^) + eps),  W <- W - eta ||W|| / ||r + lambda W|| (r + lambda W),
    one norm a leaf. `mask` selects the leaves that decay; `accumulator_dtype` sets m's dtype.
    `update` needs params.

    >>> import gradtx
    >>> gradtx.lamb(1e-3)
    chain(scale_by_adam(b1=0.9, b2=0.999, eps=1e-06, eps_root=0.0, nesterov=False),
          add_decayed_weights(weight_decay=0.0), scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("lamb", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, accumulator_dtype=accumulator_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: Any = True,
    momentum: float = 0.9,
    nesterov: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """LARS (You et al., 2017): SGD with momentum and a layerwise trust ratio.

    `chain(add_decayed_weights(weight_decay, weight_decay_mask), masked(scale_by_trust_ratio(
    trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask), scale_by_learning_rate(lr),
    trace(momentum, nesterov))`, as optax's:

        lambda = eta ||w|| / (||g + beta w|| + eps)       (eta = trust_coefficient, beta = weight_decay)
        v <- m v + gamma lambda (g + beta w);   w <- w - v  (gamma = learning_rate, m = momentum)

    The paper's Algorithm 1 divides by ||g|| + beta ||w|| (a bound on ||g + beta w||); the two agree
    when beta = 0. The masks select the leaves that decay and those that get a trust ratio (the
    others take plain SGD steps; the paper leaves out biases and batch-norm parameters).
    `accumulator_dtype` sets v's dtype. `update` needs params.

    >>> import gradtx
    >>> gradtx.lars(0.1)
    chain(masked(add_decayed_weights(weight_decay=0.0), mask=True),
          masked(scale_by_trust_ratio(min_norm=0.0, trust_coefficient=0.001, eps=0.0), mask=True),
          scale_by_learning_rate(learning_rate=0.1, flip_sign=True), trace(decay=0.9, nesterov=False))
    """
    check("lars", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        add_decayed_weights(weight_decay, mask=weight_decay_mask),
        masked(scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), mask=trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
    )


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern, 2018): a factored RMS preconditioner with a relative step size.

    `chain(scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
    clip_by_block_rms(clipping_threshold)?, scale_by_learning_rate(lr, flip_sign=False)?,
    scale_by_param_block_rms()?, ema(momentum, debias=False, accumulator_dtype=dtype_momentum)?,
    add_decayed_weights(weight_decay_rate, weight_decay_mask)?, scale(-1))`, as optax's: each `?`
    member is there unless its argument is None (or False). The paper's update is
    W <- W - rho_t max(eps2, rms(W)) U / max(1, rms(U) / d),  U = g / sqrt(v^), with
    rho_t = `learning_rate` (None: 1), eps2 = 1e-3 and d = `clipping_threshold`. The weight decay
    is added after the learning rate, so it is not scaled by it (optax's order).

    >>> import gradtx
    >>> gradtx.adafactor(1e-2)
    chain(scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0, min_dim_size_to_factor=128,
          epsilon=1e-30), clip_by_block_rms(threshold=1.0), scale_by_learning_rate(learning_rate=0.01, flip_sign=False),
          scale_by_param_block_rms(min_scale=0.001), scale(step_size=-1))
    """
    check("adafactor", learning_rate=(learning_rate, LEARNING_RATE))
    members = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        members.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        members.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        members.append(scale_by_param_block_rms())
    if momentum is not None:
        members.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        members.append(add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
    members.append(scale(-1))  # descend
    return chain(*members)


# ---------------------------------------------------------------------------------------------------
# The rest of the field: sign methods, Adam's descendants, gradient noise


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023): `chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`.

    See `scale_by_lion`. The decay is decoupled, as in AdamW: W <- W - eta (sign(c) + lambda W).
    Lion's steps are larger than Adam's (every coordinate moves by eta): take a learning rate 3-10x
    smaller and a weight decay 3-10x larger than AdamW's. `mask` selects the leaves that decay.

    >>> import gradtx
    >>> gradtx.lion(1e-4)
    chain(scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0), add_decayed_weights(weight_decay=0.001),
          scale_by_learning_rate(learning_rate=0.0001, flip_sign=True))
    """
    check("lion", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_lion(b1, b2, mu_dtype, accumulator_dtype=accumulator_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """RAdam (Liu et al., 2020): `chain(scale_by_radam(...), scale_by_learning_rate(lr))`.

    See `scale_by_radam`. torch.optim.RAdam(lr, betas=(b1, b2), eps=0) is `radam(lr, b1, b2, eps=0)`;
    for eps > 0 torch adds eps to sqrt(v) before its bias correction, gradtx (and optax) after.

    >>> import gradtx
    >>> gradtx.radam(1e-3)
    chain(scale_by_radam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, threshold=5.0, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("radam", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al., 2020): `chain(scale_by_belief(...), scale_by_learning_rate(lr))`.

    See `scale_by_belief` (the defaults are the authors' code's; the paper's experiments use eps = 1e-8).

    >>> import gradtx
    >>> gradtx.adabelief(1e-3)
    chain(scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adabelief", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Yogi (Zaheer et al., 2018): `chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(lr))`.

    See `scale_by_yogi` (m and v start at 1e-6, as in optax).

    >>> import gradtx
    >>> gradtx.yogi(1e-2)
    chain(scale_by_yogi(b1=0.9, b2=0.999, eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    check("yogi", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_yogi(b1, b2, eps, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad (Ginsburg et al., 2019): `chain(scale_by_novograd(...), scale_by_learning_rate(lr))`.

    See `scale_by_novograd`: the weight decay is the paper's, inside the momentum (a number; optax
    annotates a schedule but cannot run one). Update needs params when weight_decay > 0.

    >>> import gradtx
    >>> gradtx.novograd(1e-2)
    chain(scale_by_novograd(b1=0.9, b2=0.25, eps=1e-06, eps_root=0.0, weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    check("novograd", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay, accumulator_dtype=accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: Any = None,
    *,
    seed: Any = None,
) -> GradientTransformation:
    """SGD with annealed gradient noise (Neelakantan et al., 2015): `chain(add_noise, scale_by_learning_rate)`.

    W <- W - eta_t (g + N(0, sigma_t^2)), sigma_t^2 = eta / t^gamma. See `add_noise` for `key`
    (None: 0) and `seed` (its older name).

    >>> import gradtx
    >>> gradtx.noisy_sgd(0.01, key=1)
    chain(add_noise(eta=0.01, gamma=0.55, key=1), scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    check("noisy_sgd", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD (Bernstein et al., 2018): `chain(scale_by_sign(), scale_by_learning_rate(lr))`: W <- W - eta sign(g).

    >>> import gradtx
    >>> gradtx.sign_sgd(1e-3)
    chain(scale_by_sign(), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("sign_sgd", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


def signum(
    learning_rate: ScalarOrSchedule, beta: ScalarOrSchedule = 0.9, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum (Bernstein et al., 2018): signSGD of the momentum, W <- W - eta sign(m).

    `chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(lr))` with
    m <- beta m + (1 - beta) g (no bias correction: it would not change the sign).

    >>> import gradtx
    >>> gradtx.signum(1e-3)
    chain(ema(decay=0.9, debias=False), scale_by_sign(), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("signum", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop (Riedmiller & Braun, 1993): `chain(scale_by_rprop(...), scale(-1))`.

    See `scale_by_rprop`: `learning_rate` is the first step of every coordinate (a number), after
    which each step grows by eta_plus or shrinks by eta_minus. For full-batch training. Matches
    torch.optim.Rprop(lr, etas=(eta_minus, eta_plus), step_sizes=(min_step_size, max_step_size))
    when lr is within [min_step_size, max_step_size].

    >>> import gradtx
    >>> gradtx.rprop(1e-3)
    chain(scale_by_rprop(learning_rate=0.001, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-06, max_step_size=50.0),
          scale(step_size=-1.0))
    """
    check("rprop", learning_rate=(learning_rate, "[0, inf)"))
    return chain(scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size), scale(-1.0))


__all__ = [
    "adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "nadam", "rmsprop", "sgd",
    "lamb", "lars", "adafactor",
    "lion", "radam", "adabelief", "yogi", "novograd", "noisy_sgd", "sign_sgd", "signum", "rprop",
]  # fmt: skip
