"""Newton-Schulz orthogonalization: the matrix sign that Muon and NorMuon apply to their momentum.

    X_0 = G / (||G|| + eps)                        (Frobenius; or the spectral norm, AOL, Schatten-4)
    A_k = X_k X_k^H,  X_{k+1} = a_k X_k + (b_k A_k + c_k A_k^2) X_k      k = 0 .. ns_steps - 1

For G = U S V^H, each step maps every singular value s to p_k(s) = a_k s + b_k s^3 + c_k s^5 and
keeps U and V, so X_n ~ U V^H, the orthogonal factor of G (its polar factor, "zeroth power").
One triple (a, b, c) repeats every step (Jordan's (3.4445, -4.775, 2.0315), chosen for the slope
at zero, leaves singular values in about [0.7, 1.2]); a table gives one triple a step: `"dion"`
(Ahn et al., 2025) and `"polar_express"` (Amsel et al., 2025, "The Polar Express: Optimal Matrix
Sign Methods and Their Application to the Muon Algorithm": each p_k the minimax-optimal quintic
for the interval the previous steps leave).

`MuonDimensionNumbers` says which axes of a parameter are the matrix's rows (`reduction_axis`, the
inputs of x W = y) and columns (`output_axis`); the other axes are a batch of matrices, each
orthogonalized alone. So a convolution kernel (h, w, in, out) is one (h w in) x out matrix with
`MuonDimensionNumbers((0, 1, 2), 3)`, or h w matrices in x out with `MuonDimensionNumbers(2, 3)`.
Empty axes are allowed: `MuonDimensionNumbers(0, ())` makes a vector one n x 1 column, and
`"torch"` in place of dimension numbers is torch's layout (out, in, ...) for every leaf, a vector
one 1 x n row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.checks import ArgumentTypeError, ArgumentValueError, is_tracer


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a parameter are the rows (reduction) and columns (output) of Muon's matrix.

    Axes that are neither are batch axes: each index of them is a matrix of its own. The default
    (0, 1) is a dense kernel W of x W = y, flax's and optax's layout; torch's Linear weight (out, in)
    is `MuonDimensionNumbers(1, 0)`.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def is_dims(x: Any) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


# The coefficient presets. Each row is one step's (a, b, c).
NS_COEFFS: dict[str, tuple] = {
    "standard": (3.4445, -4.775, 2.0315),  # Jordan (2024), Muon's; torch's, Keras's and optax's default
    "dion": (  # Ahn et al. (2025), optax's "dion"
        (4.0848, -6.8946, 2.927),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    # Amsel et al. (2025): rows 1-7 are their optimal composition from l = 1e-3 with safety 1e-2 and
    # cushion 0.02; the last is near the limit quintic (15/8, -10/8, 3/8) that every later step
    # repeats. pytorch_optimizer's table, which tests/test_muon.py checks these against.
    "polar_express": (
        (8.237312490495555, -23.157747414558198, 16.680568411445915),
        (4.082441999064835, -2.893047735332586, 0.5252849256975648),
        (3.9263479922546582, -2.8547468034765298, 0.5318022422894988),
        (3.2982187133085143, -2.424541981026706, 0.48632008358844075),
        (2.2970369434552573, -1.63662558125903, 0.4002628455953627),
        (1.8763805351440397, -1.2347896577722228, 0.35891887501668385),
        (1.8564423485617974, -1.2132449880935525, 0.3568003487825883),
        (1.8749994008682747, -1.2499988017229169, 0.3749994008546422),
    ),
}
PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")


def resolve_coeffs(builder: str, ns_coeffs: Any, ns_steps: int) -> tuple:
    """ns_coeffs as (a, b, c) or a tuple of ns_steps-or-fewer such rows, validated.

    A preset name gives ns_steps rows of its table, the last row repeated past its end (the Polar
    Express authors' and pytorch_optimizer's rule); "standard" gives its one triple.
    """
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS:
            raise ArgumentValueError(builder, "ns_coeffs", f"must be one of {tuple(NS_COEFFS)}, got {ns_coeffs!r}")
        table = NS_COEFFS[ns_coeffs]
        if not isinstance(table[0], tuple):
            return table
        return tuple(table[min(k, len(table) - 1)] for k in range(ns_steps))
    if is_tracer(ns_coeffs):
        return ns_coeffs
    try:
        array = np.asarray(ns_coeffs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            builder, "ns_coeffs", f"must be (a, b, c), rows of them or a preset name, got {ns_coeffs!r}"
        ) from None
    if array.ndim not in (1, 2) or array.shape[-1] != 3 or array.size == 0:
        raise ArgumentValueError(builder, "ns_coeffs", f"must have shape (3,) or (n, 3), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ArgumentValueError(builder, "ns_coeffs", f"must be finite numbers, got {ns_coeffs!r}")
    if array.ndim == 2 and array.shape[0] > ns_steps:
        # optax's rule: a table's rows are the iterations, and there may be no more of them than ns_steps.
        raise ArgumentValueError(builder, "ns_coeffs", f"has {array.shape[0]} rows, more than ns_steps={ns_steps}")
    check_bounded(builder, array, ns_steps)
    return tuple(map(float, array)) if array.ndim == 1 else tuple(tuple(map(float, row)) for row in array)


def check_bounded(builder: str, table: np.ndarray, ns_steps: int) -> None:
    """The iteration must keep singular values bounded: it sees them in [0, 1] after the scaling, and
    coefficients that send some of them past 100 (they then grow without bound) are an error."""
    rows = table if table.ndim == 2 else np.broadcast_to(table, (min(ns_steps, 100), 3))
    s = np.linspace(0.0, 1.0, 257)
    with np.errstate(all="ignore"):
        for k, (a, b, c) in enumerate(rows):
            s = a * s + b * s**3 + c * s**5
            worst = float(np.max(np.abs(s)))
            if not worst <= 100:
                raise ArgumentValueError(
                    builder, "ns_coeffs", f"{table.tolist()} do not keep the iteration bounded: a"
                    f" singular value in [0, 1] reaches {worst:.3g} after {k + 1} steps",
                )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Parameters as stacks of matrices


def _axes(axis: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis)) if ndim else ()


def matrix_axes(x: Any, dims: MuonDimensionNumbers, where: str = "") -> tuple[tuple[int, ...], ...]:
    """(batch, reduction, output) axes of x under dims; a clear error for axes that do not fit."""
    ndim = len(np.shape(x))
    flat = [dims.reduction_axis] if isinstance(dims.reduction_axis, int) else list(dims.reduction_axis)
    flat += [dims.output_axis] if isinstance(dims.output_axis, int) else list(dims.output_axis)
    if any(not isinstance(a, int) or not -ndim <= a < ndim for a in flat) or (ndim == 0 and flat):
        raise ValueError(f"{where}: {dims} does not fit a parameter of shape {np.shape(x)}")
    reduction, output = _axes(dims.reduction_axis, ndim), _axes(dims.output_axis, ndim)
    if set(reduction) & set(output) or len(set(reduction)) < len(reduction) or len(set(output)) < len(output):
        raise ValueError(f"{where}: {dims} names an axis twice (shape {np.shape(x)})")
    batch = tuple(a for a in range(ndim) if a not in reduction and a not in output)
    return batch, reduction, output


def fans(x: Any, dims: MuonDimensionNumbers, where: str = "") -> tuple[int, int]:
    """(fan_in, fan_out): the matrix's rows and columns, products of the reduction and output axes."""
    _, reduction, output = matrix_axes(x, dims, where)
    shape = np.shape(x)
    return math.prod(shape[a] for a in reduction), math.prod(shape[a] for a in output)


def to_matrices(x: jax.Array, dims: MuonDimensionNumbers) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """x as a (batch, fan_in, fan_out) stack, and the function that undoes it."""
    batch, reduction, output = matrix_axes(x, dims)
    order = batch + reduction + output
    moved = tuple(x.shape[a] for a in order)
    flat = (math.prod(x.shape[a] for a in batch), *fans(x, dims))
    inverse = tuple(int(i) for i in np.argsort(order))
    return jnp.transpose(x, order).reshape(flat), lambda m: jnp.transpose(m.reshape(moved), inverse)


def torch_dims(x: Any) -> MuonDimensionNumbers:
    """torch's weight layout (out, in, ...): one output row per index of axis 0, the other axes its
    inputs (Keller Jordan's rule for convolution kernels); a vector or a scalar is one 1 x n row."""
    ndim = len(np.shape(x))
    if ndim >= 2:
        return MuonDimensionNumbers(reduction_axis=tuple(range(1, ndim)), output_axis=0)
    return MuonDimensionNumbers(reduction_axis=tuple(range(ndim)), output_axis=())


def dims_per_leaf(where: str, spec: Any, updates: Any) -> list[MuonDimensionNumbers | None]:
    """The dimension numbers of each leaf of `updates`, in flattening order.

    `spec`: None (every leaf a 2-D (0, 1) matrix), one MuonDimensionNumbers for every leaf, "torch"
    (`torch_dims` of each leaf), a tree
    with the updates' structure (or a prefix of it) of them and None, or a function of the updates
    giving such a tree. Masked-out subtrees (MaskedNode) have no leaves and need no entry.
    """
    if callable(spec) and not isinstance(spec, MuonDimensionNumbers):
        spec = spec(updates)
    if spec == "torch":
        return [torch_dims(x) for x in jax.tree.leaves(updates)]
    if spec is None or isinstance(spec, MuonDimensionNumbers):
        return [spec or MuonDimensionNumbers()] * len(jax.tree.leaves(updates))
    out: list[MuonDimensionNumbers | None] = []

    def collect(s: Any, sub: Any) -> None:
        out.extend([s] * len(jax.tree.leaves(sub)))

    try:
        jax.tree.map(collect, spec, updates, is_leaf=is_dims)
    except ValueError as e:
        raise ValueError(f"{where}: the dimension numbers' tree does not match the updates' ({e})") from None
    return out


# ---------------------------------------------------------------------------------------------------
# The iteration


def _mT(x: jax.Array) -> jax.Array:
    return jnp.swapaxes(x, -1, -2)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def frobenius(x: jax.Array, axes: tuple[int, ...] = (-2, -1)) -> jax.Array:
    """||x||_F over `axes` (kept, size 1), whose derivative at x = 0 is 0 rather than NaN (0 / 0)."""
    return jnp.sqrt(jnp.sum(tree.abs_sq(x), axis=axes, keepdims=True))


@frobenius.defjvp
def _frobenius_jvp(axes: tuple[int, ...], primals: tuple, tangents: tuple) -> tuple:
    (x,), (dx,) = primals, tangents
    norm = frobenius(x, axes)
    inner = jnp.sum(jnp.real(jnp.conj(x) * dx), axis=axes, keepdims=True)  # d||x|| = Re<x, dx> / ||x||
    return norm, jnp.where(norm > 0, inner / jnp.where(norm > 0, norm, 1), 0)


def _frobenius(x: jax.Array) -> jax.Array:
    return frobenius(x, (-2, -1))


def _divide(x: jax.Array, norm: jax.Array, eps: Any, eps_floor: bool) -> jax.Array:
    return x / (jnp.maximum(norm, eps) if eps_floor else norm + eps).astype(x.dtype)  # a real norm, complex x too


def _step(x: jax.Array, a: jax.Array, coeffs: Any) -> jax.Array:
    """X <- a X + (b A + c A^2) X, with A = X X^H given."""
    return coeffs[0] * x + (coeffs[1] * a + coeffs[2] * (a @ a)) @ x


def _first_step(x: jax.Array, coeffs: Any, preconditioning: str, eps: Any) -> jax.Array:
    """The first step, with the rescaling that AOL and Schatten-4 fold into it."""
    a = x @ jnp.conj(_mT(x))
    if preconditioning == "aol":  # Boissin et al. (2025): rows scaled by 1 / sqrt(sum_j |A_ij|)
        s = jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(a), axis=-1, keepdims=True), eps)).astype(x.dtype)
        x, a = x * s, a * s * _mT(s)
    elif preconditioning == "schatten":  # Grishina et al. (2025): X / ||X||_S4 = X / sqrt(||A||_F)
        s = jax.lax.rsqrt(jnp.maximum(_frobenius(a), eps)).astype(x.dtype)
        x, a = x * s, a * s**2
    return _step(x, a, coeffs)


def newton_schulz(
    m: jax.Array, coeffs: Any, ns_steps: int, preconditioning: str, eps: Any, eps_floor: bool = False
) -> jax.Array:
    """Orthogonalizes each matrix of a (..., rows, cols) stack; `coeffs` of shape (3,) or (n, 3)."""
    wide = m.shape[-2] <= m.shape[-1]
    x = m if wide else _mT(m)  # X X^H is then the smaller Gram matrix; p(X^T)^T = p(X)
    if preconditioning == "frobenius":
        x = _divide(x, _frobenius(x), eps, eps_floor)
    elif preconditioning == "spectral":
        x = _divide(x, jnp.linalg.norm(x, ord=2, axis=(-2, -1), keepdims=True), eps, eps_floor)
    table = jnp.asarray(coeffs).astype(x.dtype)  # complex for complex x, as optax
    rows = [table[k] for k in range(table.shape[0])] if table.ndim == 2 else [table] * ns_steps
    for k, row in enumerate(rows):
        if k == 0 and preconditioning in ("aol", "schatten"):
            x = _first_step(x, row, preconditioning, eps)
        else:
            x = _step(x, x @ jnp.conj(_mT(x)), row)
    return x if wide else _mT(x)


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: Any = NS_COEFFS["standard"],
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: float = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
    *,
    eps_floor: bool = False,
) -> jax.Array:
    """The Newton-Schulz orthogonalization of x (module docstring), optax's function and arguments.

        X_0 = x / (||x|| + eps)                          (the Frobenius norm)
        A_k = X_k X_k^H,   X_{k+1} = a X_k + (b A_k + c A_k^2) X_k

    `x` is a matrix, or any array with `dimension_numbers` saying which axes are the matrix's rows
    and columns (the rest a batch). `ns_coeffs`: (a, b, c), rows of them (one per step; a table of
    n rows runs n steps and ns_steps must be at least n, as optax), or a preset name of `NS_COEFFS`
    ("standard", "dion", "polar_express"). `preconditioning` scales x before the steps: by its
    Frobenius norm (default), its spectral norm, or folded into the first step, AOL's row scaling
    or the Schatten-4 norm (optax's four). `eps_floor=True` divides by max(||x||, eps) instead of
    ||x|| + eps (torch.optim.Muon and pytorch_optimizer). Computed in at least float32, returned
    in x's dtype (torch's and Keller Jordan's Muon compute it in bfloat16; optax in x's dtype).

    >>> import jax.numpy as jnp, gradtx
    >>> o = gradtx.orthogonalize_via_newton_schulz(jnp.asarray([[3.0, 0.0], [0.0, 0.5]]), ns_steps=10)
    >>> bool(jnp.all(jnp.abs(jnp.diag(o) - 1.0) < 0.32))
    True
    """
    name = "orthogonalize_via_newton_schulz"
    if preconditioning not in PRECONDITIONINGS:
        raise ArgumentValueError(name, "preconditioning", f"must be one of {PRECONDITIONINGS}, got {preconditioning!r}")
    coeffs = resolve_coeffs(name, ns_coeffs, ns_steps) if not isinstance(ns_coeffs, jax.Array) else ns_coeffs
    if dimension_numbers is None:
        if x.ndim != 2:
            raise ValueError(f"{name}: x must be a matrix or dimension_numbers given, got shape {x.shape}")
        dimension_numbers = MuonDimensionNumbers()
    matrices, back = to_matrices(jnp.asarray(x), dimension_numbers)
    out = newton_schulz(
        matrices.astype(tree.compute_dtype(matrices.dtype)), coeffs, ns_steps, preconditioning, eps, eps_floor
    )
    return back(out).astype(x.dtype)


__all__ = ["MuonDimensionNumbers", "orthogonalize_via_newton_schulz"]
