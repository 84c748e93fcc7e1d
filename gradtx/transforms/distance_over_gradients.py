"""DoG, distance over gradients: a step size read from how far the parameters have moved, over the
root of the sum of the squared gradients seen (Ivgi et al., 2023), one per leaf (their "LDoG").

    scale_by_distance_over_gradients   r <- max(r, ||W - W_0||);  G <- G + ||g||^2
                                       u = s r / sqrt(G + eps) g
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, Updates, transformation
from gradtx.checks import NONNEG, POSITIVE, REAL, check, check_dtype, require_params
from gradtx.packing import require_leaves


class ScaleByDistanceOverGradientsState(NamedTuple):
    """max_dist: r, per leaf the largest distance from W_0 so far; grad_sum_of_squares: G, per leaf
    the sum of ||g||^2 (both one real scalar a leaf, at least float32); init_params: W_0. optax's
    field names."""

    max_dist: Updates  # one number a leaf
    grad_sum_of_squares: Updates  # one number a leaf
    init_params: Updates


def _stat_dtype(x: Any) -> np.dtype:
    return tree.real_dtype(tree.compute_dtype(jnp.result_type(x)))  # a norm: real, >= float32


def _copy_dtype(hp: Hyperparams, p: Any) -> np.dtype:
    """W_0's dtype: the params' own, or param_dtype (of the params' kind: complex params stay complex)."""
    dtype = jnp.result_type(p)
    if hp.param_dtype is None:
        return np.dtype(dtype)
    return np.dtype(np.promote_types(hp.param_dtype, dtype) if jnp.iscomplexobj(p) else hp.param_dtype)


def _norm(x: jax.Array) -> jax.Array:
    """||x||, with a zero derivative at x = 0 (jax.grad through update at W = W_0: never inf * 0)."""
    sq = jnp.sum(tree.abs_sq(x))
    zero = sq == 0  # False for NaN: a NaN stays NaN
    return jnp.where(zero, jnp.zeros_like(sq), jnp.sqrt(jnp.where(zero, jnp.ones_like(sq), sq)))


def _distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """||x - y|| in the wider of the two dtypes (at least float32)."""
    dtype = np.promote_types(tree.compute_dtype(x.dtype), tree.compute_dtype(y.dtype))
    return _norm(x.astype(dtype) - y.astype(dtype))


def _init_leaf(hp: Hyperparams, p: jax.Array) -> tuple:
    norm = _norm(p).astype(_stat_dtype(p))
    r = jnp.asarray(hp.reps_rel).astype(norm.dtype) * (1 + norm)  # r_0 = reps_rel (1 + ||W_0||)
    return r, jnp.zeros([], _stat_dtype(p)), p.astype(_copy_dtype(hp, p))


def _init_dog(hp: Hyperparams, params) -> ScaleByDistanceOverGradientsState:
    out = jax.tree.map(functools.partial(_init_leaf, hp), params)
    r, sum_sq, w0 = (jax.tree.map(lambda _, o, i=i: o[i], params, out) for i in range(3))
    return ScaleByDistanceOverGradientsState(max_dist=r, grad_sum_of_squares=sum_sq, init_params=w0)


def _update_leaf(hp: Hyperparams, g, w, r, sum_sq, w0) -> tuple:
    r = jnp.maximum(r, _distance(w, w0).astype(r.dtype))  # r <- max(r, ||W - W_0||)
    sum_sq = sum_sq + jnp.sum(tree.abs_sq(g)).astype(sum_sq.dtype)  # G <- G + ||g||^2
    root = jnp.sqrt(sum_sq + jnp.asarray(hp.eps).astype(sum_sq.dtype))
    # root = 0 only while every gradient was 0 (eps = 0): u = 0 then, never 0 / 0.
    eta = jnp.asarray(hp.global_scale).astype(r.dtype) * r / jnp.where(root == 0, jnp.ones_like(root), root)
    return tree.scale(eta, g), r, sum_sq  # u = s r / sqrt(G + eps) g


def _update_dog(hp: Hyperparams, g, state: ScaleByDistanceOverGradientsState, params=None):
    require_leaves("scale_by_distance_over_gradients", g)
    params = require_params("scale_by_distance_over_gradients", params)
    leaf = functools.partial(_update_leaf, hp)
    out = jax.tree.map(leaf, g, params, state.max_dist, state.grad_sum_of_squares, state.init_params)
    u, r, sum_sq = (jax.tree.map(lambda _, o, i=i: o[i], g, out) for i in range(3))
    return u, ScaleByDistanceOverGradientsState(max_dist=r, grad_sum_of_squares=sum_sq, init_params=state.init_params)


def scale_by_distance_over_gradients(
    reps_rel: float = 1e-6, eps: float = 1e-8, param_dtype: Any = None, global_scale: float = 1.0
) -> GradientTransformation:
    """Layer-wise DoG (Ivgi et al., 2023): a learning-rate-free step size for each leaf.

        r_0 = reps_rel (1 + ||W_0||)
        r  <- max(r, ||W - W_0||)          (W: the params this update is applied to)
        G  <- G + ||g||^2
        u   = s r / sqrt(G + eps) g        (s = global_scale; 0 while G + eps = 0)

    Norms are per leaf; `update` needs params. The authors recommend averaging the iterates.
    optax's numbers and state, except for the copy W_0: `param_dtype` None (the default) keeps it
    in the params' own dtype, where optax's default float32 rounds float64 params (then r, a
    difference of nearby numbers, loses up to all its digits in a float64 run); param_dtype=
    jnp.float32 gives optax's numbers. r and G are scalars (optax keeps G of shape (1,), which turns
    a scalar param's update into shape (1,)), real and at least float32.

    >>> import gradtx
    >>> gradtx.scale_by_distance_over_gradients()
    scale_by_distance_over_gradients(reps_rel=1e-06, eps=1e-08, global_scale=1.0)
    """
    check(
        "scale_by_distance_over_gradients",
        reps_rel=(reps_rel, POSITIVE), eps=(eps, NONNEG), global_scale=(global_scale, REAL),
    )  # fmt: skip
    dtype = check_dtype("scale_by_distance_over_gradients", "param_dtype", param_dtype)
    return transformation(
        "scale_by_distance_over_gradients", _init_dog, _update_dog,
        reps_rel=reps_rel, eps=eps, param_dtype=dtype, global_scale=global_scale,
    )  # fmt: skip


__all__ = ["ScaleByDistanceOverGradientsState", "scale_by_distance_over_gradients"]
