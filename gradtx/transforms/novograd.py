"""NovoGrad: one second moment per layer, and gradients normalized before the momentum (Ginsburg et al., 2019).

scale_by_novograd   v <- b2 v + (1 - b2) ||g||^2;   m <- b1 m + g / (sqrt(v) + eps) + wd W;   u = m
novograd            chain(scale_by_novograd, scale_by_learning_rate)
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
    first_moment_dtype,
    is_zero,
    require_params,
)
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# NovoGrad


class ScaleByNovogradState(NamedTuple):
    """count: updates applied (int32); mu: m, the momentum; nu: v, one EMA of ||g||^2 per leaf (real, 0-d)."""

    count: Count
    mu: Updates
    nu: Updates  # one 0-d moment a leaf


def _init_novograd(hp: Hyperparams, params) -> ScaleByNovogradState:
    return ScaleByNovogradState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=jax.tree.map(lambda p: jnp.zeros([], tree.real_dtype(tree.compute_dtype(p.dtype))), params),
    )


def _update_novograd(hp: Hyperparams, g, state: ScaleByNovogradState, params=None):
    require_leaves("scale_by_novograd", g)  # one second moment a leaf: its norm
    t = next_count(state.count)
    g_norm_sq = jax.tree.map(jnp.sum, tree.abs_sq(g))  # ||g||^2 of each leaf
    # v_1 = ||g_1||^2, then v <- b2 v + (1 - b2) ||g||^2
    nu = jax.tree.map(lambda v, n: jnp.where(t == 1, n, tree.ema(v, n, hp.b2)), state.nu, g_norm_sq)
    # With eps = eps_root = 0, a leaf whose gradients have all been zero has v = 0: u = 0 there, not 0 / 0.
    divide = tree.safe_div_sqrt if is_zero(hp.eps) and is_zero(hp.eps_root) else tree.div_sqrt
    u = divide(tree.compute_like(g, g), nu, hp.eps, hp.eps_root)  # g / (sqrt(v + eps_root) + eps)
    if not is_zero(hp.weight_decay):
        u = tree.add_scale(u, hp.weight_decay, require_params("scale_by_novograd", params))  # ... + d w
    m = tree.lerp(tree.compute_like(state.mu, g), u, hp.b1, 1)  # m <- b1 m + (g / (...) + d w)
    return tree.cast_like(m, g), ScaleByNovogradState(count=t, mu=tree.cast_like(m, state.mu), nu=nu)


def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad's preconditioner (Ginsburg et al., 2019): Adam-like, with one second moment per layer.

        v <- ||g||^2                            at t = 1
        v <- b2 v + (1 - b2) ||g||^2            after (a scalar per leaf: the layer's squared norm)
        m <- b1 m + g / (sqrt(v + eps_root) + eps) + d w
        u  = m

    Each leaf is a layer. The gradient is normalized before it enters the momentum, which has no
    (1 - b1) factor and no bias correction; d = `weight_decay` is the paper's L2 term, inside the
    momentum (update then needs params, unless d = 0). The state holds one number per leaf where
    Adam holds one per coordinate: half Adam's memory. Same as optax (whose t = 1 step also adds
    eps, the paper's does not); a leaf whose gradients have all been zero gets u = b1 m, not 0 / 0.

    >>> import gradtx
    >>> gradtx.scale_by_novograd()
    scale_by_novograd(b1=0.9, b2=0.25, eps=1e-08, eps_root=0.0, weight_decay=0.0)
    """
    check(
        "scale_by_novograd",
        b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
        weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    dtype = first_moment_dtype("scale_by_novograd", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_novograd", _init_novograd, _update_novograd,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


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
    with arguments_of("novograd"):
        return chain(
            scale_by_novograd(b1, b2, eps, eps_root, weight_decay, accumulator_dtype=accumulator_dtype),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByNovogradState", "novograd", "scale_by_novograd"]
