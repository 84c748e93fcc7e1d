"""Adaptive preconditioners: divide each coordinate by a running measure of its gradient's size.

This file shows the pattern every transformation follows:

1. a state NamedTuple with the paper's names (and optax's field names),
2. `_init_<name>(hp, params)` and `_update_<name>(hp, updates, state, params)`, one equation a line,
3. a public builder that validates its arguments with `check` and calls `transformation`.

Dtypes (one policy for all): `accumulator_dtype` (alias `mu_dtype`, optax's name) sets the dtype of
first moments (default: the params'); a complex param's first moment stays complex, of that
precision (`tree.first_moment_like`: float32 gives complex64, float64 complex128). Second moments
are real and at least float32 (`tree.second_moment_like`): an EMA with b2 near 1 stored in
bfloat16 would never decay, its change per step being below bfloat16's resolution. All arithmetic
runs in at least float32 (`gradtx.tree`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gradtx import tree
from gradtx.base import (
    SCHEDULE,
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    Updates,
    check,
    check_dtype,
    next_count,
    transformation,
    value_at,
    zero_count,
)

UNIT = "[0, 1)"  # decay rates: 1 would freeze the average, so it is excluded
NONNEG = "[0, inf)"


def first_moment_dtype(builder: str, mu_dtype: Any, accumulator_dtype: Any) -> Any:
    """Resolves optax's `mu_dtype` and gradtx's `accumulator_dtype`, which mean the same."""
    if mu_dtype is not None and accumulator_dtype is not None:
        raise TypeError(f"{builder}: pass accumulator_dtype or its alias mu_dtype, not both")
    return check_dtype(builder, "accumulator_dtype", accumulator_dtype if mu_dtype is None else mu_dtype)


def corrected_first_moment(hp: Hyperparams, mu: Updates, g: Updates, t: Count) -> Updates:
    """m^ = m / (1 - b1^t); with `hp.nesterov`, Dozat's (2016) look-ahead
    m^ = b1 m / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t). In g's compute dtype (at least float32):
    neither m's nor g's dtype rounds m^, so float16 gradients of 6e4 do not overflow in g / (1 - b1^t)."""
    m, g = tree.compute_like(mu, g), tree.compute_like(g, g)
    if hp.nesterov:
        m_next, g_hat = tree.bias_correction(m, hp.b1, next_count(t)), tree.bias_correction(g, hp.b1, t)
        return tree.lerp(m_next, g_hat, hp.b1, 1 - hp.b1)
    return tree.bias_correction(m, hp.b1, t)


# ---------------------------------------------------------------------------------------------------
# Adam


class ScaleByAdamState(NamedTuple):
    """count: updates applied (int32); mu: first moment m; nu: second moment v (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_adam(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_adam(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m_hat = corrected_first_moment(hp, mu, g, t)  # m^ = m / (1 - b1^t), or NAdam's look-ahead
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_hat, v_hat, hp.eps, hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam's preconditioner (Kingma & Ba, 2015): bias-corrected first moment over RMS.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    t counts updates from 1. `eps_root` > 0 keeps gradients through `update` finite where v = 0
    (meta-learning). `nesterov=True` gives NAdam (Dozat, 2016). Same as torch.optim.Adam with
    lr = 1 (torch puts eps outside the root too).

    >>> import gradtx
    >>> gradtx.scale_by_adam(b2=0.99)
    scale_by_adam(b1=0.9, b2=0.99, eps=1e-08, eps_root=0.0, nesterov=False)
    """
    check("scale_by_adam", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = first_moment_dtype("scale_by_adam", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adam", _init_adam, _update_adam,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype, nesterov=nesterov,
    )  # fmt: skip


def _divide_by_rms(hp: Hyperparams, g, second_moment):
    """g / sqrt(nu + eps) (eps_in_sqrt) or g / (sqrt(nu) + eps): the two placements courses teach."""
    if hp.eps_in_sqrt:
        return tree.div_sqrt(g, second_moment, eps_root=hp.eps)
    return tree.div_sqrt(g, second_moment, hp.eps)


def _check_rms(builder: str, decay: Any, eps: Any, initial_scale: Any, bias_correction: bool) -> None:
    check(builder, decay=(decay, UNIT + SCHEDULE), eps=(eps, NONNEG), initial_scale=(initial_scale, NONNEG))
    if bias_correction and callable(decay):
        raise TypeError(
            f"{builder}: bias_correction=True needs a constant decay (1 - decay^t undoes an average"
            " with a fixed decay), got a schedule. Pass a number, or bias_correction=False."
        )


# ---------------------------------------------------------------------------------------------------
# RMSProp


class ScaleByRmsState(NamedTuple):
    """count: updates applied (int32); nu: EMA of g^2 (real). optax's ScaleByRmsWithCountState."""

    count: Count
    nu: Updates


def _init_rms(hp: Hyperparams, params) -> ScaleByRmsState:
    return ScaleByRmsState(count=zero_count(), nu=tree.second_moment_like(params, hp.initial_scale))


def _update_rms(hp: Hyperparams, g, state: ScaleByRmsState, params=None):
    t = next_count(state.count)
    decay = value_at(hp.decay, state.count)
    nu = tree.ema(state.nu, tree.abs_sq(g), decay)  # nu <- decay nu + (1 - decay) g^2
    nu_hat = tree.bias_correction(nu, decay, t) if hp.bias_correction else nu  # nu^ = nu / (1 - decay^t)
    u = _divide_by_rms(hp, g, nu_hat)  # u = g / sqrt(nu^ + eps)  or  g / (sqrt(nu^) + eps)
    return tree.cast_like(u, g), ScaleByRmsState(count=t, nu=nu)


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp's preconditioner (Hinton, lecture 6.5): divide by the root of an EMA of g^2.

        nu <- decay nu + (1 - decay) g^2       (nu starts at initial_scale)
        nu^ = nu / (1 - decay^t)               (bias_correction=True; otherwise nu^ = nu)
        u  = g / sqrt(nu^ + eps)               (eps_in_sqrt=True: Goodfellow et al., Alg. 8.5)
        u  = g / (sqrt(nu^) + eps)             (eps_in_sqrt=False: the cs231n code, torch)

    t counts updates from 1. `decay` may be a schedule of k = the number of updates already applied,
    unless `bias_correction` is on (1 - decay^t assumes a constant decay). The state always holds
    the count: its fields are those of optax's `ScaleByRmsWithCountState`, whatever
    `bias_correction` is. torch.optim.RMSprop(alpha=decay, eps=eps) is this with
    `eps_in_sqrt=False`, followed by the learning rate. With `eps_in_sqrt=False` and
    `bias_correction=True` it is `scale_by_adam(b1=0, b2=decay)` without the first moment.

    >>> import gradtx
    >>> gradtx.scale_by_rms(0.99, bias_correction=True)
    scale_by_rms(decay=0.99, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=True)
    """
    _check_rms("scale_by_rms", decay, eps, initial_scale, bias_correction)
    return transformation(
        "scale_by_rms", _init_rms, _update_rms,
        decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Centered RMSProp


class ScaleByRStdDevState(NamedTuple):
    """count: updates applied (int32); mu: EMA of g; nu: EMA of g^2 (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_stddev(hp: Hyperparams, params) -> ScaleByRStdDevState:
    return ScaleByRStdDevState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params, hp.initial_scale),
    )


def _update_stddev(hp: Hyperparams, g, state: ScaleByRStdDevState, params=None):
    t = next_count(state.count)
    decay = value_at(hp.decay, state.count)
    mu = tree.ema(state.mu, g, decay)  # mu <- decay mu + (1 - decay) g
    nu = tree.ema(state.nu, tree.abs_sq(g), decay)  # nu <- decay nu + (1 - decay) g^2
    if hp.bias_correction:
        mu_hat = tree.bias_correction(mu, decay, t)  # mu^ = mu / (1 - decay^t)
        nu_hat = tree.bias_correction(nu, decay, t)  # nu^ = nu / (1 - decay^t)
    else:
        mu_hat, nu_hat = mu, nu
    var = tree.sub(nu_hat, tree.abs_sq(mu_hat))  # nu^ - |mu^|^2
    var = tree.maximum(var, tree.zeros_like(var))  # >= 0 in exact arithmetic; rounding can dip below
    u = _divide_by_rms(hp, g, var)  # u = g / sqrt(nu^ - |mu^|^2 + eps)  or  g / (sqrt(...) + eps)
    return tree.cast_like(u, g), ScaleByRStdDevState(count=t, mu=mu, nu=nu)


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Centered RMSProp's preconditioner (Graves, 2013): divide by a running standard deviation.

        mu <- decay mu + (1 - decay) g
        nu <- decay nu + (1 - decay) g^2       (nu starts at initial_scale)
        mu^, nu^ = mu / (1 - decay^t), nu / (1 - decay^t)   (bias_correction=True; else mu, nu)
        u  = g / sqrt(nu^ - mu^^2 + eps)       (eps_in_sqrt=True)
        u  = g / (sqrt(nu^ - mu^^2) + eps)     (eps_in_sqrt=False: torch's centered RMSprop)

    The variance nu^ - mu^^2 is clamped at 0: it is never negative in exact arithmetic, but rounding
    can make it so (with bias correction it is exactly 0 at t = 1), and optax then returns NaN.
    `decay` may be a schedule as in `scale_by_rms`; `accumulator_dtype` sets mu's dtype.
    torch.optim.RMSprop(alpha=decay, eps=eps, centered=True) is this with `eps_in_sqrt=False`,
    followed by the learning rate.

    >>> import gradtx
    >>> gradtx.scale_by_stddev(0.99)
    scale_by_stddev(decay=0.99, eps=1e-08, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False)
    """
    _check_rms("scale_by_stddev", decay, eps, initial_scale, bias_correction)
    dtype = check_dtype("scale_by_stddev", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_stddev", _init_stddev, _update_stddev,
        decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# AdaGrad


class ScaleByRssState(NamedTuple):
    """sum_of_squares: r, the sum of g^2 over all updates so far (real)."""

    sum_of_squares: Updates


def _init_rss(hp: Hyperparams, params) -> ScaleByRssState:
    return ScaleByRssState(sum_of_squares=tree.second_moment_like(params, hp.initial_accumulator_value))


def _update_rss(hp: Hyperparams, g, state: ScaleByRssState, params=None):
    r = tree.add(state.sum_of_squares, tree.abs_sq(g))  # r <- r + g^2
    eps, eps_root = (0.0, hp.eps) if hp.eps_in_sqrt else (hp.eps, 0.0)
    u = tree.safe_div_sqrt(g, r, eps, eps_root)  # u = g / sqrt(r + eps)  or  g / (sqrt(r) + eps); 0 if r = 0
    return tree.cast_like(u, g), ScaleByRssState(sum_of_squares=r)


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7, *, eps_in_sqrt: bool = True
) -> GradientTransformation:
    """AdaGrad's preconditioner (Duchi et al., 2011): divide by the root of the sum of all g^2.

        r <- r + g^2                           (r starts at initial_accumulator_value)
        u = g / sqrt(r + eps)                  (eps_in_sqrt=True: optax's form)
        u = g / (sqrt(r) + eps)                (eps_in_sqrt=False: Duchi et al., Goodfellow et al.
                                                Alg. 8.4, torch.optim.Adagrad)

    u = 0 where r = 0 (only possible with g = 0). The step size g / sqrt(r) shrinks toward zero as
    r grows: AdaGrad's known weakness. torch.optim.Adagrad(lr, eps=eps) is
    `scale_by_rss(0.0, eps, eps_in_sqrt=False)` followed by the learning rate; `eps_in_sqrt` is a
    gradtx extension.

    >>> import gradtx
    >>> gradtx.scale_by_rss(0.0, 1e-10, eps_in_sqrt=False)
    scale_by_rss(initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False)
    """
    check(
        "scale_by_rss",
        initial_accumulator_value=(initial_accumulator_value, NONNEG),
        eps=(eps, NONNEG),
    )
    return transformation(
        "scale_by_rss", _init_rss, _update_rss,
        initial_accumulator_value=initial_accumulator_value, eps=eps, eps_in_sqrt=eps_in_sqrt,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Adadelta


class ScaleByAdaDeltaState(NamedTuple):
    """e_g: s, the EMA of g^2; e_x: dx, the EMA of the squared updates (both real)."""

    e_g: Updates
    e_x: Updates


def _init_adadelta(hp: Hyperparams, params) -> ScaleByAdaDeltaState:
    return ScaleByAdaDeltaState(e_g=tree.second_moment_like(params), e_x=tree.second_moment_like(params))


def _update_adadelta(hp: Hyperparams, g, state: ScaleByAdaDeltaState, params=None):
    s = tree.ema(state.e_g, tree.abs_sq(g), hp.rho)  # s <- rho s + (1 - rho) g^2
    rms_dx = tree.sqrt(state.e_x, hp.eps)  # sqrt(dx + eps), with the previous dx
    u = tree.div_sqrt(tree.mul(g, rms_dx), s, eps_root=hp.eps)  # u = sqrt(dx + eps) / sqrt(s + eps) g
    dx = tree.ema(state.e_x, tree.abs_sq(u), hp.rho)  # dx <- rho dx + (1 - rho) u^2
    return tree.cast_like(u, g), ScaleByAdaDeltaState(e_g=s, e_x=dx)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's preconditioner (Zeiler, 2012): the ratio of two RMS, of past updates and of g.

        s  <- rho s + (1 - rho) g^2
        u   = sqrt(dx + eps) / sqrt(s + eps) * g
        dx <- rho dx + (1 - rho) u^2

    Zeiler calls it learning-rate free, but only partly: dx starts at 0, so the first step is
    sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g, and eps acts as a learning rate until dx grows.
    Same as torch.optim.Adadelta(lr=1, rho=rho, eps=eps) before its learning rate.

    >>> import gradtx
    >>> gradtx.scale_by_adadelta(rho=0.95)
    scale_by_adadelta(rho=0.95, eps=1e-06)
    """
    check("scale_by_adadelta", rho=(rho, UNIT), eps=(eps, NONNEG))
    return transformation("scale_by_adadelta", _init_adadelta, _update_adadelta, rho=rho, eps=eps)


# ---------------------------------------------------------------------------------------------------
# AMSGrad


class ScaleByAmsgradState(NamedTuple):
    """count: updates applied (int32); mu: m; nu: v (real); nu_max: the running max of v^ (real)."""

    count: Count
    mu: Updates
    nu: Updates
    nu_max: Updates


def _init_amsgrad(hp: Hyperparams, params) -> ScaleByAmsgradState:
    return ScaleByAmsgradState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
        nu_max=tree.second_moment_like(params),
    )


def _update_amsgrad(hp: Hyperparams, g, state: ScaleByAmsgradState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m = tree.compute_like(mu, g)  # as in Adam
    m_hat = tree.bias_correction(m, hp.b1, t) if hp.bias_correction_mu else m  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t) if hp.bias_correction_nu else nu  # v^ = v / (1 - b2^t)
    nu_max = tree.maximum(state.nu_max, v_hat)  # v_max <- max(v_max, v^)
    u = tree.div_sqrt(m_hat, nu_max, hp.eps, hp.eps_root)  # u = m^ / (sqrt(v_max + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByAmsgradState(count=t, mu=mu, nu=nu, nu_max=nu_max)


def scale_by_amsgrad(
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
    """AMSGrad's preconditioner (Reddi et al., 2018): Adam whose denominator never decreases.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)     (each switchable, as in optax)
        v_max <- max(v_max, v^)
        u  = m^ / (sqrt(v_max + eps_root) + eps)

    The paper corrects neither moment (`bias_correction_mu=False, bias_correction_nu=False`).
    torch.optim.Adam(amsgrad=True) keeps the max of the *raw* v and corrects it afterwards:
    u = m^ / (sqrt(max_s v_s / (1 - b2^t)) + eps). No setting here gives that for eps > 0: the max
    of v^_s = v_s / (1 - b2^s) weighs early steps more than torch's common factor 1 / (1 - b2^t),
    and torch adds eps after its correction. With eps = eps_root = 0, torch's update is
    `scale_by_amsgrad(eps=0, bias_correction_nu=False)` times sqrt(1 - b2^t) (the tests check it).

    >>> import gradtx
    >>> gradtx.scale_by_amsgrad(b2=0.99)
    scale_by_amsgrad(b1=0.9, b2=0.99, eps=1e-08, eps_root=0.0, ...)
    """
    check("scale_by_amsgrad", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = first_moment_dtype("scale_by_amsgrad", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_amsgrad", _init_amsgrad, _update_amsgrad,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype,
        bias_correction_mu=bias_correction_mu, bias_correction_nu=bias_correction_nu,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Adamax


def _init_adamax(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_adamax(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.update_infinity_moment(g, state.nu, hp.b2, hp.eps)  # nu <- max(b2 nu, |g| + eps)
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t), as in Adam
    u = tree.div(m_hat, nu)  # u = m^ / nu
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Adamax's preconditioner (Kingma & Ba, 2015, Sec. 7.1): Adam with an infinity norm for v.

        m  <- b1 m + (1 - b1) g
        nu <- max(b2 nu, |g| + eps)
        m^ = m / (1 - b1^t)
        u  = m^ / nu

    The paper has no eps; like optax and torch.optim.Adamax (which this matches exactly, with
    lr = 1), gradtx adds it inside the max, so nu > 0 from the first step. `accumulator_dtype`
    sets mu's dtype.

    >>> import gradtx
    >>> gradtx.scale_by_adamax()
    scale_by_adamax(b1=0.9, b2=0.999, eps=1e-08)
    """
    check("scale_by_adamax", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG))
    dtype = check_dtype("scale_by_adamax", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_adamax", _init_adamax, _update_adamax, b1=b1, b2=b2, eps=eps, accumulator_dtype=dtype
    )
