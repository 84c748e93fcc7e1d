"""Gradient check: compare an analytic gradient with central differences, in float64.

    numeric_i  = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i),    h_i = h max(1, |x_i|)
    error_i    = |analytic_i - numeric_i| / max(|analytic_i|, |numeric_i|)
    coordinate i fails when |analytic_i - numeric_i| > atol + rtol max(|analytic_i|, |numeric_i|)

The lecture's advice, "always check your analytic gradient", as one call. Everything runs in float64
(`jax.enable_x64` is turned on inside the call, whatever the global setting): in float32 central
differences are accurate to about 1e-3 at best, too coarse to tell a small bug from rounding. With
`tx`, the function checked is the loss after one update of the optimizer (a meta-gradient: the
gradient flows through `tx.update`, so it checks the optimizer's own derivative too).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import apply_updates
from gradtx.checks import check

__all__ = ["GradCheck", "LeafCheck", "check_grads"]


@dataclasses.dataclass(frozen=True)
class LeafCheck:
    """One leaf: its key path, how many coordinates were checked (of its size), the worst relative
    error, the failing count, and the worst coordinates as (index, analytic, numeric, error)."""

    path: str
    size: int
    checked: int
    max_error: float
    failed: int
    worst: tuple[tuple[tuple[int, ...], float, float, float], ...]


@dataclasses.dataclass(frozen=True)
class GradCheck:
    """`check_grads`'s report: `ok` (also its truth value), `leaves` (a LeafCheck per float leaf),
    `worst` (the worst coordinates over all leaves, as (key path, index, analytic, numeric, error)),
    the function checked, and the tolerances. `str(report)` is a readable table."""

    ok: bool
    function: str
    leaves: tuple[LeafCheck, ...]
    worst: tuple[tuple[str, tuple[int, ...], float, float, float], ...]
    h: float
    rtol: float
    atol: float

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        lines = [
            f"gradient check {verdict}: {self.function}",
            f"  central differences in float64, h = {self.h:g} max(1, |x|); a coordinate fails when"
            f" |analytic - numeric| > {self.atol:g} + {self.rtol:g} max(|analytic|, |numeric|)",
        ]
        width = max((len(leaf.path) for leaf in self.leaves), default=4)
        lines.append(f"  {'leaf':<{width}}  {'checked':>13}  {'max rel error':>13}  {'failed':>6}")
        for leaf in self.leaves:
            checked = f"{leaf.checked}/{leaf.size}"
            lines.append(f"  {leaf.path:<{width}}  {checked:>13}  {leaf.max_error:>13.2e}  {leaf.failed:>6}")
        if self.worst:
            lines.append("  worst coordinates:")
            for path, index, a, n, err in self.worst:
                lines.append(f"    {path}{list(index)}: analytic {a:.10g}, numeric {n:.10g}, rel error {err:.2e}")
        return "\n".join(lines)


def _loss_after_update(loss_fn: Callable[..., Any], tx: Any) -> Callable[..., Any]:
    def f(params: Any, *args: Any) -> Any:
        grads = jax.grad(loss_fn)(params, *args)
        updates, _ = tx.update(grads, tx.init(params), params)
        return loss_fn(apply_updates(params, updates), *args)

    return f


def _loss_after_update_of(loss_fn: Callable[..., Any], make_tx: Callable[[Any], Any], params: Any) -> Callable:
    def f(hyperparams: Any, *args: Any) -> Any:
        return _loss_after_update(loss_fn, make_tx(hyperparams))(params, *args)

    return f


def _as_float64(tree_: Any) -> Any:
    def cast(x: Any) -> Any:
        x = jnp.asarray(x)
        if jnp.iscomplexobj(x):
            raise TypeError("check_grads: complex leaves are not supported (check the real and imaginary parts)")
        return x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, tree_)


def _numeric(f: Callable[[Any], Any], x: Any, chosen: dict[int, np.ndarray], h: float) -> dict[int, np.ndarray]:
    """Central differences of the scalar f at x along the chosen flat coordinates of each leaf (leaf
    index -> coordinates), all in one compiled program."""
    leaves, treedef = jax.tree.flatten(x)

    def at(leaves: list, k: int, i: jax.Array, step: jax.Array) -> jax.Array:
        moved = leaves[k].ravel().at[i].add(step).reshape(leaves[k].shape)
        return f(jax.tree.unflatten(treedef, [*leaves[:k], moved, *leaves[k + 1 :]]))

    @jax.jit
    def differences(leaves: list, coords: dict, steps: dict) -> dict:
        def one(k: int, a: Any) -> jax.Array:
            # in float64 even where the loss computes in a narrower dtype (then only as accurate as it)
            difference = (at(leaves, k, a[0], a[1]) - at(leaves, k, a[0], -a[1])).astype(jnp.float64)
            return difference / (2 * a[1])

        return {k: jax.lax.map(functools.partial(one, k), (coords[k], steps[k])) for k in coords}

    steps = {k: h * np.maximum(1.0, np.abs(np.asarray(leaves[k]).ravel()[c])) for k, c in chosen.items()}
    coords = {k: jnp.asarray(c, jnp.int32) for k, c in chosen.items()}
    out = differences(leaves, coords, {k: jnp.asarray(v) for k, v in steps.items()})
    return {k: np.asarray(v) for k, v in out.items()}


def check_grads(
    loss_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    tx: Any = None,
    hyperparams: Any = None,
    h: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    max_coords: int = 256,
    num_worst: int = 5,
    seed: int = 0,
) -> GradCheck:
    """Checks `jax.grad` of a scalar loss against float64 central differences, leaf by leaf.

        checked:  loss_fn(params, *args)                       (tx None)
                  loss_fn(params + tx(grad loss_fn(params)))   (tx a transformation: one update,
                                                                differentiated w.r.t. the params)
                  the same as a function of `hyperparams`      (tx is a function hyperparams -> tx)

    `params` (or `hyperparams`) is any tree; its floating leaves are cast to float64 and checked,
    each on all its coordinates or, past `max_coords`, on that many drawn at random (`seed`).
    `h` is the relative step (the lecture's 1e-5); a coordinate fails when the difference exceeds
    `atol + rtol max(|analytic|, |numeric|)`. A kink (relu at 0, abs, max) breaks central
    differences there: check at a point away from one. A loss that casts to float32 inside (a dtype
    fixed in the model) is only as accurate as float32, and fails the check: let it compute in the
    params' dtype. Returns a `GradCheck` report, true when every
    coordinate passes, that prints the worst error per leaf and the worst coordinates by key path.

    >>> import jax.numpy as jnp, gradtx
    >>> report = gradtx.check_grads(lambda p: jnp.sum(jnp.sin(p["w"]) ** 2), {"w": jnp.arange(3.0)})
    >>> bool(report), report.leaves[0].checked
    (True, 3)
    """
    check("check_grads", h=(h, "(0, 1)"), rtol=(rtol, "[0, inf)"), atol=(atol, "[0, inf)"))
    check("check_grads", max_coords=(max_coords, "[1, inf)"), num_worst=(num_worst, "[0, inf)"))
    with jax.enable_x64(True):
        if tx is None and hyperparams is not None:
            raise TypeError("check_grads: hyperparams needs tx, a function hyperparams -> transformation")
        if tx is None:
            f, x, what = loss_fn, params, "loss_fn(params)"
        elif hyperparams is None:
            f, x, what = _loss_after_update(loss_fn, tx), params, f"loss_fn after one update of {tx!r}, w.r.t. params"
        else:
            f = _loss_after_update_of(loss_fn, tx, _as_float64(params))
            x, what = hyperparams, "loss_fn after one update, w.r.t. the hyperparameters"
        x = _as_float64(x)
        args = tuple(_as_float64(a) for a in args)
        fx = jax.eval_shape(lambda x: f(x, *args), x)
        if getattr(fx, "shape", None) != () or not jnp.issubdtype(fx.dtype, jnp.floating):
            raise TypeError(f"check_grads: the loss must be a real scalar, got {fx}")
        analytic = jax.jit(jax.grad(lambda x: f(x, *args), allow_int=True))(x)  # integer leaves: float0
        rng = np.random.default_rng(seed)
        leaves_with_path = jax.tree_util.tree_flatten_with_path(x)[0]
        grads = jax.tree.leaves(analytic)
        chosen = {}
        for k, (_, leaf) in enumerate(leaves_with_path):
            if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                size = int(np.prod(jnp.shape(leaf)))
                chosen[k] = (
                    np.arange(size) if size <= max_coords else np.sort(rng.choice(size, max_coords, replace=False))
                )
        numerics = _numeric(lambda x: f(x, *args), x, chosen, h)
        reports, worst_all = [], []
        for k, coords in chosen.items():
            path, leaf = leaves_with_path[k]
            size, numeric = int(np.prod(jnp.shape(leaf))), numerics[k]
            a = np.asarray(grads[k]).ravel()[coords]
            diff = np.abs(a - numeric)
            scale = np.maximum(np.abs(a), np.abs(numeric))
            error = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1.0))
            failed = diff > atol + rtol * scale
            failed |= ~np.isfinite(a) | ~np.isfinite(numeric)  # NaN in an analytic gradient fails
            order = np.argsort(-np.where(failed, np.inf, error), kind="stable")[:num_worst]
            name = jax.tree_util.keystr(path) or "<root>"
            worst = tuple(
                (tuple(int(j) for j in np.unravel_index(coords[i], jnp.shape(leaf))), float(a[i]), float(numeric[i]),
                 float(error[i])) for i in order
            )  # fmt: skip
            reports.append(LeafCheck(name, size, len(coords), float(error.max(initial=0.0)), int(failed.sum()), worst))
            worst_all += [(name, *w, bool(failed[i])) for w, i in zip(worst, order, strict=True)]
        worst_all.sort(key=lambda w: (not w[5], -w[4]))
        top = tuple(w[:5] for w in worst_all[:num_worst])
        ok = all(leaf.failed == 0 for leaf in reports)
    return GradCheck(ok, what, tuple(reports), top, h, rtol, atol)
