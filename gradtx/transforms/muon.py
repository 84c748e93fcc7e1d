"""Muon: momentum orthogonalized by Newton-Schulz (Jordan et al., 2024), and its shape scaling.

    scale_by_muon    m <- beta m + (1 - beta) g;  m^ = m / (1 - beta^t)  (Nesterov: beta m^_{t+1} + (1 - beta) g^)
                     u = NS(m^) ~ U V^H for m^ = U S V^H                      (newton_schulz.py)
    scale_by_shape   u <- sqrt(max(1, fan_out / fan_in)) u,  or  consistent_rms sqrt(max(fan_in, fan_out)) u
    muon             partition: matrices chain(scale_by_muon, scale_by_shape, add_decayed_weights,
                     scale_by_learning_rate); every other leaf adamw

Muon is steepest descent under the spectral norm: the update with the largest decrease of a linear
model of the loss among those of spectral norm 1 is U V^H (Bernstein & Newhouse, 2024). It is for
the hidden layers' matrices; embeddings, heads, biases and gains take AdamW, as `muon` does. The
momentum, the orthogonalization and the scaling follow optax 0.2.8's `optax.contrib.muon` exactly
(tests/test_optax_reference.py: float64 trajectories to rtol 1e-9); `momentum_form`, `eps_floor`
and the dimension numbers give torch.optim.Muon's, Keras's and Keller Jordan's forms
(gradtx.presets.torch.Muon, gradtx.presets.keras.Muon, tests/test_muon.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Bound,
    Count,
    EmptyState,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    Updates,
    init_empty,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE_COUNT,
    UNIT,
    ArgumentTypeError,
    ArgumentValueError,
    arguments_of,
    check,
    check_flag,
    first_moment_dtype,
)
from gradtx.combine import chain, partition
from gradtx.packing import require_leaves
from gradtx.transforms.adamw import adamw
from gradtx.transforms.newton_schulz import (
    PRECONDITIONINGS,
    MuonDimensionNumbers,
    dims_per_leaf,
    fans,
    is_dims,
    matrix_axes,
    newton_schulz,
    resolve_coeffs,
    to_matrices,
)
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

MOMENTUM_FORMS = ("debiased", "ema", "trace")

# ---------------------------------------------------------------------------------------------------
# Shared by Muon and NorMuon (normuon.py)


def leaves_with_dims(where: str, spec: Any, x: Any) -> list[tuple[Any, jax.Array, MuonDimensionNumbers]]:
    """(key path, leaf, dimension numbers) for each leaf of x; an error naming the leaf where a leaf
    has none or they do not fit it."""
    out = []
    for (path, leaf), dims in zip(jax.tree_util.tree_leaves_with_path(x), dims_per_leaf(where, spec, x), strict=True):
        at = f"{where}: the leaf at {jax.tree_util.keystr(path) or 'the root'} (shape {leaf.shape})"
        if dims is None:
            raise ValueError(f"{at} has no dimension numbers; muon() gives such leaves to Adam (or use masked)")
        if dims == MuonDimensionNumbers() and leaf.ndim != 2:
            raise ValueError(
                f"{at} is not a matrix: give weight_dimension_numbers for it (a convolution kernel (h, w, in, out)"
                " is MuonDimensionNumbers((0, 1, 2), 3)), or use muon(), which gives non-matrices to Adam"
            )
        matrix_axes(leaf, dims, at)
        out.append((path, leaf, dims))
    return out


def momentum(hp: Hyperparams, mu: Updates, g: Updates, t: Count) -> tuple[Updates, Updates]:
    """(the new momentum, the matrix to orthogonalize) in hp.momentum_form, at step t (>= 1)."""
    b = hp.beta
    mu = tree.ema(mu, g, b)  # m <- beta m + (1 - beta) g, the state in every form
    m = tree.compute_like(mu, g)
    if hp.momentum_form == "trace":  # Keras's sum s <- beta s + g is m / (1 - beta); Nesterov g + beta s
        s = tree.scale(1 / (1 - b), m)
        return mu, tree.lerp(s, g, b, 1.0) if hp.nesterov else s
    if hp.momentum_form == "ema":  # torch, Keller Jordan: no bias correction; Nesterov beta m + (1 - beta) g
        return mu, tree.lerp(m, g, b, 1 - b) if hp.nesterov else m
    if hp.nesterov:  # optax: m^ = beta m / (1 - beta^(t+1)) + (1 - beta) g / (1 - beta^t)
        g = tree.compute_like(g, g)
        return mu, tree.lerp(tree.bias_correction(m, b, next_count(t)), tree.bias_correction(g, b, t), b, 1 - b)
    return mu, tree.bias_correction(m, b, t)  # m^ = m / (1 - beta^t)


def _explicit_sharding(x: jax.Array) -> Any:
    """x's sharding where x is sharded over an Explicit mesh axis (the sharding is then part of its
    type, and a matmul over a sharded axis needs an output sharding), else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    explicit = any(t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ()))
    spec = getattr(sharding, "spec", None)
    return sharding if explicit and spec is not None and any(s is not None for s in spec) else None


def orthogonalize_leaf(hp: Hyperparams, m: jax.Array, dims: MuonDimensionNumbers, coeffs: Any) -> jax.Array:
    """NS(m), each matrix of m alone (or hp.orthogonalize on each), in m's compute dtype.

    On an Explicit mesh the default iteration gathers a sharded m (every device then holds the whole
    matrix, as distributed Muon implementations do) and reshards the result as m was; with Auto
    axes XLA places it. `hp.orthogonalize` gets the matrices as sharded as the params.
    """
    x = m.astype(tree.compute_dtype(m.dtype))
    if hp.orthogonalize is not None:
        matrices, back = to_matrices(x, dims)
        fn = hp.orthogonalize
        out = fn(matrices[0])[None] if matrices.shape[0] == 1 else jax.vmap(fn)(matrices)
        return back(out.astype(matrices.dtype))
    sharding = _explicit_sharding(x)
    if sharding is not None:
        x = jax.sharding.reshard(x, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec()))
    matrices, back = to_matrices(x, dims)
    out = back(newton_schulz(matrices, coeffs, hp.ns_steps, hp.preconditioning, hp.eps, hp.eps_floor))
    return out if sharding is None else jax.sharding.reshard(out, sharding)


def muon_arguments(builder: str, kwargs: dict) -> dict:
    """Validates the arguments scale_by_muon and scale_by_normuon share; returns them as bound."""
    ns_steps = kwargs["ns_steps"]
    check(builder, ns_steps=(ns_steps, POSITIVE_COUNT), beta=(kwargs["beta"], UNIT), eps=(kwargs["eps"], NONNEG))
    for flag in ("nesterov", "adaptive", "eps_floor"):
        if flag in kwargs:
            check_flag(builder, flag, kwargs[flag])
    if kwargs["preconditioning"] not in PRECONDITIONINGS:
        raise ArgumentValueError(
            builder, "preconditioning", f"must be one of {PRECONDITIONINGS}, got {kwargs['preconditioning']!r}"
        )
    if kwargs["momentum_form"] not in MOMENTUM_FORMS:
        raise ArgumentValueError(
            builder, "momentum_form", f"must be one of {MOMENTUM_FORMS}, got {kwargs['momentum_form']!r}"
        )
    orthogonalize = kwargs["orthogonalize"]
    if orthogonalize is not None and not callable(orthogonalize):
        raise ArgumentTypeError(
            builder, "orthogonalize", f"must be a function matrix -> matrix or None, got {orthogonalize!r}"
        )
    dims = kwargs["weight_dimension_numbers"]
    check_spec(builder, "weight_dimension_numbers", dims)
    if isinstance(dims, MuonDimensionNumbers):
        matrix_axes(jnp.zeros((1,) * 8), dims, f"{builder}: weight_dimension_numbers")  # integers, disjoint
    dtype = first_moment_dtype(builder, kwargs.pop("mu_dtype"), kwargs.pop("accumulator_dtype"))
    return {**kwargs, "ns_coeffs": resolve_coeffs(builder, kwargs["ns_coeffs"], ns_steps), "accumulator_dtype": dtype}


def check_spec(builder: str, name: str, spec: Any) -> None:
    if isinstance(spec, str) and spec != "torch":
        raise ArgumentValueError(
            builder, name, f"must be dimension numbers, a tree or function of them, or 'torch', got {spec!r}"
        )


def coeffs_array(hp: Hyperparams) -> jax.Array:
    """The coefficients as the state keeps them (optax's `ns_coeffs` field): shape (3,) or (n, 3)."""
    return jnp.asarray(hp.ns_coeffs)


# ---------------------------------------------------------------------------------------------------
# Muon's direction


class MuonState(NamedTuple):
    """count: steps taken (int32); mu: the momentum m; ns_coeffs: the Newton-Schulz coefficients, kept as optax does."""

    count: Count
    mu: Updates
    ns_coeffs: jax.Array


def _init_muon(hp: Hyperparams, params) -> MuonState:
    return MuonState(zero_count(), tree.first_moment_like(params, hp.accumulator_dtype), coeffs_array(hp))


def _update_muon(hp: Hyperparams, g, state: MuonState, params=None):
    require_leaves("scale_by_muon", g)  # each matrix is a leaf: a packed buffer is none
    t = next_count(state.count)
    mu, m = momentum(hp, state.mu, g, t)  # m <- beta m + (1 - beta) g; m^ (Nesterov, bias correction)
    at = dict((path, dims) for path, _, dims in leaves_with_dims(hp.builder, hp.weight_dimension_numbers, m))
    flat, treedef = jax.tree_util.tree_flatten_with_path(m)
    u = [orthogonalize_leaf(hp, x, at[path], state.ns_coeffs) for path, x in flat]  # u = NS(m^) ~ U V^H
    if hp.adaptive:  # u <- <m^, u> u: the dual norm of m^ as the step's size (Bernstein & Newhouse)
        u = [jnp.sum(jnp.conj(x) * o) * o for (_, x), o in zip(flat, u, strict=True)]
    u = jax.tree_util.tree_unflatten(treedef, u)
    return tree.cast_like(u, g), MuonState(t, mu, state.ns_coeffs)


def scale_by_muon(
    ns_coeffs: Any = (3.4445, -4.775, 2.0315),
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
    orthogonalize: Callable[[jax.Array], jax.Array] | None = None,
    momentum_form: str = "debiased",
    eps_floor: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Muon's direction (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural networks").

        m <- beta m + (1 - beta) g
        m^ = m / (1 - beta^t);  Nesterov: m^ = beta m / (1 - beta^(t+1)) + (1 - beta) g / (1 - beta^t)
        X_0 = m^ / (||m^|| + eps)                       (the Frobenius norm)
        A_k = X_k X_k^H,  X_{k+1} = a X_k + (b A_k + c A_k^2) X_k      (k < ns_steps)
        u = X_n ~ U V^H                                  (m^ = U S V^H, n = ns_steps)
        adaptive:  u <- sum(m^ u) u

    Each leaf is a matrix, or a stack of them: `weight_dimension_numbers` (None: every leaf a 2-D
    (0, 1) matrix; one `MuonDimensionNumbers` for all; "torch": torch's (out, in, ...) layout, a
    vector one row; a tree of them; or a function of the updates giving one) says which axes are
    rows (reduction) and columns (output). `ns_coeffs`: (a, b, c), one row a step, or a preset
    ("standard", "dion", "polar_express"; newton_schulz.py).
    `preconditioning`: "frobenius", "spectral", "aol" or "schatten", as optax. `adaptive` scales
    u by <m^, u>, the dual norm (Bernstein & Newhouse, 2024, "Old Optimizer, New Norm").
    `orthogonalize`: a function (fan_in, fan_out) matrix -> orthogonalized matrix in place of
    Newton-Schulz (an SVD, a sharded iteration; optax issue #1660), vmapped over batch axes; it
    gets the matrices sharded as the params, where the default iteration, on a mesh with Explicit
    axes, gathers each matrix and reshards the result as the param.

    Where it differs, and the switch: optax's form is the default. `momentum_form="ema"` skips the
    bias correction and makes Nesterov's m^ = beta m + (1 - beta) g (torch.optim.Muon, Keller
    Jordan's `muon` package: their buffers are the same m); `"trace"` is Keras's s <- beta s + g,
    Nesterov g + beta s, computed as s = m / (1 - beta) from the same m (so that a float16 state
    does not hold the 1 / (1 - beta) = 20 gradients that s sums). The forms differ by a factor
    that the normalization removes, except where eps is not negligible next to ||m^|| and under
    `adaptive`. `eps_floor=True` divides by max(||m^||, eps) (torch) in place of ||m^|| + eps. The
    iteration runs in at least float32 (torch and Keller Jordan run it in bfloat16, optax in the
    params' dtype). The state keeps the coefficients, as optax's (`ns_coeffs`, shape (3,) or
    (n, 3)). Coefficients whose iteration sends a singular value in [0, 1] past 100 are an error
    (optax runs them, to inf).

    References: Jordan et al. (2024), kellerjordan.github.io/posts/muon; Liu et al. (2025), "Muon is
    Scalable for LLM Training", arXiv:2502.16982; Amsel et al. (2025), arXiv:2505.16932.

    >>> import gradtx
    >>> gradtx.scale_by_muon()
    scale_by_muon(ns_coeffs=(3.4445, -4.775, 2.0315), ns_steps=5, beta=0.95, eps=1e-08, nesterov=True, adaptive=False,
                  preconditioning='frobenius', momentum_form='debiased', eps_floor=False)
    """
    kwargs = muon_arguments("scale_by_muon", dict(locals()))
    return transformation("scale_by_muon", _init_muon, _update_muon, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Shape scaling


def _update_shape(hp: Hyperparams, g, state: EmptyState, params=None):
    require_leaves("scale_by_shape", g)  # each matrix is a leaf: a packed buffer is none
    scaled = {}
    for path, leaf, dims in leaves_with_dims(hp.builder, hp.weight_dimension_numbers, g):
        fan_in, fan_out = fans(leaf, dims)
        fan_in = max(fan_in, 1)  # a zero-size matrix: any factor
        if hp.consistent_rms is None:  # Jordan: sqrt(max(1, fan_out / fan_in))
            factor: Any = max(1.0, fan_out / fan_in) ** 0.5
        else:  # Liu et al.: the RMS of AdamW's updates, consistent_rms sqrt(max(fan_in, fan_out))
            factor = max(fan_in, fan_out) ** 0.5 * jnp.asarray(hp.consistent_rms)
        x = leaf.astype(tree.compute_dtype(leaf.dtype))
        scaled[path] = (jnp.asarray(factor).astype(x.dtype) * x).astype(leaf.dtype)
    flat, treedef = jax.tree_util.tree_flatten_with_path(g)
    return jax.tree_util.tree_unflatten(treedef, [scaled[path] for path, _ in flat]), state


def scale_by_shape(weight_dimension_numbers: Any = None, consistent_rms: float | None = None) -> GradientTransformation:
    """Muon's update scaled by its matrix's shape, so that one learning rate fits every layer.

        u <- sqrt(max(1, fan_out / fan_in)) u                        (Jordan et al., 2024)
        consistent_rms:  u <- consistent_rms sqrt(max(fan_in, fan_out)) u    (Liu et al., 2025)

    An orthogonal fan_in x fan_out matrix has RMS 1 / sqrt(max(fan_in, fan_out)); the second form
    gives it the RMS `consistent_rms` (0.2 matches AdamW's, so AdamW's learning rate and weight
    decay carry over: torch's adjust_lr_fn="match_rms_adamw", Keras's rms_rate). fan_in and fan_out
    are the products of the reduction and output axes of `weight_dimension_numbers` (see
    `scale_by_muon`). optax 0.2.8's `scale_by_shape` (in optax.contrib's muon module).

    >>> import gradtx
    >>> gradtx.scale_by_shape(consistent_rms=0.2)
    scale_by_shape(consistent_rms=0.2)
    """
    check("scale_by_shape", consistent_rms=(consistent_rms, NONNEG + OR_NONE))
    check_spec("scale_by_shape", "weight_dimension_numbers", weight_dimension_numbers)
    return transformation(
        "scale_by_shape", init_empty, _update_shape,
        weight_dimension_numbers=weight_dimension_numbers, consistent_rms=consistent_rms,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The optimizer: Muon for the matrices, AdamW for the rest


def _is_muon_leaf(hp: Hyperparams, params: Any) -> Any:
    """'muon' or 'adam' for each leaf: matrices, or the leaves the dimension numbers name."""
    spec = hp.dims
    if spec is None:
        return jax.tree.map(lambda x: "muon" if jnp.ndim(x) == 2 else "adam", params)
    if callable(spec) and not isinstance(spec, MuonDimensionNumbers):
        spec = spec(params)
    if isinstance(spec, MuonDimensionNumbers | str):
        return jax.tree.map(lambda x: "muon", params)
    return jax.tree.map(
        lambda s, sub: jax.tree.map(lambda _: "adam" if s is None else "muon", sub), spec, params, is_leaf=is_dims
    )


def muon_labels(dims: Any = None) -> Bound:
    """The labels `muon` and `normuon` partition the params by: "muon" or "adam" for each leaf.

    With `dims` None, "muon" for the 2-D leaves; with dimension numbers (one for all, "torch", a
    tree of them with None for Adam's leaves, or a function of the params giving one), "muon" for
    the leaves they name. A function of the params, equal for equal `dims`, so that
    `gradtx.partition({"muon": ..., "adam": ...}, gradtx.muon_labels())` splits a model as `muon` does.

    >>> import gradtx, jax.numpy as jnp
    >>> gradtx.muon_labels()({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    {'b': 'adam', 'w': 'muon'}
    """
    return Bound(_is_muon_leaf, Hyperparams("muon_labels", (), {"dims": dims}))


# A member's argument named as muon's and normuon's name it, for errors raised while the partition is built.
RENAMES = {
    "adamw.b1": "adam_b1", "adamw.b2": "adam_b2", "adamw.eps_root": "adam_eps_root",
    "adamw.weight_decay": "adam_weight_decay", "adamw.learning_rate": "adam_learning_rate",
    "add_decayed_weights.mask": "weight_decay_mask",
    "scale_by_shape.weight_dimension_numbers": "muon_weight_dimension_numbers",
}  # fmt: skip


def matrices_then_adam(
    builder: str, direction: Callable[[], GradientTransformation], k: dict
) -> GradientTransformation:
    """partition({'muon': chain(direction(), scale_by_shape, add_decayed_weights, lr), 'adam': adamw}, labels)."""
    check(builder, learning_rate=(k["learning_rate"], LEARNING_RATE))
    with arguments_of(builder, RENAMES):
        adam_rate = k["learning_rate"] if k["adam_learning_rate"] is None else k["adam_learning_rate"]
        dims = k["muon_weight_dimension_numbers"]
        matrices = chain(
            direction(),
            scale_by_shape(dims, k["consistent_rms"]),
            add_decayed_weights(k["weight_decay"], k["weight_decay_mask"]),
            scale_by_learning_rate(k["learning_rate"]),
        )
        adam = adamw(
            adam_rate, k["adam_b1"], k["adam_b2"], k["eps"], k["adam_eps_root"], k["mu_dtype"],
            k["adam_weight_decay"], nesterov=k["nesterov"], accumulator_dtype=k["accumulator_dtype"],
        )  # fmt: skip
        return partition({"muon": matrices, "adam": adam}, muon_labels(dims))


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = (3.4445, -4.775, 2.0315),
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
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
    """Muon (Jordan et al., 2024) for the matrices, AdamW for every other leaf, as optax.contrib.muon.

        matrices:  chain(scale_by_muon(...), scale_by_shape(dims, consistent_rms),
                         add_decayed_weights(weight_decay, weight_decay_mask), scale_by_learning_rate(lr))
        the rest:  adamw(adam_learning_rate or lr, adam_b1, adam_b2, eps, adam_eps_root, mu_dtype,
                         adam_weight_decay, nesterov=nesterov)

    W <- W - lr (s NS(m^) + weight_decay W), s = sqrt(max(1, fan_out / fan_in)), or with
    `consistent_rms` s = consistent_rms sqrt(max(fan_in, fan_out)) (0.2: AdamW's RMS, Liu et al.,
    2025). `muon_weight_dimension_numbers`: None gives Muon every 2-D leaf; a tree of
    `MuonDimensionNumbers` (None for Adam's leaves), or a function of the params giving one, gives
    it those leaves, reshaped (convolution kernels). Adam shares `eps`, `mu_dtype` and `nesterov`,
    as in optax. `orthogonalize` replaces Newton-Schulz (see `scale_by_muon`). The state is a
    `PartitionState` with 'muon' and 'adam', optax's.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.muon(0.02)
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> updates["w"].shape, updates["b"].shape
    ((3, 4), (4,))
    """
    kwargs = dict(locals())

    def direction() -> GradientTransformation:
        return scale_by_muon(
            ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov, adaptive=adaptive,
            preconditioning=preconditioning, weight_dimension_numbers=muon_weight_dimension_numbers,
            orthogonalize=orthogonalize, accumulator_dtype=accumulator_dtype,
        )  # fmt: skip

    return matrices_then_adam("muon", direction, kwargs)


__all__ = ["MuonState", "muon", "muon_labels", "scale_by_muon", "scale_by_shape"]
