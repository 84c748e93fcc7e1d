"""NorMuon: Muon's orthogonalized update with each neuron normalized by its own RMS (Li et al., 2025).

    scale_by_normuon   O = NS(m^)                       (scale_by_muon's momentum and iteration)
                       v <- b2 v + (1 - b2) mean_in(O^2)  one entry per output neuron
                       O' = O / (sqrt(v) + eps');  u = O' ||O|| / (||O'|| + eps')   (Frobenius norms)
    normuon            muon's partition with scale_by_normuon for the matrices

Muon's U V^H has equal singular values but rows (neurons) of very different norms; NorMuon
divides each output neuron by a running RMS of its own, as Adam divides coordinates, and restores
the matrix's norm. References: Li et al. (2025), "NorMuon: Making Muon more efficient and
scalable", arXiv:2510.05491; tests/test_muon.py compares with pytorch_optimizer's NorMuon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from gradtx.checks import NONNEG, UNIT, ArgumentValueError, check
from gradtx.packing import require_leaves
from gradtx.transforms.muon import (
    coeffs_array,
    leaves_with_dims,
    matrices_then_adam,
    momentum,
    muon_arguments,
    orthogonalize_leaf,
)
from gradtx.transforms.newton_schulz import frobenius as _frobenius
from gradtx.transforms.newton_schulz import matrix_axes

UPDATE_SCALES = ("preserve_norm", "match_rms")


class NorMuonState(NamedTuple):
    """count: steps (int32); mu: the momentum m; nu: v, each output neuron's mean square of O (the
    param's shape with its reduction axes of size 1); ns_coeffs: the Newton-Schulz coefficients."""

    count: Count
    mu: Updates
    nu: Updates
    ns_coeffs: jax.Array


def _neuron_shape(leaf: Any, dims: Any) -> tuple[int, ...]:
    _, reduction, _ = matrix_axes(leaf, dims)
    return tuple(1 if a in reduction else n for a, n in enumerate(jnp.shape(leaf)))


def _init_normuon(hp: Hyperparams, params) -> NorMuonState:
    flat, treedef = jax.tree_util.tree_flatten(params)
    dims = [d for _, _, d in leaves_with_dims(hp.builder, hp.weight_dimension_numbers, params)]
    nu = [
        jnp.zeros(_neuron_shape(x, d), tree.real_dtype(tree.compute_dtype(jnp.result_type(x))))
        for x, d in zip(flat, dims, strict=True)
    ]
    mu = tree.first_moment_like(params, hp.accumulator_dtype)
    return NorMuonState(zero_count(), mu, jax.tree_util.tree_unflatten(treedef, nu), coeffs_array(hp))


def _normalize(hp: Hyperparams, o: jax.Array, nu: jax.Array, dims: Any) -> tuple[jax.Array, jax.Array]:
    _, reduction, output = matrix_axes(o, dims)
    matrix = reduction + output
    rows = max(1, math.prod(o.shape[a] for a in reduction))  # a zero-size matrix has a mean of 0, not NaN
    mean_sq = jnp.sum(tree.abs_sq(o), axis=reduction, keepdims=True) / rows
    v = hp.b2 * nu + (1 - hp.b2) * mean_sq.astype(nu.dtype)  # v <- b2 v + (1 - b2) mean_in(O^2)
    normed = o / (jnp.sqrt(v).astype(o.dtype) + hp.normalization_eps)  # O' = O / (sqrt(v) + eps')
    norm = _frobenius(normed, matrix) + hp.normalization_eps
    if hp.update_scale == "preserve_norm":  # u = O' ||O||_F / (||O'||_F + eps'): the authors' code
        return normed * (_frobenius(o, matrix) / norm).astype(o.dtype), v
    size = math.prod(o.shape[a] for a in matrix)
    return normed * (0.2 * size**0.5 / norm).astype(
        o.dtype
    ), v  # u = 0.2 sqrt(m n) O' / ||O'||_F: Algorithm 1's RMS 0.2


def _update_normuon(hp: Hyperparams, g, state: NorMuonState, params=None):
    require_leaves("scale_by_normuon", g)  # each matrix is a leaf: a packed buffer is none
    t = next_count(state.count)
    mu, m = momentum(hp, state.mu, g, t)
    flat, treedef = jax.tree_util.tree_flatten(m)
    dims = [d for _, _, d in leaves_with_dims(hp.builder, hp.weight_dimension_numbers, m)]
    nus = jax.tree.leaves(state.nu)
    pairs = [
        _normalize(hp, orthogonalize_leaf(hp, x, d, state.ns_coeffs), nu, d)  # O = NS(m^), then per neuron
        for x, nu, d in zip(flat, nus, dims, strict=True)
    ]
    u = jax.tree_util.tree_unflatten(treedef, [p[0] for p in pairs])
    nu = jax.tree_util.tree_unflatten(jax.tree.structure(state.nu), [p[1] for p in pairs])
    return tree.cast_like(u, g), NorMuonState(t, mu, nu, state.ns_coeffs)


def scale_by_normuon(
    ns_coeffs: Any = (3.4445, -4.775, 2.0315),
    ns_steps: int = 5,
    beta: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
    orthogonalize: Callable[[jax.Array], jax.Array] | None = None,
    momentum_form: str = "debiased",
    eps_floor: bool = False,
    normalization_eps: float = 1e-10,
    update_scale: str = "preserve_norm",
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NorMuon's direction (Li et al., 2025): Muon's, normalized neuron by neuron.

        m, m^, O = NS(m^)        as scale_by_muon (its arguments, same defaults)
        v <- b2 v + (1 - b2) mean_i O_ij^2           for each output j (neuron), over the reduction axes i
        O'_ij = O_ij / (sqrt(v_j) + normalization_eps)
        u = O' ||O||_F / (||O'||_F + normalization_eps)            update_scale="preserve_norm"
        u = 0.2 sqrt(fan_in fan_out) O' / (||O'||_F + normalization_eps)   update_scale="match_rms"

    A neuron is an index of the output axes of `weight_dimension_numbers` (a column of flax's
    (in, out) kernel, a row of torch's (out, in) weight: pass `MuonDimensionNumbers(1, 0)` for the
    latter). v is not bias-corrected, as in the paper's Algorithm 1 and the authors' code; norms
    are per matrix. "preserve_norm" keeps Muon's norm (the authors' code, pytorch_optimizer's
    default), "match_rms" gives RMS 0.2 (Algorithm 1, which then needs no `scale_by_shape`).
    pytorch_optimizer's NorMuon is `momentum_form="ema", eps=1e-7, eps_floor=True` with
    `MuonDimensionNumbers(1, 0)` (tests/test_muon.py).

    >>> import gradtx
    >>> gradtx.scale_by_normuon().hyperparams.b2
    0.95
    """
    check("scale_by_normuon", b2=(b2, UNIT), normalization_eps=(normalization_eps, NONNEG))
    if update_scale not in UPDATE_SCALES:
        raise ArgumentValueError(
            "scale_by_normuon", "update_scale", f"must be one of {UPDATE_SCALES}, got {update_scale!r}"
        )
    kwargs = muon_arguments("scale_by_normuon", dict(locals()))
    return transformation("scale_by_normuon", _init_normuon, _update_normuon, **kwargs)


def normuon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = (3.4445, -4.775, 2.0315),
    ns_steps: int = 5,
    beta: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    preconditioning: str = "frobenius",
    normalization_eps: float = 1e-10,
    update_scale: str = "preserve_norm",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: float | None = None,
    orthogonalize: Callable[[jax.Array], jax.Array] | None = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """NorMuon (Li et al., 2025) for the matrices, AdamW for every other leaf: `muon` with
    `scale_by_normuon` in place of `scale_by_muon`.

        matrices:  chain(scale_by_normuon(...), scale_by_shape(dims, consistent_rms),
                         add_decayed_weights(weight_decay, weight_decay_mask), scale_by_learning_rate(lr))
        the rest:  adamw(adam_learning_rate or lr, adam_b1, adam_b2, eps, adam_eps_root, ...)

    See `muon` for the arguments they share and `scale_by_normuon` for b2, normalization_eps and
    update_scale.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.normuon(0.02)
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    >>> sorted(tx.init(params).inner_states)
    ['adam', 'muon']
    """
    kwargs = dict(locals())

    def direction() -> GradientTransformation:
        return scale_by_normuon(
            ns_coeffs, ns_steps, beta, b2, eps, mu_dtype, nesterov=nesterov, preconditioning=preconditioning,
            weight_dimension_numbers=muon_weight_dimension_numbers, orthogonalize=orthogonalize,
            normalization_eps=normalization_eps, update_scale=update_scale, accumulator_dtype=accumulator_dtype,
        )  # fmt: skip

    return matrices_then_adam("normuon", direction, kwargs)


__all__ = ["NorMuonState", "normuon", "scale_by_normuon"]
