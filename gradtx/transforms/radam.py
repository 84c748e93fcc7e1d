"""RAdam: Adam whose adaptive step is switched on once the variance of v^ is tractable (Liu et al., 2020).

scale_by_radam   u = r_t m^ / (sqrt(v^) + eps)  once rho_t >= threshold,  else m^
radam            chain(scale_by_radam, scale_by_learning_rate)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, arguments_of, check, check_dtype
from gradtx.combine import chain
from gradtx.transforms.adam import ScaleByAdamState, corrected_first_moment, eps_of, flag_or_none
from gradtx.transforms.scaling import scale_by_learning_rate


def _as(value: Any, dtype: Any) -> jax.Array:
    """A hyperparameter (a number or a tracer) as a scalar of `dtype`, so it never widens a dtype."""
    return jnp.asarray(value).astype(dtype)


def _init_adam_like(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


# ---------------------------------------------------------------------------------------------------
# RAdam


def _rectification(hp: Hyperparams, t: Count) -> tuple[jax.Array, jax.Array]:
    """(rho_t >= threshold, r_t): scalars in the widest float JAX has (float64 with x64 on).

    rho_t = rho_inf - 2 t b2^t / (1 - b2^t) cancels (1999 - 1993 at t = 6 for b2 = 0.999), so a
    float32 rho_t puts r_6 off by 1e-4; a few scalar operations in float64 cost nothing.
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    rho_inf = _as(2 / (1 - hp.b2) - 1, dtype)  # in Python's double precision where b2 is a number
    one_minus_b2t = tree.one_minus_pow(hp.b2, t, dtype)  # 1 - b2^t
    rho = rho_inf - 2 * t.astype(dtype) * (1 - one_minus_b2t) / one_minus_b2t  # rho_t
    tractable = rho >= _as(hp.threshold, dtype)
    ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
    # Where rho_t < threshold the ratio may be negative: its root is not taken (nor differentiated).
    return tractable, jnp.sqrt(jnp.where(tractable, ratio, jnp.ones_like(ratio)))


def _rectify(tractable: jax.Array, r: jax.Array, adapted: jax.Array, m_hat: jax.Array) -> jax.Array:
    return jnp.where(tractable, r.astype(adapted.dtype) * adapted, m_hat.astype(adapted.dtype))


def _update_radam(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    m_hat = corrected_first_moment(hp, mu, g, t)  # m^ = m / (1 - b1^t), or NAdam's look-ahead
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    adapted = tree.div_sqrt(m_hat, v_hat, eps_of(hp, t), hp.eps_root)  # m^ / (sqrt(v^ + eps_root) + eps)
    tractable, r = _rectification(hp, t)  # rho_t >= threshold, r_t
    u = jax.tree.map(lambda a, m: _rectify(tractable, r, a, m), adapted, m_hat)  # r_t (...) if tractable, else m^
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    eps_hat: bool = False,
) -> GradientTransformation:
    """Rectified Adam's preconditioner (Liu et al., 2020): Adam once its variance is tractable.

        m <- b1 m + (1 - b1) g,      v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),         v^ = v / (1 - b2^t)
        rho_inf = 2 / (1 - b2) - 1,  rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
        r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
        u  = r_t m^ / (sqrt(v^ + eps_root) + eps)    if rho_t >= threshold
        u  = m^                                      otherwise (SGD with momentum)

    rho_t is the length of the simple moving average that v approximates; for b2 = 0.999 it reaches
    5 at t = 6, so the first five updates are m^. The paper uses rho_t > 4 (where r_t is real);
    optax and the authors' code use a threshold of 5, and so does gradtx (threshold must be >= 4).
    `nesterov=True` uses NAdam's m^ (see `scale_by_adam`). torch.optim.RAdam adds eps to sqrt(v)
    before the bias correction, u = r_t m^ sqrt(1 - b2^t) / (sqrt(v) + eps): that is
    `eps_hat=True` (eps / sqrt(1 - b2^t) in place of eps above; None means False). torch tests rho_t > 5, gradtx
    rho_t >= threshold; rho_t is never exactly 5 for a b2 in use (`gradtx.presets.torch.RAdam`).

    >>> import gradtx
    >>> gradtx.scale_by_radam()
    scale_by_radam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, threshold=5.0, nesterov=False)
    """
    check(
        "scale_by_radam",
        b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG), threshold=(threshold, "[4, inf)"),
    )  # fmt: skip
    dtype = check_dtype("scale_by_radam", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_radam", _init_adam_like, _update_radam,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, threshold=threshold, nesterov=nesterov, accumulator_dtype=dtype,
        eps_hat=flag_or_none("scale_by_radam", "eps_hat", eps_hat),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


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
    for eps > 0 torch adds eps to sqrt(v) before its bias correction, gradtx (and optax) after:
    `gradtx.presets.torch.RAdam` gives torch's numbers (`scale_by_radam(eps_hat=True)`).

    >>> import gradtx
    >>> gradtx.radam(1e-3)
    chain(scale_by_radam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, threshold=5.0, nesterov=False),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("radam", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("radam"):
        return chain(
            scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["radam", "scale_by_radam"]
