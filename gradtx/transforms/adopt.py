"""ADOPT: Adam whose second moment has not yet seen the gradient it divides (Taniguchi et al., 2024).

    scale_by_adopt   m <- b1 m + (1 - b1) clip(g / max(sqrt(v), eps), c_t);   u = m
                     v <- b2 v + (1 - b2) g^2              (after m: v holds the gradients before g)
    adopt            chain(scale_by_adopt, scale_by_learning_rate)

The first update only sets v = g^2 and returns zero updates. Dividing by the v of the previous
steps makes the normalized gradient independent of the gradient itself, which is what lets ADOPT
converge for any b2 (Adam diverges on the paper's counterexample for b2 below a problem-dependent
threshold). optax.contrib's names, arguments, defaults and state (`ScaleByAdamState`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, next_count, transformation, zero_count
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    UNIT,
    ArgumentTypeError,
    arguments_of,
    check,
    check_flag,
    check_schedule,
    first_moment_dtype,
)
from gradtx.combine import chain
from gradtx.transforms.adam import ScaleByAdamState
from gradtx.transforms.scaling import scale_by_learning_rate


def _clip_value(hp: Hyperparams, count: jax.Array, dtype: Any) -> jax.Array:
    """c_t, as a real scalar of `dtype`: clip_value_fn(t), or the paper's t^(1/4) when it is None."""
    if hp.clip_value_fn is None:
        return count.astype(dtype) ** 0.25
    return jnp.asarray(hp.clip_value_fn(count)).astype(dtype)


def _normalized(hp: Hyperparams, g: jax.Array, v: jax.Array, count: jax.Array) -> jax.Array:
    """clip(g / max(sqrt(v), eps), c_t) for one leaf, in g's compute dtype (v real)."""
    g32 = g.astype(tree.compute_dtype(g.dtype))
    real = tree.real_dtype(g32.dtype)
    eps = jnp.asarray(hp.eps).astype(real)
    # max(sqrt(v), eps) as sqrt(max(v, eps^2)): the same number, and a finite derivative at v = 0
    # (jax.grad through update), where sqrt's is infinite.
    n = g32 / jnp.sqrt(jnp.maximum(v.astype(real), eps * eps)).astype(g32.dtype)
    if not hp.use_clipping:
        return n
    c = _clip_value(hp, count, real)
    if jnp.iscomplexobj(n):  # each part bounded, as torch-adopt does for complex params (view_as_real)
        return jax.lax.complex(jnp.clip(n.real, -c, c), jnp.clip(n.imag, -c, c))
    return jnp.clip(n, -c, c)


def _init_adopt(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
    )


def _update_adopt(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t, first = state.count, state.count == 0  # t: updates already applied (c_t = t^(1/4))
    n = jax.tree.map(lambda gi, vi: _normalized(hp, gi, vi, t), g, state.nu)  # clip(g / max(sqrt(v), eps), c_t)
    # m <- b1 m + (1 - b1) n, and at the first update m <- m + 0 n: m_0 = 0, but NaN where g is (never hidden)
    mu = tree.where(first, tree.lerp(state.mu, n, 1.0, 0.0), tree.ema(state.mu, n, hp.b1))
    g2 = tree.abs_sq(g)
    nu = tree.where(first, tree.cast_like(g2, state.nu), tree.ema(state.nu, g2, hp.b2))  # v <- b2 v + (1 - b2) g^2
    m = tree.compute_like(mu, g)
    # u = m, or with nesterov u = b1 m + (1 - b1) n: the momentum one step ahead (optax's)
    u = tree.where(first, m, tree.lerp(m, n, hp.b1, 1 - hp.b1)) if hp.nesterov else m
    return tree.cast_like(u, g), ScaleByAdamState(count=next_count(t), mu=mu, nu=nu)


def _check_clip_value_fn(builder: str, clip_value_fn: Any) -> None:
    if clip_value_fn is None:
        return
    if not callable(clip_value_fn):
        raise ArgumentTypeError(
            builder, "clip_value_fn", f"must be a function count -> clip value, or None, got {clip_value_fn!r}"
        )
    check_schedule(builder, "clip_value_fn", clip_value_fn)


def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """ADOPT's preconditioner (Taniguchi et al., 2024, Algorithm 2 with clipping): the gradient
    normalized by the second moment of the steps before it, then averaged.

        v_0 = g_0^2,  m_0 = 0                              (the first update is zero)
        n = clip(g / max(sqrt(v), eps), c_t)               (c_t = t^(1/4); no clip if not use_clipping)
        m <- b1 m + (1 - b1) n
        v <- b2 v + (1 - b2) g^2
        u  = m                                             (u = b1 m + (1 - b1) n with nesterov)

    t counts the updates before this one (1 at the first nonzero update), as optax passes it to
    `clip_value_fn` (a function t -> c_t); None, the default, is the paper's t^(1/4). optax's
    default is that function as a lambda, which gradtx does not store so that the repr rebuilds an
    equal transformation. `use_clipping=False` is the paper's Algorithm 1. `nesterov=True` is
    optax's look-ahead (not in the paper). The state is `ScaleByAdamState(count, mu, nu)`, as in
    optax. The paper's eps (1e-6) bounds the denominator from below, max(sqrt(v), eps), as in the
    authors' code; gradtx computes it as sqrt(max(v, eps^2)), the same number with a finite
    derivative at v = 0. Complex params: v is |g|^2 and the clip bounds the real and imaginary
    parts each. As for every gradtx transformation, `v` of bfloat16 params is float32.

    The authors' package (torch-adopt 0.1.0, `adopt.ADOPT`) gives the same numbers with its default
    `clip_lambda` (or `clip_lambda=None` for `use_clipping=False`); its `weight_decay` is L2 by
    default, `chain(add_decayed_weights(wd), scale_by_adopt(), scale_by_learning_rate(lr))`, and
    with `decouple=True` the decoupled decay after `scale_by_adopt`, which it too skips at the first
    update (a weight-decay schedule that is 0 at count 0 gives its numbers: tests/test_adopt.py).

    >>> import gradtx
    >>> gradtx.scale_by_adopt()
    scale_by_adopt(b1=0.9, b2=0.9999, eps=1e-06, nesterov=False, use_clipping=True)
    """
    check("scale_by_adopt", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG))
    _check_clip_value_fn("scale_by_adopt", clip_value_fn)
    dtype = first_moment_dtype("scale_by_adopt", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adopt", _init_adopt, _update_adopt,
        b1=b1, b2=b2, eps=eps, accumulator_dtype=dtype,
        nesterov=check_flag("scale_by_adopt", "nesterov", nesterov),
        use_clipping=check_flag("scale_by_adopt", "use_clipping", use_clipping),
        clip_value_fn=clip_value_fn,
    )  # fmt: skip


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """ADOPT (Taniguchi et al., 2024): `chain(scale_by_adopt(...), scale_by_learning_rate(lr))`.

    See `scale_by_adopt` (and there, how torch-adopt's weight decay is built). optax.contrib's
    arguments and defaults; `clip_value_fn=None` is its t^(1/4).

    >>> import gradtx
    >>> gradtx.adopt(1e-3)
    chain(scale_by_adopt(b1=0.9, b2=0.9999, eps=1e-06, nesterov=False, use_clipping=True),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adopt", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adopt"):
        return chain(
            scale_by_adopt(
                b1, b2, eps, mu_dtype, nesterov=nesterov, use_clipping=use_clipping, clip_value_fn=clip_value_fn,
                accumulator_dtype=accumulator_dtype,
            ),
            scale_by_learning_rate(learning_rate),
        )  # fmt: skip


__all__ = ["adopt", "scale_by_adopt"]
