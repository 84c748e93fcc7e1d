"""Adam and its closest relatives: a bias-corrected first moment over the root of a second moment.

    scale_by_adam      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  u = m^ / (sqrt(v^) + eps)
    scale_by_amsgrad   as Adam, dividing by the running maximum of v^          (Reddi et al., 2018)
    scale_by_adamax    as Adam, with v <- max(b2 v, |g| + eps) and u = m^ / v   (Kingma & Ba, Sec. 7.1)

With `eps_hat=True`, eps is Kingma & Ba's eps-hat (end of Sec. 2), added to sqrt(v) before v's
bias correction, as Keras and torch's RAdam do:

    u = m^ / (sqrt(v^) + eps / sqrt(1 - b2^t))

With `where_nonzero=True`, m, v and u change only where g != 0 (torch's SparseAdam on a sparse
gradient's entries). The optimizers: `adam`, `nadam` (Nesterov look-ahead), `adamax`, `amsgrad`;
with decoupled weight decay (`adamw`, `nadamw`, `adamaxw`) in adamw.py.

This file is the house pattern every transformation follows:

1. a state NamedTuple with the paper's names (and optax's field names),
2. `_init_<name>(hp, params)` and `_update_<name>(hp, updates, state, params)`, one equation a line,
3. a public builder that validates its arguments with `check` and calls `transformation`,
4. the optimizer alias: a short `chain` of the family's transformation and the learning rate.

Dtypes (one policy for all): `accumulator_dtype` (alias `mu_dtype`, optax's name) sets the dtype of
first moments (default: the params'); a complex param's first moment stays complex, of that
precision (`tree.first_moment_like`: float32 gives complex64, float64 complex128). Second moments
are real and at least float32 (`tree.second_moment_like`): an EMA with b2 near 1 stored in
bfloat16 would never decay, its change per step being below bfloat16's resolution. All arithmetic
runs in at least float32 (`gradtx.tree`).
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
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    UNIT,
    arguments_of,
    check,
    check_dtype,
    check_flag,
    first_moment_dtype,
)
from gradtx.combine import chain
from gradtx.transforms.scaling import scale_by_learning_rate


def corrected_first_moment(hp: Hyperparams, mu: Updates, g: Updates, t: Count) -> Updates:
    """m^ = m / (1 - b1^t); with `hp.nesterov`, Dozat's (2016) look-ahead
    m^ = b1 m / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t). In g's compute dtype (at least float32):
    neither m's nor g's dtype rounds m^, so float16 gradients of 6e4 do not overflow in g / (1 - b1^t)."""
    m, g = tree.compute_like(mu, g), tree.compute_like(g, g)
    if hp.nesterov:
        m_next, g_hat = tree.bias_correction(m, hp.b1, next_count(t)), tree.bias_correction(g, hp.b1, t)
        return tree.lerp(m_next, g_hat, hp.b1, 1 - hp.b1)
    return tree.bias_correction(m, hp.b1, t)


def eps_of(hp: Hyperparams, t: Count) -> Any:
    """The eps added to sqrt(v^): eps, or with `hp.eps_hat` Kingma & Ba's eps-hat form eps / sqrt(1 - b2^t),
    which is eps added to sqrt(v) before v's bias correction (a scalar in the widest float JAX has)."""
    if not hp.eps_hat:
        return hp.eps
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    return jnp.asarray(hp.eps).astype(dtype) / jnp.sqrt(tree.one_minus_pow(hp.b2, t, dtype))


def flag_or_none(builder: str, name: str, value: Any) -> bool | None:
    """A switch added after the fact, off by default (eps_hat, max_then_correct, eps_outside_max):
    stored as None when off, so that the repr of every transformation built without it stays as it
    was (None arguments are not shown) and rebuilds an equal one. None, as stored, means False."""
    return None if value is None else (True if check_flag(builder, name, value) else None)


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
    u = tree.div_sqrt(m_hat, v_hat, eps_of(hp, t), hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    if hp.where_nonzero:  # torch's SparseAdam: m, v and u only at the entries a sparse g would hold
        held = jax.tree.map(lambda x: x != 0, g)
        keep = lambda new, old: jax.tree.map(lambda h, n, o: jnp.where(h, n, o), held, new, old)
        mu, nu, u = keep(mu, state.mu), keep(nu, state.nu), keep(u, tree.zeros_like(u))
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
    eps_hat: bool = False,
    where_nonzero: bool = False,
) -> GradientTransformation:
    """Adam's preconditioner (Kingma & Ba, 2015): bias-corrected first moment over RMS.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    t counts updates from 1. `eps_root` > 0 keeps gradients through `update` finite where v = 0
    (meta-learning). `nesterov=True` gives NAdam (Dozat, 2016). Same as torch.optim.Adam with
    lr = 1 (torch puts eps outside the root too). `eps_hat=True` makes eps the paper's eps-hat
    (end of Sec. 2), added to sqrt(v) before the correction: u = m^ sqrt(1 - b2^t) / (sqrt(v +
    eps_root) + eps), i.e. eps / sqrt(1 - b2^t) in place of eps above; that is Keras's Adam
    (`gradtx.presets.keras.Adam`), whose epsilon matters 1 / sqrt(1 - b2) = 32x more at t = 1.
    `where_nonzero=True` updates m and v, and gives a nonzero u, only where g != 0 (t still counts
    every update): torch.optim.SparseAdam fed a dense gradient's `to_sparse()`, which holds exactly
    its nonzero entries (`gradtx.presets.torch.SparseAdam`). (eps_hat=None and where_nonzero=None
    mean False: the switches are stored so when off, and the repr omits them.)

    >>> import gradtx
    >>> gradtx.scale_by_adam(b2=0.99)
    scale_by_adam(b1=0.9, b2=0.99, eps=1e-08, eps_root=0.0, nesterov=False)
    """
    check("scale_by_adam", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = first_moment_dtype("scale_by_adam", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adam", _init_adam, _update_adam,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype, nesterov=nesterov,
        eps_hat=flag_or_none("scale_by_adam", "eps_hat", eps_hat),
        where_nonzero=flag_or_none("scale_by_adam", "where_nonzero", where_nonzero),
    )  # fmt: skip


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
    correct = lambda v: tree.bias_correction(v, hp.b2, t) if hp.bias_correction_nu else v  # v / (1 - b2^t)
    if hp.max_then_correct:
        nu_max = tree.maximum(state.nu_max, nu)  # v_max <- max(v_max, v)
        denominator = correct(nu_max)  # v_max^ = v_max / (1 - b2^t)
    else:
        nu_max = tree.maximum(state.nu_max, correct(nu))  # v_max <- max(v_max, v^)
        denominator = nu_max
    u = tree.div_sqrt(m_hat, denominator, eps_of(hp, t), hp.eps_root)  # u = m^ / (sqrt(v_max(^) + eps_root) + eps)
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
    max_then_correct: bool = False,
    eps_hat: bool = False,
) -> GradientTransformation:
    """AMSGrad's preconditioner (Reddi et al., 2018): Adam whose denominator never decreases.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)     (each switchable, as in optax)
        v_max <- max(v_max, v^)
        u  = m^ / (sqrt(v_max + eps_root) + eps)

    The paper corrects neither moment (`bias_correction_mu=False, bias_correction_nu=False`).
    `max_then_correct=True` keeps the max of the *raw* v and corrects it afterwards, as
    torch.optim.Adam(amsgrad=True) and Keras do: v_max <- max(v_max, v), u = m^ / (sqrt(v_max /
    (1 - b2^t) + eps_root) + eps). The two differ: the max of v^_s = v_s / (1 - b2^s) weighs early
    steps more than the common factor 1 / (1 - b2^t). `eps_hat=True` adds eps before v's
    correction, as `scale_by_adam`'s (Keras's AMSGrad is both switches). None means False for both.

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
        max_then_correct=flag_or_none("scale_by_amsgrad", "max_then_correct", max_then_correct),
        eps_hat=flag_or_none("scale_by_amsgrad", "eps_hat", eps_hat),
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
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t), as in Adam
    if hp.eps_outside_max:
        nu = tree.update_infinity_moment(g, state.nu, hp.b2)  # nu <- max(b2 nu, |g|)
        u = tree.div(m_hat, nu, hp.eps)  # u = m^ / (nu + eps)
    else:
        nu = tree.update_infinity_moment(g, state.nu, hp.b2, hp.eps)  # nu <- max(b2 nu, |g| + eps)
        u = tree.div(m_hat, nu)  # u = m^ / nu
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    accumulator_dtype: Any = None,
    eps_outside_max: bool = False,
) -> GradientTransformation:
    """Adamax's preconditioner (Kingma & Ba, 2015, Sec. 7.1): Adam with an infinity norm for v.

        m  <- b1 m + (1 - b1) g
        nu <- max(b2 nu, |g| + eps)
        m^ = m / (1 - b1^t)
        u  = m^ / nu

    The paper has no eps; like optax and torch.optim.Adamax (which this matches exactly, with
    lr = 1), gradtx adds it inside the max, so nu > 0 from the first step. `eps_outside_max=True`
    adds it to the max instead, nu <- max(b2 nu, |g|), u = m^ / (nu + eps): Keras's Adamax
    (None means False).
    `accumulator_dtype` sets mu's dtype.

    >>> import gradtx
    >>> gradtx.scale_by_adamax()
    scale_by_adamax(b1=0.9, b2=0.999, eps=1e-08)
    """
    check("scale_by_adamax", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG))
    dtype = check_dtype("scale_by_adamax", "accumulator_dtype", accumulator_dtype)
    outside = flag_or_none("scale_by_adamax", "eps_outside_max", eps_outside_max)
    return transformation(
        "scale_by_adamax", _init_adamax, _update_adamax,
        b1=b1, b2=b2, eps=eps, accumulator_dtype=dtype, eps_outside_max=outside,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizers


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
    with arguments_of("adam"):
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
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
    with arguments_of("nadam"):
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
    with arguments_of("adamax"):
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
    with arguments_of("amsgrad"):
        return chain(
            scale_by_amsgrad(
                b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
                accumulator_dtype=accumulator_dtype,
            ),
            scale_by_learning_rate(learning_rate),
        )  # fmt: skip


__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "adam",
    "adamax",
    "amsgrad",
    "nadam",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
]
