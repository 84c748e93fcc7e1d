"""Pictures: trajectories on a contour plot, schedules over steps, loss curves, the range test.

    trajectories(landscape, {name: path})   contours of the landscape and each optimizer's path
    schedules({name: schedule}, steps)       each schedule's value at k = 0, ..., steps - 1
    loss_curves({name: losses})              losses against steps (a 2-D array: one line per row)
    lr_finder(result)                        the range test's loss against the learning rate

Needs matplotlib (`pip install gradtx[viz]`), imported inside each function only: `import gradtx`
works without it. Each function draws on `ax` (a new figure's axes when None) and returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["loss_curves", "lr_finder", "schedules", "trajectories"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("gradtx.viz needs matplotlib: pip install gradtx[viz] (or pip install matplotlib)") from e
    return plt


def _axes(ax: Any, figsize: tuple[float, float] = (6.4, 4.8)) -> Any:
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def contour(landscape: Any, ax: Any = None, n: int = 201, levels: int = 20) -> Any:
    """Contours of a `gradtx.landscapes` landscape (log-spaced where it spans decades) and its minima."""
    ax = _axes(ax)
    x, y, z = landscape.grid(n)
    if landscape.log_scale:
        low = max(float(np.min(z)) - landscape.minimum, 1e-3 * max(float(np.ptp(z)), 1e-12))
        spaced = landscape.minimum + np.geomspace(low, float(np.max(z)) - landscape.minimum, levels)
        ax.contour(x, y, z, levels=np.unique(spaced), colors="0.6", linewidths=0.6)
    else:
        ax.contour(x, y, z, levels=levels, colors="0.6", linewidths=0.6)
    for i, m in enumerate(landscape.minima):
        ax.plot(*m, "*", color="gold", mec="k", ms=13, label="minimum" if i == 0 else None)
    (x0, x1), (y0, y1) = landscape.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    ax.set_title(f"{landscape.name}: {landscape.formula}", fontsize="medium")
    return ax


def trajectories(landscape: Any, paths: Mapping[str, Any], ax: Any = None, marker_every: int = 0) -> Any:
    """Each path (an array of points, shape (T, 2)) over the contours of `landscape`, one line each.

    `marker_every` > 0 marks every that many points (to show the step sizes).
    """
    ax = contour(landscape, ax)
    ax.plot(*landscape.start, "ko", ms=5, label="start")
    for i, (name, path) in enumerate(paths.items()):
        path = np.asarray(path)
        if path.ndim != 2 or path.shape[1] != 2:
            raise ValueError(f"viz.trajectories: path {name!r} must have shape (T, 2), got {path.shape}")
        kwargs = {"marker": "o", "ms": 2.5, "markevery": marker_every} if marker_every else {}
        ax.plot(path[:, 0], path[:, 1], "-", color=f"C{i}", lw=1.3, label=name, **kwargs)
    ax.legend(fontsize="small", loc="best")
    return ax


def schedules(scheds: Mapping[str, Callable[[jax.Array], Any]], steps: int, ax: Any = None, log: bool = False) -> Any:
    """Each schedule's value at k = 0, ..., steps - 1 (k = updates already applied), one line each."""
    ax = _axes(ax)
    counts = jnp.arange(steps, dtype=jnp.int32)
    for name, sched in scheds.items():
        ax.plot(np.arange(steps), np.asarray(jax.vmap(sched)(counts)), label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step k (updates already applied)")
    ax.set_ylabel("value")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def loss_curves(curves: Mapping[str, Any], ax: Any = None, log: bool = True, labels: Any = None) -> Any:
    """Losses against steps: each value a 1-D array (one line) or a 2-D one (a line per row, e.g.
    `gradtx.sweep`'s losses; `labels` names the rows). Non-finite values are left out of a line."""
    ax = _axes(ax)
    for i, (name, losses) in enumerate(curves.items()):
        losses = np.asarray(losses, dtype=np.float64)
        rows = losses[None] if losses.ndim == 1 else losses
        for j, row in enumerate(rows):
            row = np.where(np.isfinite(row), row, np.nan)
            label = name if losses.ndim == 1 else (f"{name} {labels[j]}" if labels is not None else None)
            ax.plot(np.arange(len(row)), row, color=f"C{i}" if losses.ndim == 1 else None, label=label, lw=1.0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize="small")
    return ax


def lr_finder(result: Any, ax: Any = None) -> Any:
    """`gradtx.lr_finder`'s result: the raw and smoothed loss against the learning rate (log axis),
    the suggestion and, where it came, the divergence."""
    ax = _axes(ax)
    ax.plot(result.learning_rates, result.losses, color="0.7", lw=0.8, label="loss")
    ax.plot(result.learning_rates, result.smoothed, color="C0", lw=1.6, label="smoothed loss")
    ax.axvline(result.suggestion, color="C2", ls="--", label=f"suggestion {result.suggestion:.2g} ({result.rule})")
    if result.diverged_at is not None:
        ax.axvline(result.diverged_at, color="C3", ls=":", label=f"diverged at {result.diverged_at:.2g}")
    ax.set_xscale("log")
    finite = np.asarray(result.smoothed)[np.isfinite(result.smoothed)]
    raw = np.asarray(result.losses)[np.isfinite(result.losses)]
    if finite.size:
        low, high = float(min(finite.min(), raw.min(initial=np.inf))), float(finite[0])
        ax.set_ylim(low - 0.1 * (high - low + 1e-12), max(high, low) + 0.6 * (high - low + 1e-12))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return ax
