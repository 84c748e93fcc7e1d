"""Elementwise tree math: the arithmetic every transformation is written in.

Each function maps over one or more trees of the same structure. `None` is an empty subtree in JAX,
so `None` leaves (frozen parts of an equinox or flax model) pass through every function untouched.

Numerics, once for all transformations:
- Arithmetic runs in the *compute dtype* of the destination leaf: float16 and bfloat16 are computed
  in float32, wider dtypes in themselves. So b2 = 0.999 never becomes 1.0 in bfloat16.
- Results are cast back to the destination's dtype, so hyperparameters never change the dtype of
  updates or state.
- Second moments of complex leaves are real (`abs_sq`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype arithmetic on a leaf of `dtype` runs in: at least float32 for floating leaves."""
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return np.dtype(jnp.float32)
    return dtype


def real_dtype(dtype: Any) -> np.dtype:
    """float32 for complex64, float64 for complex128, the dtype itself otherwise."""
    return np.dtype(jnp.finfo(dtype).dtype) if jnp.issubdtype(dtype, jnp.complexfloating) else np.dtype(dtype)


def _as(x: Any, dtype: Any) -> Any:
    """x in `dtype`, without a conversion op when it already is (fewer ops to trace and compile per leaf)."""
    return x if x.dtype == dtype else x.astype(dtype)


def _up(x: jax.Array) -> jax.Array:
    return _as(x, compute_dtype(x.dtype))


def _scalar(s: Any, like: jax.Array) -> Any:
    # A Python number is weakly typed: it takes like's dtype in the arithmetic, with no op of its own.
    if isinstance(s, int | float) and not isinstance(s, bool):
        return s
    return _as(jnp.asarray(s), like.dtype)


def _is_zero(s: Any) -> bool:
    """True for a Python 0 (an eps that is off): adding it is skipped, so no op is traced per leaf."""
    return isinstance(s, int | float) and not isinstance(s, bool) and s == 0


# ---------------------------------------------------------------------------------------------------
# Which leaves an optimizer acts on


def is_inexact(x: Any) -> bool:
    """True for a floating or complex array (or Python float/complex): a leaf an optimizer updates."""
    if isinstance(x, float | complex):
        return True
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def trainable(tree: PyTree) -> PyTree:
    """The tree with every leaf that is not floating or complex (integers, booleans) set to None.

    Models carry such leaves (equinox's static ints, flax's counters); they get no state and no update.
    """
    return jax.tree.map(lambda x: x if is_inexact(x) else None, tree)


def with_frozen(new: PyTree, original: PyTree) -> PyTree:
    """`new`, with the leaves that `trainable(original)` dropped taken back from `original` unchanged."""
    return jax.tree.map(lambda x, y: y if is_inexact(x) else x, original, new, is_leaf=lambda x: x is None)


# ---------------------------------------------------------------------------------------------------
# Creation and casting


def zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Zeros with each leaf's shape (and sharding), in `dtype` or the leaf's own dtype."""
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def ones_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Ones with each leaf's shape (and sharding), in `dtype` or the leaf's own dtype."""
    return jax.tree.map(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def full_like(tree: PyTree, fill_value: Any, dtype: Any = None) -> PyTree:
    """`fill_value` with each leaf's shape (and sharding), in `dtype` or the leaf's own dtype."""
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)


def second_moment_like(tree: PyTree, value: Any = 0.0) -> PyTree:
    """`value` with each leaf's shape, in the dtype of second moments: real and at least float32.

    A square accumulated with decay 0.999 changes by 0.1% a step; bfloat16 resolves 0.4%, so a
    bfloat16 second moment would never decay. gradtx therefore stores second moments of bfloat16
    and float16 params in float32 (optax keeps the params' dtype), and complex params get real ones.
    """
    return jax.tree.map(lambda x: jnp.full_like(x, value, dtype=real_dtype(compute_dtype(jnp.result_type(x)))), tree)


def _first_moment_dtype(dtype: Any, accumulator_dtype: Any) -> np.dtype:
    if accumulator_dtype is None:
        return np.dtype(dtype)
    accumulator = np.dtype(accumulator_dtype)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        return real_dtype(accumulator)
    if jnp.issubdtype(accumulator, jnp.complexfloating):
        return accumulator
    return np.dtype(np.complex128 if jnp.finfo(accumulator).bits > 32 else np.complex64)


def first_moment_like(tree: PyTree, accumulator_dtype: Any = None, value: Any = 0.0) -> PyTree:
    """`value` with each leaf's shape (and sharding), in the dtype of a first moment (a mean of gradients).

    `accumulator_dtype` sets its precision (None: the leaf's own dtype); the leaf sets whether it
    is real or complex, since the mean of complex gradients is complex. So a complex64 leaf with
    accumulator_dtype=float32 (or bfloat16, float16: there is no narrower complex dtype) gets a
    complex64 moment, with float64 a complex128 one, and a real leaf with a complex
    accumulator_dtype a real moment of that precision (complex64 -> float32).
    """
    return jax.tree.map(
        lambda x: jnp.full_like(x, value, dtype=_first_moment_dtype(jnp.result_type(x), accumulator_dtype)), tree
    )


def cast(tree: PyTree, dtype: Any) -> PyTree:
    """Each leaf cast to `dtype`; `dtype=None` leaves the tree as it is."""
    return tree if dtype is None else jax.tree.map(lambda x: x.astype(dtype), tree)


def cast_like(tree: PyTree, other_tree: PyTree) -> PyTree:
    """Each leaf of `tree` cast to the dtype of the matching leaf of `other_tree`."""
    return jax.tree.map(lambda x, y: x.astype(y.dtype), tree, other_tree)


def compute_like(tree: PyTree, like: PyTree) -> PyTree:
    """Each leaf of `tree` cast to the compute dtype of the matching leaf of `like` (>= float32).

    How a moment is read before it enters an update: a bfloat16 moment is not rounded further, and
    a float32 one is not rounded down to bfloat16 gradients.
    """
    return jax.tree.map(lambda x, y: x.astype(compute_dtype(y.dtype)), tree, like)


# ---------------------------------------------------------------------------------------------------
# Arithmetic (results in the dtype of the first tree; optax.tree's names and arguments)


def _add(x: jax.Array, y: jax.Array) -> jax.Array:
    return _as(_up(x) + _as(y, compute_dtype(x.dtype)), x.dtype)


def add(tree_x: PyTree, tree_y: PyTree, *other_trees: PyTree) -> PyTree:
    """tree_x + tree_y (+ each of `other_trees`), leaf by leaf."""
    return jax.tree.map(lambda x, *ys: functools.reduce(_add, ys, x), tree_x, tree_y, *other_trees)


def sub(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """tree_x - tree_y."""
    return jax.tree.map(lambda x, y: _as(_up(x) - _as(y, compute_dtype(x.dtype)), x.dtype), tree_x, tree_y)


def mul(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """tree_x * tree_y, leaf by leaf."""
    return jax.tree.map(lambda x, y: _as(_up(x) * _as(y, compute_dtype(x.dtype)), x.dtype), tree_x, tree_y)


def scale(scalar: Any, tree: PyTree) -> PyTree:
    """scalar * tree for a scalar (a number, a 0-d array or a tracer)."""
    return jax.tree.map(lambda x: _as(_scalar(scalar, _up(x)) * _up(x), x.dtype), tree)


def add_scale(tree_x: PyTree, scalar: Any, tree_y: PyTree) -> PyTree:
    """tree_x + scalar * tree_y: the axpy of weight decay, Nesterov look-ahead and heavy-ball momentum."""

    def axpy(x: jax.Array, y: jax.Array) -> jax.Array:
        x32 = _up(x)
        return _as(x32 + _scalar(scalar, x32) * _as(y, x32.dtype), x.dtype)

    return jax.tree.map(axpy, tree_x, tree_y)


def lerp(a: PyTree, b: PyTree, s: Any, t: Any) -> PyTree:
    """s * a + t * b for scalars s, t; the result in a's dtypes."""

    def f(x: jax.Array, y: jax.Array) -> jax.Array:
        x32 = _up(x)
        return _as(_scalar(s, x32) * x32 + _scalar(t, x32) * _as(y, x32.dtype), x.dtype)

    return jax.tree.map(f, a, b)


def _ema_leaf(a: jax.Array, x: jax.Array, decay: Any) -> jax.Array:
    a32 = _up(a)
    # 1 - decay is formed before the cast: float32(1 - 0.999) is exact to 7 digits where
    # 1 - float32(0.999) is off by 5e-5 relative.
    return _as(_scalar(decay, a32) * a32 + _scalar(1 - decay, a32) * _as(x, a32.dtype), a.dtype)


def ema(avg: PyTree, new: PyTree, decay: Any) -> PyTree:
    """decay * avg + (1 - decay) * new: an exponential moving average, in avg's dtypes."""
    return jax.tree.map(lambda a, x: _ema_leaf(a, x, decay), avg, new)


def one_minus_pow(decay: Any, count: jax.Array, dtype: Any) -> jax.Array:
    """1 - decay^count as a scalar of `dtype`: the bias of an EMA started at zero, after `count` steps."""
    # 1 - decay^t as -expm1(t log(decay)), with log(decay) taken in double precision when decay is a
    # number: 1 - float32(0.999)^t is off by 1.3e-5 relative at t = 1, this by one float32 rounding.
    if isinstance(decay, float | int) and decay > 0:
        log_decay: Any = math.log(decay)
    else:
        log_decay = jnp.log(jnp.asarray(decay).astype(dtype))
    return -jnp.expm1(count.astype(dtype) * log_decay)


def bias_correction(moment: PyTree, decay: Any, count: jax.Array) -> PyTree:
    """moment / (1 - decay^count): undoes the pull toward zero of an EMA started at zero.

    `count` is the number of EMA steps taken (>= 1 after the first update).
    """

    corrections: dict[np.dtype, jax.Array] = {}  # one scalar per dtype, not one per leaf

    def f(m: jax.Array) -> jax.Array:
        m32 = _up(m)
        dtype = real_dtype(m32.dtype)
        if dtype not in corrections:
            corrections[dtype] = one_minus_pow(decay, count, dtype)
        return _as(m32 / _as(corrections[dtype], m32.dtype), m.dtype)  # complex m too

    return jax.tree.map(f, moment)


def _abs_sq(x: jax.Array) -> jax.Array:
    x = _up(x)  # a bfloat16 square keeps 8 bits, a float16 one overflows above 256
    return x.real * x.real + x.imag * x.imag if jnp.iscomplexobj(x) else x * x


def abs_sq(tree: PyTree) -> PyTree:
    """|x|^2, leaf by leaf, in the compute dtype: real for complex leaves, at least float32."""
    return jax.tree.map(_abs_sq, tree)


@jax.custom_jvp
def _sqrt0(ys: list[jax.Array]) -> list[jax.Array]:
    """sqrt(max(y, 0)) of each array, whose derivative at y <= 0 is 0 rather than inf (inf * 0 = NaN in jax.grad).

    Only the derivative at 0 differs from sqrt's, set to the limit the whole update has there: for
    u = g / (sqrt(v) + eps) with v ~ g^2, du/dg at g = 0 is 1 / eps. One op a leaf in the compiled
    step, and one custom_jvp for the whole tree (tracing one per leaf would cost more than the rest).
    """
    return [jnp.sqrt(jnp.maximum(y, jnp.zeros([], y.dtype))) for y in ys]


@_sqrt0.defjvp
def _sqrt0_jvp(primals: tuple, tangents: tuple) -> tuple:
    (ys,), (dys,) = primals, tangents
    roots = _sqrt0(ys)
    droots = []
    for y, dy, root in zip(ys, dys, roots, strict=True):
        positive = y > 0
        safe_root = jnp.where(positive, root, jnp.ones_like(root))
        droots.append(jnp.where(positive, dy / (2 * safe_root), jnp.zeros_like(dy)))
    return roots, droots


def div_sqrt(a: PyTree, b: PyTree, eps: Any = 0.0, eps_root: Any = 0.0) -> PyTree:
    """a / (sqrt(b + eps_root) + eps), leaf by leaf, in a's dtypes.

    The two placements of the small constant that courses teach are both this function:
    eps outside the root (Adam, cs231n RMSProp) is `div_sqrt(a, b, eps)`, eps inside (Goodfellow
    Alg. 8.5) is `div_sqrt(a, b, eps_root=eps)`.
    """

    xs, treedef = jax.tree.flatten(a)
    treedef_: Any = treedef  # PyTreeDef's stubs lack flatten_up_to
    ys = [_as(y, real_dtype(compute_dtype(x.dtype))) for x, y in zip(xs, treedef_.flatten_up_to(b), strict=True)]
    roots = _sqrt0([y if _is_zero(eps_root) else y + _scalar(eps_root, y) for y in ys])

    def f(x: jax.Array, root: jax.Array) -> jax.Array:
        x32 = _up(x)
        denominator = root if _is_zero(eps) else root + _scalar(eps, root)
        return _as(x32 / _as(denominator, x32.dtype), x.dtype)  # real denominator, complex x too

    return treedef_.unflatten([f(x, root) for x, root in zip(xs, roots, strict=True)])


def maximum(a: PyTree, b: PyTree) -> PyTree:
    """max(a, b), leaf by leaf, in a's dtypes."""
    return jax.tree.map(lambda x, y: jnp.maximum(x, _as(y, x.dtype)), a, b)


def update_infinity_moment(updates: PyTree, moments: PyTree, decay: Any, eps: Any = 0.0) -> PyTree:
    """max(decay * moments, |updates| + eps): Adamax's exponentially weighted infinity norm."""

    def f(g: jax.Array, nu: jax.Array) -> jax.Array:
        nu32 = _up(nu)
        g_abs = _as(jnp.abs(g), nu32.dtype)
        return _as(jnp.maximum(_scalar(decay, nu32) * nu32, g_abs + _scalar(eps, nu32)), nu.dtype)

    return jax.tree.map(f, updates, moments)


def sqrt(tree: PyTree, eps_root: Any = 0.0) -> PyTree:
    """sqrt(x + eps_root), leaf by leaf, for real leaves (the RMS of a second moment)."""
    return jax.tree.map(lambda x: jnp.sqrt(_up(x) + _scalar(eps_root, _up(x))).astype(x.dtype), tree)


def div(tree_x: PyTree, tree_y: PyTree, eps: Any = 0.0) -> PyTree:
    """tree_x / (tree_y + eps), leaf by leaf, in tree_x's dtypes (tree_y real, e.g. an infinity norm)."""

    def f(x: jax.Array, y: jax.Array) -> jax.Array:
        x32 = _up(x)
        y32 = _as(y, real_dtype(x32.dtype))
        return _as(x32 / _as(y32 + _scalar(eps, y32), x32.dtype), x.dtype)

    return jax.tree.map(f, tree_x, tree_y)


def safe_div_sqrt(a: PyTree, b: PyTree, eps: Any = 0.0, eps_root: Any = 0.0) -> PyTree:
    """`div_sqrt(a, b, eps, eps_root)` where b > 0, and 0 where b <= 0 (never 0 / 0, also under grad).

    A NaN in b gives NaN, never 0: a poisoned accumulator stays visible in every later update. For
    accumulators that are zero exactly where the numerator is (AdaGrad's sum of squares with
    eps = 0 and a zero initial value).
    """

    def f(x: jax.Array, y: jax.Array) -> jax.Array:
        x32 = _up(x)
        y32 = y.astype(real_dtype(x32.dtype))
        positive = ~(y32 <= 0)  # a NaN accumulator stays NaN in the update (NaN > 0 is False)
        safe_y = jnp.where(positive, y32, jnp.ones_like(y32))  # keeps sqrt's gradient finite
        out = x32 / (jnp.sqrt(safe_y + _scalar(eps_root, y32)) + _scalar(eps, y32)).astype(x32.dtype)
        return jnp.where(positive, out, jnp.zeros_like(out)).astype(x.dtype)

    return jax.tree.map(f, a, b)


def where(condition: Any, tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """`tree_x` where the scalar `condition` holds, `tree_y` elsewhere, leaf by leaf (one structure)."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def clip(tree: PyTree, min_value: Any = None, max_value: Any = None) -> PyTree:
    """Each leaf clipped to [min_value, max_value] (None: no bound on that side)."""
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def conj(tree: PyTree) -> PyTree:
    """The complex conjugate of each leaf (real leaves unchanged)."""
    return jax.tree.map(jnp.conj, tree)


def real(tree: PyTree) -> PyTree:
    """The real part of each leaf."""
    return jax.tree.map(jnp.real, tree)


def update_moment(updates: PyTree, moments: PyTree, decay: Any, order: int) -> PyTree:
    """decay * moments + (1 - decay) * updates^order: an EMA of a power of the updates (optax's)."""
    return jax.tree.map(lambda g, m: _ema_leaf(m, _up(g) ** order, decay), updates, moments)


def update_moment_per_elem_norm(updates: PyTree, moments: PyTree, decay: Any, order: int) -> PyTree:
    """decay * moments + (1 - decay) * |updates|^order, |.| the modulus of complex updates (optax's)."""

    def power(g: jax.Array) -> jax.Array:
        return _up(g) ** order if not jnp.iscomplexobj(g) else _abs_sq(g) ** (order / 2)

    return jax.tree.map(lambda g, m: _ema_leaf(m, power(g), decay), updates, moments)
