"""LaProp: momentum of the RMS-normalized gradient (Ziyin, Wang & Ueda, 2020).

    scale_by_laprop   v <- b2 v + (1 - b2) g^2;  m <- b1 m + (1 - b1) g / (sqrt(v^) + eps);  u = m^
    laprop            chain(scale_by_laprop, add_decayed_weights, scale_by_learning_rate)

Adam divides the momentum by the RMS; LaProp takes the momentum of gradients already divided by
it, so the momentum and the adaptivity decouple (b1 may exceed b2, and a large gradient cannot
blow up the step). The second moment is real and at least float32; the momentum follows the
first-moment policy (`mu_dtype` / `accumulator_dtype`).
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
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, arguments_of, check, first_moment_dtype
from gradtx.combine import chain
from gradtx.transforms.adam import flag_or_none
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# LaProp


class ScaleByLapropState(NamedTuple):
    """count: updates applied (int32); mu: m, the momentum of the normalized gradients; nu: v (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_laprop(hp: Hyperparams, params) -> ScaleByLapropState:
    return ScaleByLapropState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _eps_of(hp: Hyperparams, t: Count) -> tuple[Any, Any]:
    """(eps, eps_root) as added to sqrt(v^ + eps_root): as given, or with `hp.eps_hat` both added
    before v's bias correction, eps / sqrt(1 - b2^t) and eps_root / (1 - b2^t) (scalars in the widest
    float JAX has)."""
    if not hp.eps_hat:
        return hp.eps, hp.eps_root
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    c2 = tree.one_minus_pow(hp.b2, t, dtype)
    return jnp.asarray(hp.eps).astype(dtype) / jnp.sqrt(c2), jnp.asarray(hp.eps_root).astype(dtype) / c2


def _update_laprop(hp: Hyperparams, g, state: ScaleByLapropState, params=None):
    t = next_count(state.count)
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    eps, eps_root = _eps_of(hp, t)
    # n = g / (sqrt(v^ + eps_root) + eps), in g's compute dtype (>= float32): not rounded to a
    # bfloat16 gradient's precision before it enters the momentum.
    n = tree.div_sqrt(tree.compute_like(g, g), v_hat, eps, eps_root)
    mu = tree.ema(state.mu, n, hp.b1)  # m <- b1 m + (1 - b1) n
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # u = m^ = m / (1 - b1^t)
    return tree.cast_like(m_hat, g), ScaleByLapropState(count=t, mu=mu, nu=nu)


def scale_by_laprop(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-15,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    eps_hat: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """LaProp's direction (Ziyin, Wang & Ueda, 2020, "LaProp: Separating Momentum and Adaptivity in Adam").

        v <- b2 v + (1 - b2) g^2
        v^ = v / (1 - b2^t)
        n  = g / (sqrt(v^ + eps_root) + eps)
        m <- b1 m + (1 - b1) n
        u  = m / (1 - b1^t)

    t counts updates from 1. The paper's Algorithm 1 and the authors' code (eps = 1e-15, their
    default) with a constant learning rate. Differences, each reachable by an argument:

    - `eps_hat=True` adds eps and eps_root before v's bias correction, n = g sqrt(1 - b2^t) /
      (sqrt(v + eps_root) + eps): pytorch_optimizer's LaProp is that form with eps_root = 1e-15
      (its fixed constant inside the root), `scale_by_laprop(eps=1e-15, eps_root=1e-15,
      eps_hat=True)`, equal to it to float64 rounding (tests/test_laprop.py).
    - With a learning rate that changes, the authors' code (and pytorch_optimizer's) weighs each n
      in the momentum by its step's rate and corrects the bias by those weights: its step is
      lr_t (sum_s b1^(t-s) lr_s n_s) / (sum_s b1^(t-s) lr_s), where gradtx's is lr_t m^. The two
      agree for a constant rate; gradtx keeps the rate outside (`scale_by_learning_rate`), so
      that LaProp composes with any schedule or wrapper as every other direction does.

    `accumulator_dtype` (alias `mu_dtype`) sets m's dtype; v is real and at least float32.
    (eps_hat=None means False.)

    >>> import gradtx
    >>> gradtx.scale_by_laprop()
    scale_by_laprop(b1=0.9, b2=0.999, eps=1e-15, eps_root=0.0)
    """
    check("scale_by_laprop", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = first_moment_dtype("scale_by_laprop", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_laprop", _init_laprop, _update_laprop,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype,
        eps_hat=flag_or_none("scale_by_laprop", "eps_hat", eps_hat),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def laprop(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-15,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    eps_hat: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """LaProp (Ziyin et al., 2020): `chain(scale_by_laprop(b1, b2, eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`.

    See `scale_by_laprop`. The decay is decoupled, as in AdamW: W <- W - eta (m^ + lambda W).
    pytorch_optimizer's LaProp multiplies the params by 1 - eta lambda after its step instead,
    W <- (W - eta m^)(1 - eta lambda), which differs by eta^2 lambda m^ a step. `mask` selects the
    leaves that decay.

    >>> import gradtx
    >>> gradtx.laprop(4e-4)
    chain(scale_by_laprop(b1=0.9, b2=0.999, eps=1e-15, eps_root=0.0), add_decayed_weights(weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.0004, flip_sign=True))
    """
    check("laprop", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("laprop"):
        return chain(
            scale_by_laprop(b1, b2, eps, eps_root, mu_dtype, eps_hat=eps_hat, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByLapropState", "laprop", "scale_by_laprop"]
