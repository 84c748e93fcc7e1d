"""Adam's descendants: each changes one line of Adam (see `gradtx/transforms/adaptive.py`).

    RAdam      scale_by_radam     u = r_t m^ / sqrt(v^) once the variance of v^ is tractable, else m^
    AdaBelief  scale_by_belief    v tracks (g - m)^2, the "belief" in the gradient, not g^2
    Yogi       scale_by_yogi      v <- v - (1 - b2) sign(v - g^2) g^2: additive, not multiplicative
    NovoGrad   scale_by_novograd  one second moment per leaf (layer), and g normalized before momentum

The dtype policy is adaptive.py's: first moments in `accumulator_dtype` (default: the params'),
second moments real and at least float32, arithmetic in at least float32.
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
    Updates,
    check,
    check_dtype,
    next_count,
    require_params,
    transformation,
    zero_count,
)
from gradtx.packing import require_leaves
from gradtx.transforms.adaptive import (
    NONNEG,
    UNIT,
    ScaleByAdamState,
    corrected_first_moment,
    first_moment_dtype,
)


def _is_zero(value: Any) -> bool:
    """True for a concrete number equal to 0 (not for a tracer)."""
    return isinstance(value, int | float) and value == 0


def _as(value: Any, dtype: Any) -> jax.Array:
    """A hyperparameter (a number or a tracer) as a scalar of `dtype`, so it never widens a dtype."""
    return jnp.asarray(value).astype(dtype)


# ---------------------------------------------------------------------------------------------------
# RAdam


def _init_adam_like(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


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
    adapted = tree.div_sqrt(m_hat, v_hat, hp.eps, hp.eps_root)  # m^ / (sqrt(v^ + eps_root) + eps)
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
    `nesterov=True` uses NAdam's m^ (see `scale_by_adam`). torch.optim.RAdam puts eps outside the
    bias correction, u = r_t m^ sqrt(1 - b2^t) / (sqrt(v) + eps), and tests rho_t > 5: with
    eps = eps_root = 0 the two are the same (tests/test_optimizers_torch.py checks it).

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
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# AdaBelief


class ScaleByBeliefState(NamedTuple):
    """count: updates applied (int32); mu: m, the EMA of g; nu: s, the EMA of (g - m)^2 (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _init_belief(hp: Hyperparams, params) -> ScaleByBeliefState:
    return ScaleByBeliefState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_belief(hp: Hyperparams, g, state: ScaleByBeliefState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    surprise = tree.abs_sq(tree.sub(tree.compute_like(g, g), mu))  # (g - m)^2, with the new m
    s = tree.add(tree.ema(state.nu, surprise, hp.b2), tree.full_like(state.nu, hp.eps_root))  # s <- ... + eps_root
    m_hat = corrected_first_moment(hp, mu, g, t)  # m^ = m / (1 - b1^t), or NAdam's look-ahead
    s_hat = tree.bias_correction(s, hp.b2, t)  # s^ = s / (1 - b2^t)
    u = tree.div_sqrt(m_hat, s_hat, hp.eps)  # u = m^ / (sqrt(s^) + eps)
    return tree.cast_like(u, g), ScaleByBeliefState(count=t, mu=mu, nu=s)


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief's preconditioner (Zhuang et al., 2020): divide by the RMS of g's surprise g - m.

        m <- b1 m + (1 - b1) g
        s <- b2 s + (1 - b2) (g - m)^2 + eps_root      (the new m; eps_root is added every step)
        m^ = m / (1 - b1^t),   s^ = s / (1 - b2^t)
        u  = m^ / (sqrt(s^) + eps)

    Where gradients agree with their average (g ~ m) the step is large; where they scatter, small.
    The paper's Algorithm 2 is this with eps_root = eps (its eps enters s too); the defaults are
    optax's and the authors' code's (1e-16, 1e-16), the paper's experiments use eps = 1e-8.
    `nesterov=True` uses NAdam's m^ (see `scale_by_adam`). Complex params: (g - m)^2 is |g - m|^2.

    >>> import gradtx
    >>> gradtx.scale_by_belief()
    scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False)
    """
    check("scale_by_belief", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = check_dtype("scale_by_belief", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_belief", _init_belief, _update_belief,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Yogi


def _init_yogi(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),  # m_0 = 0 (optax: initial_accumulator_value)
        nu=tree.second_moment_like(params, hp.initial_accumulator_value),
    )


def _update_yogi(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    g2 = tree.abs_sq(g)  # g^2 (|g|^2 for complex g), at least float32
    direction = jax.tree.map(jnp.sign, tree.sub(state.nu, g2))  # sign(v - g^2)
    nu = tree.add_scale(state.nu, -(1 - hp.b2), tree.mul(direction, g2))  # v <- v - (1 - b2) sign(v - g^2) g^2
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_hat, v_hat, hp.eps, hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Yogi's preconditioner (Zaheer et al., 2018): Adam whose v moves by at most (1 - b2) g^2.

        m <- b1 m + (1 - b1) g
        v <- v - (1 - b2) sign(v - g^2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    Adam's v <- v - (1 - b2) (v - g^2) can fall fast once gradients shrink, making steps large;
    Yogi's additive step keeps v from forgetting a past large gradient too quickly (v >= 0 if it
    starts so). v starts at `initial_accumulator_value` and m at 0, both bias-corrected, as in the
    authors' code; the defaults are optax's (eps = 1e-3 is the paper's). optax also starts m at
    `initial_accumulator_value`, so zero gradients move its params (by about 1e-6 / sqrt(v^) at
    t = 1); with `initial_accumulator_value=0` the two agree.

    >>> import gradtx
    >>> gradtx.scale_by_yogi()
    scale_by_yogi(b1=0.9, b2=0.999, eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06)
    """
    check(
        "scale_by_yogi",
        b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
        initial_accumulator_value=(initial_accumulator_value, NONNEG),
    )  # fmt: skip
    dtype = check_dtype("scale_by_yogi", "accumulator_dtype", accumulator_dtype)
    return transformation(
        "scale_by_yogi", _init_yogi, _update_yogi,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, initial_accumulator_value=initial_accumulator_value,
        accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# NovoGrad


class ScaleByNovogradState(NamedTuple):
    """count: updates applied (int32); mu: m, the momentum; nu: v, one EMA of ||g||^2 per leaf (real, 0-d)."""

    count: Count
    mu: Updates
    nu: Updates


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
    divide = tree.safe_div_sqrt if _is_zero(hp.eps) and _is_zero(hp.eps_root) else tree.div_sqrt
    u = divide(tree.compute_like(g, g), nu, hp.eps, hp.eps_root)  # g / (sqrt(v + eps_root) + eps)
    if not _is_zero(hp.weight_decay):
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


__all__ = [
    "ScaleByBeliefState", "ScaleByNovogradState",
    "scale_by_belief", "scale_by_novograd", "scale_by_radam", "scale_by_yogi",
]  # fmt: skip
