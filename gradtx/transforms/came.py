"""CAME: Adafactor's factored second moment with a confidence-guided, factored momentum (Luo et al., 2023).

    scale_by_came   u = g / sqrt(v^)  (v^ factored as Adafactor's);  u^ = u / max(1, rms(u) / d)
                    m <- b1 m + (1 - b1) u^;  U = (u^ - m)^2 + eps2;  delta = m / sqrt(S^)
    came            chain(scale_by_came, add_decayed_weights, scale_by_learning_rate)

U is the instability, S^ its factored EMA.

A matrix keeps a row and a column statistic for v and for S (one number a row and one a column),
and divides the momentum by the root of its expected instability: steps where the momentum and
the current update agree are taken with more confidence. The statistics are real and at least
float32; the momentum follows the first-moment policy (`mu_dtype` / `accumulator_dtype`).
"""

from __future__ import annotations

import functools
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
    COUNT,
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE,
    UNIT,
    arguments_of,
    check,
    first_moment_dtype,
)
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# CAME


class ScaleByCameState(NamedTuple):
    """count: updates applied (int32); mu: m, the momentum of the clipped updates; v_row, v_col: a
    factored leaf's second-moment statistics (means over its last dimension and over its second to
    last), v: an unfactored leaf's second moment; s_row, s_col: a factored leaf's instability
    statistics (the same means of U). Each leaf uses one kind; the other fields hold a (1,)
    placeholder there, as in `FactoredState`. All but mu real and at least float32."""

    count: Count
    mu: Updates
    v_row: Updates
    v_col: Updates
    v: Updates
    s_row: Updates
    s_col: Updates


def _is_factored(hp: Hyperparams, shape: tuple) -> bool:
    """The authors' rule: a leaf of two or more dimensions is factored over its last two, here if
    both are >= min_dim_size_to_factor (and `factored`)."""
    return hp.factored and len(shape) >= 2 and 0 not in shape and min(shape[-2:]) >= hp.min_dim_size_to_factor


def _init_came_leaf(hp: Hyperparams, p: Any) -> tuple:
    dtype = tree.real_dtype(tree.compute_dtype(p.dtype))  # statistics: real, >= float32
    placeholder = jnp.zeros((1,), dtype)
    if not _is_factored(hp, jnp.shape(p)):
        return placeholder, placeholder, jnp.zeros_like(p, dtype=dtype), placeholder, placeholder
    # The statistics' shapes (and shardings) as those of means of p over one of its last two dimensions.
    row = jnp.zeros_like(jax.eval_shape(functools.partial(jnp.mean, axis=-1), p), dtype=dtype)
    col = jnp.zeros_like(jax.eval_shape(functools.partial(jnp.mean, axis=-2), p), dtype=dtype)
    return row, col, placeholder, row, col


def _unzip(like: Any, tuples: Any, n: int) -> tuple:
    """n trees from a tree of n-tuples whose structure above the tuples is `like`'s."""
    return tuple(jax.tree.map(lambda _, r, i=i: r[i], like, tuples) for i in range(n))


def _init_came(hp: Hyperparams, params) -> ScaleByCameState:
    v_row, v_col, v, s_row, s_col = _unzip(params, jax.tree.map(functools.partial(_init_came_leaf, hp), params), 5)
    return ScaleByCameState(
        count=zero_count(), mu=tree.first_moment_like(params, hp.accumulator_dtype),
        v_row=v_row, v_col=v_col, v=v, s_row=s_row, s_col=s_col,
    )  # fmt: skip


def _rsqrt(x: jax.Array) -> jax.Array:
    """1 / sqrt(x) where x > 0, 0 where x <= 0 (with a finite gradient): a statistic that is 0 only
    where eps = 0 and every gradient it averages was 0, whose update is then 0, not 0 / 0."""
    positive = x > 0
    return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, x, 1)), 0)


def _times(x: jax.Array, r: jax.Array) -> jax.Array:
    """x * r for a real r, in x's dtype (complex x too), with no promotion between the two."""
    return x * r.astype(x.dtype)


def _ema(avg: jax.Array, new: jax.Array, decay: Any) -> jax.Array:
    return tree.ema(avg, new.astype(avg.dtype), decay)


def _factored_rsqrt(row: jax.Array, col: jax.Array) -> jax.Array:
    """1 / sqrt(row col^T / mean(row)): the root of the factored estimate, one value a coordinate."""
    mean = jnp.mean(row, axis=-1, keepdims=True)
    row_hat = jnp.where(mean > 0, row / jnp.where(mean > 0, mean, 1), 0)  # row / mean(row), 0 where mean = 0
    return _rsqrt(row_hat)[..., :, None] * _rsqrt(col)[..., None, :]


def _update_came_leaf(hp: Hyperparams, g, mu, v_row, v_col, v, s_row, s_col) -> tuple:
    if jnp.size(g) == 0:  # nothing to average: keep the (empty) state
        return jnp.zeros_like(g), mu, v_row, v_col, v, s_row, s_col
    dtype = v.dtype  # every statistic's: real, >= float32
    g = g.astype(tree.compute_dtype(g.dtype))
    g2 = tree.abs_sq(g).astype(dtype) + jnp.asarray(hp.eps1).astype(dtype)  # G2 = g^2 + eps1
    factored = _is_factored(hp, jnp.shape(g))
    if factored:
        v_row = _ema(v_row, jnp.mean(g2, axis=-1), hp.b2)  # r <- b2 r + (1 - b2) mean of G2 over the last dim
        v_col = _ema(v_col, jnp.mean(g2, axis=-2), hp.b2)  # c <- b2 c + (1 - b2) mean of G2 over the other
        u = _times(g, _factored_rsqrt(v_row, v_col))  # u = g / sqrt(r c^T / mean(r))
    else:
        v = _ema(v, g2, hp.b2)  # v <- b2 v + (1 - b2) G2
        u = _times(g, _rsqrt(v))  # u = g / sqrt(v)
    if hp.clipping_threshold is not None:  # u^ = u / max(1, rms(u) / d)
        ms = jnp.mean(tree.abs_sq(u))
        rms = jnp.where(ms > 0, jnp.sqrt(jnp.where(ms > 0, ms, 1)), 0)  # rms(u); a finite gradient at u = 0
        u = u / jnp.maximum(1, rms / jnp.asarray(hp.clipping_threshold).astype(rms.dtype)).astype(u.dtype)
    mu = _ema(mu, u, hp.b1)  # m <- b1 m + (1 - b1) u^
    m = mu.astype(u.dtype)
    if not factored:  # the authors' code: a leaf with no factored statistics takes m itself
        return m, mu, v_row, v_col, v, s_row, s_col
    instability = tree.abs_sq(u - m).astype(dtype) + jnp.asarray(hp.eps2).astype(dtype)  # U = (u^ - m)^2 + eps2
    s_row = _ema(s_row, jnp.mean(instability, axis=-1), hp.b3)  # R <- b3 R + (1 - b3) mean of U over the last dim
    s_col = _ema(s_col, jnp.mean(instability, axis=-2), hp.b3)  # C <- b3 C + (1 - b3) mean of U over the other
    delta = _times(m, _factored_rsqrt(s_row, s_col))  # delta = m / sqrt(R C^T / mean(R))
    return delta, mu, v_row, v_col, v, s_row, s_col


def _update_came(hp: Hyperparams, g, state: ScaleByCameState, params=None):
    require_leaves("scale_by_came", g)
    leaf = functools.partial(_update_came_leaf, hp)
    out = jax.tree.map(leaf, g, state.mu, state.v_row, state.v_col, state.v, state.s_row, state.s_col)
    u, mu, v_row, v_col, v, s_row, s_col = _unzip(g, out, 7)
    new = ScaleByCameState(
        count=next_count(state.count), mu=mu, v_row=v_row, v_col=v_col, v=v, s_row=s_row, s_col=s_col
    )
    return tree.cast_like(u, g), new


def scale_by_came(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.9999,
    eps1: float = 1e-30,
    eps2: float = 1e-16,
    clipping_threshold: float | None = 1.0,
    factored: bool = True,
    min_dim_size_to_factor: int = 1,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """CAME's direction (Luo et al., 2023, "CAME: Confidence-guided Adaptive Memory Efficient
    Optimization", Algorithm 1).

        G2 = g^2 + eps1
        a matrix (its last two dimensions, both >= min_dim_size_to_factor):
            r <- b2 r + (1 - b2) mean of G2 over the last dimension     (one value a row)
            c <- b2 c + (1 - b2) mean of G2 over the other dimension    (one value a column)
            v^ = r c^T / mean(r)
        any other leaf:
            v <- b2 v + (1 - b2) G2;   v^ = v
        u  = g / sqrt(v^)
        u^ = u / max(1, rms(u) / d)                           (d = clipping_threshold)
        m <- b1 m + (1 - b1) u^
        a matrix:
            U = (u^ - m)^2 + eps2                              (the instability)
            R <- b3 R + (1 - b3) mean of U over the last dimension
            C <- b3 C + (1 - b3) mean of U over the other dimension
            S^ = R C^T / mean(R)
            delta = m / sqrt(S^)
        any other leaf:
            delta = m

    delta is the update (`came` steps W <- W - eta delta).

    No bias correction, as in the paper and the authors' code: the clipping bounds u^ while v^ is
    still small, but S^ starts small too, so a matrix's first deltas are about (1 - b1) / (b1
    sqrt(1 - b3)) = 11 times u^'s size with the defaults (warm the learning rate up). The paper's
    row and column sums give the same v^ and S^ as these means. The authors' code
    (came-pytorch 0.1.3), which this equals to float64 rounding (tests/test_came.py), factors every
    leaf of two or more dimensions over its last two (`min_dim_size_to_factor=1`, the default;
    Adafactor's `scale_by_factored_rms` factors the two largest, if both >= 128) and gives a leaf
    that is not factored no instability: its delta is m itself; both are kept. The paper's
    Algorithm 1 is stated for matrices only. `clipping_threshold=None` skips the clipping.
    `accumulator_dtype` (alias `mu_dtype`) sets m's dtype; the statistics (state `ScaleByCameState`)
    are real and at least float32. `update` needs no params.

    >>> import gradtx
    >>> gradtx.scale_by_came()
    scale_by_came(b1=0.9, b2=0.999, b3=0.9999, eps1=1e-30, eps2=1e-16, clipping_threshold=1.0, factored=True,
                  min_dim_size_to_factor=1)
    """
    check(
        "scale_by_came",
        b1=(b1, UNIT), b2=(b2, UNIT), b3=(b3, UNIT), eps1=(eps1, NONNEG), eps2=(eps2, NONNEG),
        clipping_threshold=(clipping_threshold, POSITIVE + OR_NONE),
        min_dim_size_to_factor=(min_dim_size_to_factor, COUNT),
    )  # fmt: skip
    dtype = first_moment_dtype("scale_by_came", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_came", _init_came, _update_came,
        b1=b1, b2=b2, b3=b3, eps1=eps1, eps2=eps2, clipping_threshold=clipping_threshold, factored=factored,
        min_dim_size_to_factor=min_dim_size_to_factor, accumulator_dtype=dtype,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def came(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.9999,
    eps1: float = 1e-30,
    eps2: float = 1e-16,
    clipping_threshold: float | None = 1.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    factored: bool = True,
    min_dim_size_to_factor: int = 1,
    mu_dtype: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """CAME (Luo et al., 2023): `chain(scale_by_came(b1, b2, b3, eps1, eps2, clipping_threshold),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))`.

    See `scale_by_came`. W <- W - eta (delta + lambda W): the decay is scaled by the learning rate and
    not divided by the preconditioner, as came-pytorch's CAME(lr, eps=(eps1, eps2),
    clip_threshold, betas=(b1, b2, b3), weight_decay), which this equals. `mask` selects the leaves
    that decay. Like Adafactor, CAME needs each param leaf whole: packed params (`gradtx.pack`)
    are refused.

    >>> import gradtx
    >>> gradtx.came(2e-4)
    chain(scale_by_came(b1=0.9, b2=0.999, b3=0.9999, eps1=1e-30, eps2=1e-16, clipping_threshold=1.0, factored=True,
          min_dim_size_to_factor=1), add_decayed_weights(weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.0002, flip_sign=True))
    """
    check("came", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("came"):
        return chain(
            scale_by_came(
                b1,
                b2,
                b3,
                eps1,
                eps2,
                clipping_threshold,
                factored,
                min_dim_size_to_factor,
                mu_dtype,
                accumulator_dtype=accumulator_dtype,
            ),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByCameState", "came", "scale_by_came"]
