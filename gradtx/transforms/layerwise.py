"""Layerwise transformations: each parameter block gets its own scale, read from norms of that block.

A block is one leaf of the tree (a weight matrix, a bias vector, a convolution kernel). ||x|| is the
L2 (Frobenius) norm over all of a leaf's coordinates and rms(x) = ||x|| / sqrt(size of x).

    scale_by_trust_ratio(c):        u = g * c ||w|| / (||g|| + eps)     (1 where ||w|| = 0 or ||g|| = 0)
    scale_by_param_block_norm(m):   u = g * max(||w||, m)
    scale_by_param_block_rms(m):    u = g * max(rms(w), m)
    clip_by_block_rms(c):           u = g / max(1, rms(g) / c)
    scale_by_factored_rms:          Adafactor's second moment (Shazeer & Stern, 2018, Alg. 4 and 5):
        d_t = 1 - t^(-decay_rate)                                (t counts updates from 1)
        a matrix (its two largest dimensions >= min_dim_size_to_factor), G2 = g^2 + eps:
            r <- d_t r + (1 - d_t) mean of G2 over the largest dimension   (one value a row)
            c <- d_t c + (1 - d_t) mean of G2 over the other dimension     (one value a column)
            v^ = r c^T / mean(r)
        any other leaf:
            v <- d_t v + (1 - d_t) (g^2 + eps);   v^ = v
        u = g / sqrt(v^)

The trust ratio is LARS's (You et al., 2017) and LAMB's (You et al., 2019) layerwise learning rate:
each block moves by a step proportional to its own norm, whatever the size of its gradient. The
factored moment keeps one number a row and one a column of a matrix instead of one a coordinate
(memory n + m instead of n m); the paper's row and column *sums* give the same v^ as these means.

Dtypes: norms, ratios and the factored moments are real and at least float32 (the second-moment
policy of `gradtx.tree`); updates come back in the gradients' dtypes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, Updates, init_empty, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, check, require_params
from gradtx.combine import chain, masked
from gradtx.packing import require_leaves
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.momentum import trace
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


def _as(value: Any, like: jax.Array) -> jax.Array:
    """A hyperparameter (a number or a tracer) cast to the dtype of `like`, so that it changes no dtype."""
    return jnp.asarray(value).astype(like.dtype)


def _sum_sq(x: Any) -> jax.Array:
    """sum |x|^2 over a leaf, real and at least float32."""
    return jnp.sum(tree.abs_sq(x))


def _root_at_least(sq: jax.Array, floor: Any) -> jax.Array:
    """sqrt(sq), or `floor` where sqrt(sq) <= floor (optax's safe_norm), with a finite derivative at sq = 0."""
    positive = sq > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)  # d sqrt(x)/dx is inf at 0
    floor = _as(floor, root)
    return jnp.where(root <= floor, floor, root)


def _block_norm(x: Any, floor: Any = 0.0) -> jax.Array:
    """max(||x||, floor): the L2 norm of one leaf."""
    return _root_at_least(_sum_sq(x), floor)


def _block_rms(x: Any, floor: Any = 0.0) -> jax.Array:
    """max(rms(x), floor): the root mean square of one leaf (0 for a leaf of size 0)."""
    sq = _sum_sq(x)
    return _root_at_least(sq / max(int(np.size(x)), 1), floor)


def _map_with_params(f: Callable[[Any, Any], Any], updates: Updates, params: Any) -> Updates:
    """f(update, param) leaf by leaf; a None update (a frozen param) stays None."""
    return jax.tree.map(lambda u, p: None if u is None else f(u, p), updates, params, is_leaf=lambda x: x is None)


# ---------------------------------------------------------------------------------------------------
# Trust ratio (LARS, LAMB)


def _trust_ratio_leaf(hp: Hyperparams, u: jax.Array, w: jax.Array) -> jax.Array:
    w_norm = _block_norm(w, hp.min_norm)  # ||w||, at least min_norm
    u_norm = _block_norm(u, hp.min_norm)  # ||u||, at least min_norm
    dtype = np.promote_types(w_norm.dtype, u_norm.dtype)  # float64 if either is (explicitly: strict promotion)
    w_norm, u_norm = w_norm.astype(dtype), u_norm.astype(dtype)
    zero = (w_norm == 0) | (u_norm == 0)
    ratio = _as(hp.trust_coefficient, w_norm) * w_norm / (jnp.where(zero, 1, u_norm) + _as(hp.eps, u_norm))
    # A zero block (new, or zero-initialized like a bias) or a zero update would get ratio 0 or
    # 0 / 0: as optax, it keeps its update unscaled instead, so a zero-initialized block can move.
    ratio = jnp.where(zero, 1, ratio)  # r = c ||w|| / (||u|| + eps), or 1
    return tree.scale(ratio, u)  # u <- r u


def _update_trust_ratio(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_trust_ratio", updates)
    params = require_params("scale_by_trust_ratio", params)
    return _map_with_params(functools.partial(_trust_ratio_leaf, hp), updates, params), state


def scale_by_trust_ratio(
    min_norm: float = 0.0, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Scales each block's update by its trust ratio: the block's norm over its update's norm.

        r = c max(||w||, min_norm) / (max(||u||, min_norm) + eps)     (c = trust_coefficient)
        r = 1   where either norm is 0 (a zero-initialized block, a zero update)
        u <- r u

    One ratio a leaf: the layerwise learning rate of LARS (You et al., 2017) and LAMB (You et al.,
    2019), whose papers write it eta ||w|| / ||u||. After it, a block moves by c ||w|| (times the
    learning rate) whatever the size of its gradient. Same as optax's, zero-norm convention
    included; also finite under `jax.grad` through `update` at zero updates. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_trust_ratio(trust_coefficient=0.001)
    scale_by_trust_ratio(min_norm=0.0, trust_coefficient=0.001, eps=0.0)
    """
    check(
        "scale_by_trust_ratio",
        min_norm=(min_norm, NONNEG), trust_coefficient=(trust_coefficient, NONNEG), eps=(eps, NONNEG),
    )  # fmt: skip
    return transformation(
        "scale_by_trust_ratio", init_empty, _update_trust_ratio,
        min_norm=min_norm, trust_coefficient=trust_coefficient, eps=eps,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Scaling by the parameters' block norm or RMS (Adafactor's relative step size)


def _update_param_block_norm(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_param_block_norm", updates)
    params = require_params("scale_by_param_block_norm", params)
    scale = lambda u, w: tree.scale(_block_norm(w, hp.min_scale), u)  # u <- max(||w||, m) u
    return _map_with_params(scale, updates, params), state


def scale_by_param_block_norm(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each block's update by the norm of that block's parameters.

        u <- max(||w||, min_scale) u

    As optax's. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_param_block_norm()
    scale_by_param_block_norm(min_scale=0.001)
    """
    check("scale_by_param_block_norm", min_scale=(min_scale, NONNEG))
    return transformation("scale_by_param_block_norm", init_empty, _update_param_block_norm, min_scale=min_scale)


def _update_param_block_rms(hp: Hyperparams, updates, state, params=None):
    require_leaves("scale_by_param_block_rms", updates)
    params = require_params("scale_by_param_block_rms", params)
    scale = lambda u, w: tree.scale(_block_rms(w, hp.min_scale), u)  # u <- max(rms(w), m) u
    return _map_with_params(scale, updates, params), state


def scale_by_param_block_rms(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each block's update by the root mean square of that block's parameters.

        u <- max(rms(w), min_scale) u

    Adafactor's relative step size (Shazeer & Stern, 2018, Sec. 8): the step is proportional to
    the scale of the parameters, at least min_scale (the paper's eps2 = 1e-3) so that
    zero-initialized blocks move. As optax's. `update` needs params.

    >>> import gradtx
    >>> gradtx.scale_by_param_block_rms()
    scale_by_param_block_rms(min_scale=0.001)
    """
    check("scale_by_param_block_rms", min_scale=(min_scale, NONNEG))
    return transformation("scale_by_param_block_rms", init_empty, _update_param_block_rms, min_scale=min_scale)


# ---------------------------------------------------------------------------------------------------
# Clipping by block RMS


def _clip_block_rms_leaf(hp: Hyperparams, u: jax.Array) -> jax.Array:
    rms = _block_rms(u)
    c = _as(hp.threshold, rms)
    over = rms > c  # rms(u) > c >= 0, so rms(u) > 0 where the quotient is used
    factor = jnp.where(over, c / jnp.where(over, rms, 1), 1)  # 1 / max(1, rms(u) / c)
    return tree.scale(factor, u)  # u <- u / max(1, rms(u) / c)


def _update_clip_by_block_rms(hp: Hyperparams, updates, state, params=None):
    require_leaves("clip_by_block_rms", updates)
    return jax.tree.map(functools.partial(_clip_block_rms_leaf, hp), updates), state


def clip_by_block_rms(threshold: float) -> GradientTransformation:
    """Clips each block's update to a root mean square of at most `threshold`.

        u <- u / max(1, rms(u) / c)        (c = threshold >= 0)

    Adafactor's update clipping (Shazeer & Stern, 2018, Sec. 6, with d = c). As optax's, except
    that c = 0 gives zero updates where optax's divides by zero (NaN for zero updates).

    >>> import gradtx
    >>> gradtx.clip_by_block_rms(1.0)
    clip_by_block_rms(threshold=1.0)
    """
    check("clip_by_block_rms", threshold=(threshold, NONNEG))
    return transformation("clip_by_block_rms", init_empty, _update_clip_by_block_rms, threshold=threshold)


# ---------------------------------------------------------------------------------------------------
# Optimizers


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


__all__ = [
    "clip_by_block_rms",
    "lamb",
    "lars",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_trust_ratio",
]
