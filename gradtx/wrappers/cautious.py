"""Caution: the update kept only where it agrees in sign with what it is compared against.

    cautious(t):                   u = t(g) phi s,  phi = [t(g) g > 0],  s = d / (nnz(phi) + 1)  (Liang et al., 2024)
    add_cautious_decayed_weights:  u = g + lambda [g W >= 0] W                                   (Chen et al., 2025)

`cautious` wraps any transformation; its state is `CautiousState(inner_state)`. The rescaling s is
per leaf (a leaf's d entries, nnz(phi) of them kept), so it needs the params tree's leaves, not a
packed buffer. `add_cautious_decayed_weights` is elementwise, a variant of `add_decayed_weights`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    GradientTransformation,
    Hyperparams,
    OptState,
    Params,
    ScalarOrSchedule,
    init_empty,
    next_count,
    transformation,
    value_at,
)
from gradtx.checks import SCHEDULE, ArgumentValueError, check, check_flag, require_params
from gradtx.combine import check_mask_leaves, check_members, is_function, masked, wrapper
from gradtx.packing import require_leaves
from gradtx.transforms.regularization import AddDecayedWeightsState, _init_decay_schedule

# ---------------------------------------------------------------------------------------------------
# cautious

NORMALIZATIONS = ("paper", "mean", None)


class CautiousState(NamedTuple):
    """inner_state: the wrapped transformation's state."""

    inner_state: OptState


def _init_cautious(hp: Hyperparams, params) -> CautiousState:
    return CautiousState(inner_state=hp.args[0].init(params))


def _dot(u: jax.Array, v: jax.Array) -> jax.Array:
    """u v elementwise in their wider dtype (cast explicitly: either may be the other's compute dtype);
    for complex leaves Re(conj(u) v), the coordinate's inner product, whose sign says whether they agree."""
    with jax.numpy_dtype_promotion("standard"):  # the wider of the two, chosen here once (then cast explicitly)
        dtype = jnp.promote_types(u.dtype, v.dtype)
    u, v = u.astype(dtype), v.astype(dtype)
    return jnp.real(jnp.conj(u) * v) if jnp.iscomplexobj(u) else u * v


def _agrees(hp: Hyperparams, u: jax.Array, g: jax.Array) -> jax.Array:
    """phi = [u g > 0] (the same sign), or [u g < 0] where u is a descent step (`descent=True`)."""
    dot = _dot(u, g)
    return dot < 0 if hp.descent else dot > 0


def _cautious_leaf(hp: Hyperparams, u: jax.Array, g: jax.Array) -> jax.Array:
    dtype = tree.compute_dtype(u.dtype)
    x = u.astype(dtype)
    phi = _agrees(hp, x, g).astype(tree.real_dtype(dtype))
    if hp.normalization == "paper":  # s = d / (nnz(phi) + 1): the update's size kept as entries are zeroed
        phi = phi * (phi.size / (jnp.sum(phi) + 1))
    elif hp.normalization == "mean":  # s = 1 / max(mean(phi), 1e-3): the authors' code
        phi = phi / jnp.maximum(jnp.mean(phi), 1e-3)
    return (x * phi.astype(x.dtype)).astype(u.dtype)


def _update_cautious(hp: Hyperparams, g, state: CautiousState, params=None, **extra_args):
    require_leaves("cautious", g)
    u, inner_state = hp.args[0].update(g, state.inner_state, params, **extra_args)
    u = jax.tree.map(lambda x, y: None if x is None else _cautious_leaf(hp, x, y), u, g, is_leaf=lambda x: x is None)
    return u, CautiousState(inner_state=inner_state)


def cautious(inner: Any, normalization: str | None = "paper", *, descent: bool = False) -> GradientTransformation:
    """`inner`'s update kept where its sign agrees with the gradient's (Liang et al., 2024, Cautious Optimizers).

        u   = inner(g)
        phi = [u g > 0]                                   (1 where u and g have the same sign, else 0)
        u'  = u * phi * s                                 (per leaf of d entries)
        s   = d / (nnz(phi) + 1)        normalization="paper"  (the paper's; pytorch_optimizer's)
            = 1 / max(mean(phi), 1e-3)  normalization="mean"   (the authors' C-Optim code)
            = 1                         normalization=None

    Wrap a direction, before the learning rate: `chain(cautious(scale_by_adam()), add_decayed_weights(wd),
    scale_by_learning_rate(lr))` is C-AdamW, `chain(cautious(scale_by_lion()), ...)` C-Lion (the
    weight decay is not masked, as in the paper). A whole optimizer's update is a descent step,
    of the gradient's opposite sign: wrap one with `descent=True`, which keeps [u g < 0]. With
    normalization="paper", `chain(cautious(scale_by_lion(b1, b2)), add_decayed_weights(wd),
    scale_by_learning_rate(lr))` is pytorch_optimizer 4.1.0's `Lion(cautious=True)`
    (tests/test_cautious.py). The state is `CautiousState(inner_state)`; keyword
    arguments go on to `inner`. Needs the params tree's leaves (not a buffer packed by `gradtx.pack`).

    >>> import gradtx
    >>> gradtx.cautious(gradtx.scale_by_lion())
    cautious(scale_by_lion(b1=0.9, b2=0.99, mode='hard', smooth_beta=1.0), normalization='paper', descent=False)
    """
    check_members("cautious", (inner,))
    if normalization not in NORMALIZATIONS:
        raise ArgumentValueError("cautious", "normalization", f"must be one of {NORMALIZATIONS}, got {normalization!r}")
    descent = check_flag("cautious", "descent", descent)
    return wrapper("cautious", _init_cautious, _update_cautious, inner, normalization=normalization, descent=descent)


# ---------------------------------------------------------------------------------------------------
# Cautious weight decay


def _update_cautious_decay(hp: Hyperparams, g, state, params=None):
    params = require_params("add_cautious_decayed_weights", params)
    if callable(hp.weight_decay):
        lam = value_at(hp.weight_decay, state.count)
        state = AddDecayedWeightsState(count=next_count(state.count))
    elif isinstance(hp.weight_decay, int | float) and hp.weight_decay == 0:
        return g, state  # a zero constant adds nothing, not even 0 * inf = nan
    else:
        lam = hp.weight_decay

    def decay(g_leaf: Any, p_leaf: Any) -> Any:
        if g_leaf is None:  # a frozen leaf (grad None) stays None
            return None
        same = _dot(g_leaf, p_leaf) >= 0  # [u W >= 0]: the step already shrinks W there
        return tree.add_scale(g_leaf, lam, jnp.where(same, p_leaf, jnp.zeros_like(p_leaf)))  # u + lambda [u W >= 0] W

    return jax.tree.map(decay, g, params, is_leaf=lambda x: x is None), state


def add_cautious_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any | Callable[[Params], Any] | None = None,
) -> GradientTransformation:
    """Weight decay only where the update and the param have the same sign (Chen et al., 2025, Cautious Weight Decay).

        u' = u + lambda [u W >= 0] W          (lambda = weight_decay >= 0, a number or a schedule)

    With W <- W - eta u', a coordinate decays only where the step -eta u already moves W toward 0:
    the decay then never pushes against the optimizer. Place it where decoupled weight decay goes,
    after the preconditioner and before the learning rate (`chain(scale_by_adam(),
    add_cautious_decayed_weights(0.1), scale_by_learning_rate(lr))`), so that u is the direction
    the step subtracts. A schedule is evaluated at k = updates already applied (state
    `AddDecayedWeightsState(count)`, else `EmptyState()`); `mask` selects the leaves that decay, as
    in `add_decayed_weights`. For complex leaves the sign of Re(conj(u) W). `update` needs params.

    >>> import gradtx
    >>> gradtx.add_cautious_decayed_weights(0.1)
    add_cautious_decayed_weights(weight_decay=0.1)
    """
    builder = "add_cautious_decayed_weights"
    check(builder, weight_decay=(weight_decay, "[0, inf)" + SCHEDULE))
    if mask is not None and not is_function(mask):
        check_mask_leaves(builder, mask)
    init = _init_decay_schedule if callable(weight_decay) else init_empty
    decay = transformation(builder, init, _update_cautious_decay, weight_decay=weight_decay)
    return decay if mask is None else masked(decay, mask)


__all__ = ["CautiousState", "add_cautious_decayed_weights", "cautious"]
