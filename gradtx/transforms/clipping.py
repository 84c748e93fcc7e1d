"""Clipping: bound the size of updates, coordinate by coordinate, unit by unit, or as a whole.

    clip(c):                   u = min(max(g, -c), c)                   (each coordinate)
    clip_by_global_norm(c):    u = g * c / ||g||  if ||g|| > c,  else g  (||.|| over all leaves)
    clip_by_leaf_norm(c):      u = g * c / ||g||  if ||g|| > c,  else g  (||.|| over each leaf alone)
    adaptive_grad_clip(l):     u = g * l max(||w||, eps) / ||g||  where that is below 1   (each unit)
    per_example_global_norm_clip(G, c):  u = sum_i g_i min(1, c / ||g_i||)   (g_i: example i's gradient in G)
    per_example_layer_norm_clip(G, c):   the same, leaf by leaf, with a share c_l of c per leaf
    global_norm(g):            ||g|| = sqrt(sum_i |g_i|^2)      (i over every coordinate of every leaf)

The lecture's rule "if ||dL/dW|| > u, use sign(dL/dW) u" is the one-coordinate picture: for a
scalar, g / |g| = sign(g), so a too-large gradient becomes sign(g) u, which is what `clip(u)` does to
each coordinate. For a vector, `clip_by_global_norm(u)` keeps the direction g / ||g|| (the vector's
"sign") and sets the length to u, so the step still points downhill; `clip` changes the direction.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, Updates, init_empty, transformation
from gradtx.checks import NONNEG, ArgumentTypeError, check, check_flag, require_params
from gradtx.packing import require_leaves


def _update_clip(hp: Hyperparams, updates, state, params=None):
    def leaf(g: jax.Array) -> jax.Array:
        g32 = g.astype(tree.compute_dtype(g.dtype))
        c = jnp.asarray(hp.max_delta).astype(g32.dtype)
        return jnp.clip(g32, -c, c).astype(g.dtype)  # u = min(max(g, -c), c)

    return jax.tree.map(leaf, updates), state


def clip(max_delta: float) -> GradientTransformation:
    """Clips each coordinate of the updates to [-max_delta, max_delta].

        u = min(max(g, -c), c),   c = max_delta >= 0

    The lecture's "sign(dL/dW) u" applied coordinate by coordinate (see the module docstring).
    Same as optax.clip and torch.nn.utils.clip_grad_value_. c = 0 gives zero updates.

    >>> import gradtx
    >>> gradtx.clip(1.0)
    clip(max_delta=1.0)
    """
    check("clip", max_delta=(max_delta, NONNEG))
    return transformation("clip", init_empty, _update_clip, max_delta=max_delta)


def _update_clip_by_global_norm(hp: Hyperparams, updates, state, params=None):
    sq = tree.sum_sq(updates)  # ||g||^2 over all leaves, in >= float32
    c = jnp.asarray(hp.max_norm).astype(sq.dtype)
    over = jnp.sqrt(sq) > c  # ||g|| > c
    # ||g|| > c >= 0 means ||g|| > 0, so c / ||g|| is finite where it is used; the inner `where`
    # also keeps jax.grad through update finite at g = 0 (d sqrt(x) / dx is infinite at 0).
    factor = jnp.where(over, c / jnp.sqrt(jnp.where(over, sq, 1)), 1)  # s = c / ||g|| or 1
    return tree.scale(factor, updates), state  # u = s g


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the updates so that their global L2 norm is at most max_norm (Pascanu et al., 2013).

        ||g|| = sqrt(sum_i |g_i|^2)                      (i over every coordinate of every leaf)
        u = g * c / ||g||   if ||g|| > c,   else g        (c = max_norm >= 0)

    One norm over the whole tree, so the direction of the update is kept. Same as optax's and as
    torch.nn.utils.clip_grad_norm_ (which adds 1e-6 to the norm), except that it is finite where
    optax is not: optax computes c / ||g|| also for ||g|| = 0, which gives NaN for c = 0 and zero
    gradients, and NaN gradients through `update` at zero gradients. Here zero gradients stay zero
    and c = 0 gives zero updates.

    >>> import gradtx
    >>> gradtx.clip_by_global_norm(1.0)
    clip_by_global_norm(max_norm=1.0)
    """
    check("clip_by_global_norm", max_norm=(max_norm, NONNEG))
    return transformation("clip_by_global_norm", init_empty, _update_clip_by_global_norm, max_norm=max_norm)


def _update_clip_by_leaf_norm(hp: Hyperparams, updates, state, params=None):
    require_leaves("clip_by_leaf_norm", updates)  # a norm per leaf: packing would merge the leaves

    def leaf(g: jax.Array) -> jax.Array:
        g32 = g.astype(tree.compute_dtype(g.dtype))
        sq = jnp.sum(tree.abs_sq(g32))  # ||g||^2 of this leaf
        c = jnp.asarray(hp.max_norm).astype(sq.dtype)
        over = jnp.sqrt(sq) > c  # as clip_by_global_norm: c / ||g|| only where ||g|| > c >= 0
        factor = jnp.where(over, c / jnp.sqrt(jnp.where(over, sq, 1)), 1)  # s = c / ||g|| or 1
        return (g32 * factor.astype(g32.dtype)).astype(g.dtype)  # u = s g, a real factor for complex g

    return jax.tree.map(leaf, updates), state


def clip_by_leaf_norm(max_norm: float) -> GradientTransformation:
    """Rescales each leaf of the updates so that its own L2 norm is at most max_norm.

        ||g|| = sqrt(sum_i |g_i|^2)   (i over the coordinates of one leaf)
        u = g c / ||g||   if ||g|| > c,   else g        (c = max_norm >= 0, for each leaf)

    `clip_by_global_norm` leaf by leaf: each variable keeps its direction, and a leaf with a large
    gradient is not allowed to shrink the others' steps. Keras's `clipnorm` (its optimizers'
    `g c / max(||g||, c)`, TF's `tf.clip_by_norm` of each variable); optax 0.2.8 has no per-leaf
    norm clip (`clip_by_block_rms` bounds the RMS, ||g|| / sqrt(n), not the norm). Zero gradients
    stay zero; c = 0 gives zero updates (Keras treats clipnorm = 0 as off). Stateless; each leaf
    is a block, so it refuses packed updates (`gradtx.pack`).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.clip_by_leaf_norm(1.0)
    >>> u, _ = tx.update({"a": jnp.asarray([3.0, 4.0]), "b": jnp.asarray([0.3, 0.4])}, tx.init(None))
    >>> print(u["a"], u["b"])  # a has norm 5: clipped to 1; b has norm 0.5: kept
    [0.6 0.8] [0.3 0.4]
    """
    check("clip_by_leaf_norm", max_norm=(max_norm, NONNEG))
    return transformation("clip_by_leaf_norm", init_empty, _update_clip_by_leaf_norm, max_norm=max_norm)


def global_norm(updates: Updates) -> jax.Array:
    """The global L2 norm of a tree: sqrt of the sum of |g|^2 over all leaves and coordinates.

        ||g|| = sqrt(sum_leaves sum_coordinates |g|^2)

    The norm `clip_by_global_norm` compares with its threshold. optax's `global_norm` (which optax
    deprecates in favour of `optax.tree.norm`); here it is `gradtx.tree.norm(updates)`, which also
    takes optax's `ord` and `squared`. Accumulated in at least float32.

    >>> import jax.numpy as jnp, gradtx
    >>> print(gradtx.global_norm({"a": jnp.asarray([3.0]), "b": jnp.asarray([4.0])}))
    5.0
    """
    return tree.norm(updates)


# ---------------------------------------------------------------------------------------------------
# Adaptive gradient clipping (NFNets)


def _unit_sum_sq(x: jax.Array, axis: Any) -> jax.Array:
    """sum |x|^2 over each unit of x, kept with singleton dimensions (broadcasts against x).

    A unit is what one output sees: the whole of a vector (or of a scalar, or of an array with at
    most one dimension longer than 1), the input dimension 0 of a dense kernel (in, out) or of a
    (in, heads, out) one, the spatial and input dimensions of a convolution kernel (H, W, in, out)
    or (D, H, W, in, out): optax's and the paper's convention. `axis` overrides it.
    """
    sq = tree.abs_sq(x)
    if axis is None:
        if sum(d != 1 for d in x.shape) <= 1:  # at most one dimension longer than 1
            axis = tuple(range(x.ndim))
        elif x.ndim in (2, 3):
            axis = 0
        elif x.ndim in (4, 5):
            axis = tuple(range(x.ndim - 1))
        else:
            raise ValueError(
                f"adaptive_grad_clip: a leaf of shape {x.shape} has no default unit (the defaults cover"
                " 1 to 5 dimensions); pass axis= the dimensions one unit spans"
            )
    return jnp.sum(sq, axis=axis, keepdims=True)


def _safe_root(sq: jax.Array) -> jax.Array:
    """sqrt(sq) with a finite derivative at sq = 0 (where d sqrt/dx is infinite and inf * 0 is NaN); NaN stays NaN."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), sq)  # sq itself where it is 0 or NaN


def _agc_leaf(hp: Hyperparams, g: jax.Array, w: jax.Array) -> jax.Array:
    g_norm = _safe_root(_unit_sum_sq(g, hp.axis))  # ||g|| of each unit
    w_norm = _safe_root(_unit_sum_sq(w, hp.axis))  # ||w|| of each unit
    dtype = np.promote_types(g_norm.dtype, w_norm.dtype)  # float64 if either is (strict promotion)
    g_norm, w_norm = g_norm.astype(dtype), w_norm.astype(dtype)
    clipping, eps = (jnp.asarray(v).astype(dtype) for v in (hp.clipping, hp.eps))  # tracers too
    max_norm = clipping * jnp.maximum(w_norm, eps)  # l max(||w||, eps)
    # Where ||g|| >= max_norm >= 0, ||g|| > 0 unless max_norm = 0 (clipping = 0: u = 0). The floor
    # 1e-6 (optax's) only guards 0 / 0 there; a NaN ||g|| fails the comparison and gives NaN.
    factor = jnp.where(g_norm < max_norm, 1, max_norm / jnp.maximum(g_norm, 1e-6))
    g32 = g.astype(tree.compute_dtype(g.dtype))
    return (g32 * factor.astype(g32.dtype)).astype(g.dtype)  # a real factor, complex g too


def _update_adaptive_grad_clip(hp: Hyperparams, updates, state, params=None):
    require_leaves("adaptive_grad_clip", updates)  # units are read from each leaf's shape
    params = require_params("adaptive_grad_clip", params)
    clipped = jax.tree.map(
        lambda g, w: None if g is None else _agc_leaf(hp, g, w), updates, params, is_leaf=lambda x: x is None
    )
    return clipped, state


def adaptive_grad_clip(clipping: float, eps: float = 1e-3, axis: int | tuple[int, ...] | None = None):
    """Clips each unit's update to at most `clipping` times its weights' norm (Brock et al., 2021).

        ||.|| over one unit (a column of a dense kernel, one output's filter of a convolution)
        u = g                                  where ||g|| < l max(||w||, eps)
        u = g * l max(||w||, eps) / ||g||      elsewhere            (l = clipping >= 0)

    Adaptive gradient clipping, from NFNets ("High-Performance Large-Scale Image Recognition
    Without Normalization", Brock et al., 2021): the bound is relative to the weights, so a unit
    cannot change by more than the fraction l of its size in one step; eps keeps zero-initialized
    weights (biases) from being frozen. Units as optax's `adaptive_grad_clip` (see `_unit_sum_sq`);
    `axis` names the dimensions a unit spans for other layouts (`axis=None`: the defaults, which
    cover leaves of 1 to 5 dimensions). Same numbers as optax; finite under `jax.grad` through
    `update` at zero gradients (optax's is NaN there). Stateless; `update` needs params.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.adaptive_grad_clip(0.1)
    >>> w = {"kernel": jnp.ones((2, 3))}
    >>> u, _ = tx.update({"kernel": jnp.full((2, 3), 10.0)}, tx.init(w), w)
    >>> print(u["kernel"][0])  # each column of w has norm sqrt(2): its update is clipped to 0.1 sqrt(2)
    [0.1 0.1 0.1]
    """
    check("adaptive_grad_clip", clipping=(clipping, NONNEG), eps=(eps, NONNEG))
    axes = (axis,) if isinstance(axis, int) else axis
    if axes is not None and (
        not isinstance(axes, tuple) or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    ):
        raise ArgumentTypeError("adaptive_grad_clip", "axis", f"must be None, an int or a tuple of ints, got {axis!r}")
    return transformation(
        "adaptive_grad_clip", init_empty, _update_adaptive_grad_clip, clipping=clipping, eps=eps, axis=axis
    )


# ---------------------------------------------------------------------------------------------------
# Per-example clipping (DP-SGD): functions of a batch of per-example gradients, not transformations


def _check_batch(name: str, grads: Updates) -> Any:
    leaves = jax.tree.leaves(grads)
    sizes = {jnp.shape(g)[0] if jnp.ndim(g) else None for g in leaves}
    if not leaves or None in sizes or len(sizes) != 1:
        shapes = jax.tree.map(jnp.shape, grads)
        raise ValueError(
            f"{name}: grads must hold per-example gradients, every leaf with the batch on axis 0 (the same"
            f" number of examples in every leaf), got shapes {shapes}"
        )
    return sizes.pop()


def _clipped_sum(grads: Updates, c: Any) -> tuple[Updates, jax.Array]:
    """sum_i g_i min(1, c / ||g_i||) and how many examples were clipped, ||g_i|| over every leaf of grads."""
    parts = [jnp.sum(tree.abs_sq(g).reshape(g.shape[0], -1), axis=1) for g in jax.tree.leaves(grads)]
    dtype = np.result_type(*[p.dtype for p in parts])  # float64 if any leaf is (strict promotion)
    norm = _safe_root(functools.reduce(jnp.add, [p.astype(dtype) for p in parts]))  # ||g_i|| for each example i
    c = jnp.asarray(c).astype(norm.dtype)
    # s_i = min(1, c / ||g_i||); 1 where ||g_i|| = 0 (optax: nan_to_num(0 / 0) = 1), and c = inf
    # keeps every example whole. A NaN gradient gives a NaN s_i and a NaN sum.
    s = jnp.where(norm > c, c / jnp.where(norm > 0, norm, 1), jnp.where(jnp.isnan(norm), norm, 1))
    num_clipped = jnp.sum(s < 1, dtype=jnp.int32)

    def weighted_sum(g: jax.Array) -> jax.Array:  # sum_i s_i g_i, in at least float32
        g32 = g.astype(tree.compute_dtype(g.dtype))
        return jnp.tensordot(s.astype(tree.real_dtype(g32.dtype)), g32, axes=1).astype(g.dtype)

    return jax.tree.map(weighted_sum, grads), num_clipped


def per_example_global_norm_clip(grads: Updates, l2_norm_clip: float) -> tuple[Updates, jax.Array]:
    """Clips each example's gradient to global norm l2_norm_clip and sums them (Abadi et al., 2016).

        grads: a tree whose every leaf holds one gradient per example on axis 0, g_i for example i
        s_i = min(1, c / ||g_i||)       (||g_i|| over all leaves of example i; c = l2_norm_clip)
        returns (sum_i s_i g_i, the number of examples with s_i < 1)

    The clipping step of DP-SGD ("Deep Learning with Differential Privacy", Abadi et al., 2016): no
    one example moves the sum by more than c. A function of a batch, not a transformation, as in
    optax; same numbers and outputs. An example with zero gradients has s_i = 1; c = inf clips
    nothing; a NaN gradient makes the sum NaN (optax's turns a NaN norm into s_i = 1, leaving the
    NaN in the sum as well).

    >>> import jax.numpy as jnp, gradtx
    >>> grads = [jnp.asarray([[0.0, 3.0, 4.0], [0.6, 0.8, 0.0]])]  # two examples, norms 5 and 1
    >>> summed, num_clipped = gradtx.per_example_global_norm_clip(grads, 1.0)
    >>> print(summed[0], num_clipped)
    [0.6 1.4 0.8] 1
    """
    _check_batch("per_example_global_norm_clip", grads)
    check("per_example_global_norm_clip", l2_norm_clip=(l2_norm_clip, "[0, inf]"))
    return _clipped_sum(grads, l2_norm_clip)


def per_example_layer_norm_clip(
    grads: Updates, global_l2_norm_clip: float, uniform: bool = True
) -> tuple[Updates, Updates]:
    """Clips each example's gradient leaf by leaf, each leaf to its share of the bound, and sums them.

        c_l = c / sqrt(L)                (uniform=True; L leaves, c = global_l2_norm_clip)
        c_l = c sqrt(D_l / D)            (uniform=False; D_l coordinates of leaf l per example, D all)
        s_il = min(1, c_l / ||g_il||);   returns ({l: sum_i s_il g_il}, {l: #examples with s_il < 1})

    Per-layer clipping of DP federated learning (McMahan et al., 2018, "Learning Differentially
    Private Recurrent Language Models"): sum_l c_l^2 = c^2, so every example is still bounded by c
    overall. As optax's: a function of a batch (every leaf with the examples on axis 0), the counts
    a tree with the gradients' structure. With one leaf it is `per_example_global_norm_clip`.

    >>> import jax.numpy as jnp, gradtx
    >>> grads = {"a": jnp.asarray([[3.0, 4.0]]), "b": jnp.asarray([[0.0, 0.5]])}
    >>> sums, clipped = gradtx.per_example_layer_norm_clip(grads, 2 ** 0.5)  # c_l = 1
    >>> print(sums["a"], clipped["a"], clipped["b"])
    [0.6 0.8] 1 0
    """
    _check_batch("per_example_layer_norm_clip", grads)
    check("per_example_layer_norm_clip", global_l2_norm_clip=(global_l2_norm_clip, "[0, inf]"))
    uniform = check_flag("per_example_layer_norm_clip", "uniform", uniform)
    leaves, treedef_ = jax.tree.flatten(grads)
    treedef: Any = treedef_  # PyTreeDef's stubs lack unflatten
    sizes = [int(np.prod(g.shape[1:])) for g in leaves]
    shares = [1 / len(leaves) if uniform else d / max(sum(sizes), 1) for d in sizes]
    out = [_clipped_sum(g, global_l2_norm_clip * share**0.5) for g, share in zip(leaves, shares, strict=True)]
    return treedef.unflatten([o[0] for o in out]), treedef.unflatten([o[1] for o in out])


__all__ = [
    "adaptive_grad_clip",
    "clip",
    "clip_by_global_norm",
    "clip_by_leaf_norm",
    "global_norm",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
]
