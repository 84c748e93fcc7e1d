"""SM3: AdaGrad whose accumulator is covered by one vector per axis (Anil et al., 2019).

    scale_by_sm3   a = (1 - b2) g^2 + b2 min_r mu_r     (b2 = 1: a = g^2 + min_r mu_r, the paper's SM3-II)
                   mu_r <- max of a over every axis but r
                   nu <- b1 nu + (1 - b1) g / sqrt(a + eps);   u = nu
    sm3            chain(scale_by_sm3(momentum), scale_by_learning_rate(lr))

A (d1, ..., dk) leaf keeps d1 + ... + dk statistics instead of d1 ... dk: the memory of SGD with
momentum, with AdaGrad's per-coordinate step sizes. A leaf of rank 0 or 1 keeps its whole
accumulator (each of its coordinates is its own cover).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, Updates, transformation
from gradtx.checks import FRACTION, LEARNING_RATE, NONNEG, UNIT, arguments_of, check
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.scaling import scale_by_learning_rate


class ScaleBySM3State(NamedTuple):
    """mu: per leaf, a list of one statistic mu_r a dimension r (a rank-0 or rank-1 leaf: one, of
    its shape), real and at least float32; nu: the momentum of the preconditioned updates. optax's
    field names (here mu is the second-moment statistic and nu the first moment)."""

    mu: Updates  # a list of one vector an axis, a leaf
    nu: Updates


def _stats_dtype(p: Any) -> Any:
    return tree.real_dtype(tree.compute_dtype(p.dtype))  # a sum of squares: real, >= float32


def _init_stats(p: Any) -> list:
    dtype = _stats_dtype(p)
    if p.ndim < 2:
        return [jnp.zeros_like(p, dtype=dtype)]
    # Each statistic has the shape (and sharding) of a sum of p over every other axis.
    sums = [functools.partial(jnp.sum, axis=tuple(a for a in range(p.ndim) if a != r)) for r in range(p.ndim)]
    return [jnp.zeros_like(jax.eval_shape(s, p), dtype=dtype) for s in sums]


def _init_sm3(hp: Hyperparams, params) -> ScaleBySM3State:
    mu = jax.tree.map(_init_stats, params)
    return ScaleBySM3State(mu=mu, nu=tree.first_moment_like(params))


def _previous(stats: list, ndim: int) -> jax.Array:
    """min_r mu_r, broadcast to the leaf's shape: the accumulator the cover remembers."""
    if ndim < 2:
        return stats[0]
    shaped = [jnp.expand_dims(s, tuple(a for a in range(ndim) if a != r)) for r, s in enumerate(stats)]
    return functools.reduce(jnp.minimum, shaped)


def _update_leaf(hp: Hyperparams, g: jax.Array, stats: list) -> tuple:
    g2 = tree.abs_sq(g)  # |g|^2: real, >= float32
    prev = _previous(stats, g.ndim)
    running_sum = isinstance(hp.b2, int | float) and hp.b2 == 1
    # a = g^2 + min_r mu_r (b2 = 1, SM3-II), or a = (1 - b2) g^2 + b2 min_r mu_r
    a = g2 + prev if running_sum else tree.lerp(prev, g2, hp.b2, 1 - hp.b2)
    # 0 / 0 = 0 where a = 0 (then g = 0); a NaN accumulator stays NaN (a == 0 is False for it).
    inv = jnp.where(a == 0, 0, jax.lax.rsqrt(jnp.where(a == 0, 1, a) + jnp.asarray(hp.eps, a.dtype)))
    up = tree.compute_like(g, g) * inv.astype(tree.compute_dtype(g.dtype))  # g / sqrt(a + eps)
    if g.ndim < 2:
        new_stats = [a]
    else:
        # initial=0: a zero-size axis has no maximum; a >= 0, so it changes nothing elsewhere.
        others = [tuple(x for x in range(g.ndim) if x != r) for r in range(g.ndim)]
        new_stats = [jnp.max(a, axis=axes, initial=0) for axes in others]  # mu_r <- max of a over the others
    return up, new_stats


def _update_sm3(hp: Hyperparams, g, state: ScaleBySM3State, params=None):
    require_leaves("scale_by_sm3", g)
    out = jax.tree.map(functools.partial(_update_leaf, hp), g, state.mu)
    up = jax.tree.map(lambda _, o: o[0], g, out)
    mu = jax.tree.map(lambda _, o: o[1], g, out)
    nu = tree.ema(state.nu, up, hp.b1)  # nu <- b1 nu + (1 - b1) g / sqrt(a + eps)
    return tree.cast_like(nu, g), ScaleBySM3State(mu=mu, nu=nu)


def scale_by_sm3(b1: float = 0.9, b2: float = 1.0, eps: float = 1e-8) -> GradientTransformation:
    """SM3's preconditioner (Anil et al., 2019), SM3-II with momentum, as in optax.

        a    = g^2 + min_r mu_r                       (b2 = 1, the default: a running sum)
        a    = (1 - b2) g^2 + b2 min_r mu_r           (b2 < 1: an EMA, as optax)
        mu_r <- max of a over the coordinates that share index i_r   (one vector per axis r)
        nu   <- b1 nu + (1 - b1) g / sqrt(a + eps)    (0 where a = 0: the paper's 0 / 0 = 0)
        u    = nu

    For a matrix, mu_rows and mu_cols bound every entry's AdaGrad accumulator from above, so the
    steps are never larger than AdaGrad's would be. The same numbers as optax, which however
    fails on rank-0 leaves (a scalar keeps its own accumulator here) and rejects complex params
    (here |g|^2 is their real accumulator and nu stays complex).

    >>> import gradtx
    >>> gradtx.scale_by_sm3()
    scale_by_sm3(b1=0.9, b2=1.0, eps=1e-08)
    """
    check("scale_by_sm3", b1=(b1, UNIT), b2=(b2, FRACTION), eps=(eps, NONNEG))
    return transformation("scale_by_sm3", _init_sm3, _update_sm3, b1=b1, b2=b2, eps=eps)


def sm3(learning_rate: ScalarOrSchedule, momentum: float = 0.9) -> GradientTransformation:
    """SM3 (Anil et al., 2019): `chain(scale_by_sm3(momentum), scale_by_learning_rate(lr))`.

    optax's chain ends in `scale(-learning_rate)`: the same numbers; here the learning rate may
    also be a schedule. See `scale_by_sm3`.

    >>> import gradtx
    >>> gradtx.sm3(0.1)
    chain(scale_by_sm3(b1=0.9, b2=1.0, eps=1e-08), scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("sm3", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("sm3", {"scale_by_sm3.b1": "momentum"}):
        return chain(scale_by_sm3(momentum), scale_by_learning_rate(learning_rate))


__all__ = ["ScaleBySM3State", "scale_by_sm3", "sm3"]
