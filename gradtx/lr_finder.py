"""The learning-rate range test (Smith, 2017): train once with an exponentially growing learning rate.

    eta_k = min_lr (max_lr / min_lr)^(k / (steps - 1)),   k = 0, ..., steps - 1
    loss_k = loss_fn(params_k, batch_k),  then one update of make_tx(eta) at eta_k
    s_k = b s_{k-1} + (1 - b) loss_k,   smoothed_k = s_k / (1 - b^(k+1))      (b = smoothing)
    diverged at the first k with smoothed_k > diverge x min_{j<=k} smoothed_j (or a non-finite loss)

The run is one compiled `lax.scan`; after the divergence the params stop moving and the curve
ends there. Two suggestions, each stated with its rule in the result, read from the curve before
the divergence and after the first 1 / (1 - b) steps (where the average holds few losses):
  "steepest"  eta at the steepest descent of log(smoothed loss) against log(eta), before the divergence
  "min/10"    eta at the minimum of the smoothed loss, divided by 10
On a quadratic of curvature L, gradient descent diverges for eta > 2 / L and the loss falls fastest
at eta = 1 / L, which "steepest" finds (tests/test_lr_finder.py checks both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Hyperparams, apply_updates, schedule
from gradtx.checks import check
from gradtx.combine import update_one

__all__ = ["LRFinderResult", "lr_finder"]

RULES = {
    "steepest": "the steepest descent of log(smoothed loss) against log(learning rate), before the divergence",
    "min/10": "the minimum of the smoothed loss, divided by 10",
}


def _exponential(hp: Hyperparams, count: jax.Array) -> jax.Array:
    k = jnp.minimum(count, hp.steps - 1).astype(jnp.zeros(()).dtype)
    return hp.min_lr * (hp.max_lr / hp.min_lr) ** (k / max(hp.steps - 1, 1))


@dataclasses.dataclass(frozen=True)
class LRFinderResult:
    """The range test: `learning_rates`, `losses` and `smoothed` up to the divergence (or the end),
    `suggestion` and the `rule` that gave it (`explanation` in words), `diverged_at` (the learning
    rate at which it diverged, or None). `plot(ax)` draws it (gradtx.viz)."""

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    rule: str
    explanation: str
    diverged_at: float | None

    def plot(self, ax: Any = None) -> Any:
        from gradtx import viz

        return viz.lr_finder(self, ax)

    def __str__(self) -> str:
        end = f"diverged at {self.diverged_at:.3g}" if self.diverged_at is not None else "did not diverge"
        return (
            f"suggested learning rate {self.suggestion:.3g}: {self.explanation}; {end}"
            f" ({len(self.learning_rates)} steps from {self.learning_rates[0]:.3g} to {self.learning_rates[-1]:.3g})"
        )


def lr_finder(
    loss_fn: Callable[..., Any],
    params: Any,
    make_tx: Callable[[Any], Any],
    batches: Any = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int | None = None,
    smoothing: float = 0.98,
    diverge: float = 4.0,
    rule: str = "steepest",
) -> LRFinderResult:
    """Smith's learning-rate range test: the loss against an exponentially growing learning rate.

        eta_k = min_lr (max_lr / min_lr)^(k / (steps - 1))
        smoothed_k = debiased EMA of the losses (decay `smoothing`)
        stop at the first smoothed_k > diverge x min(smoothed)      (or a non-finite loss)
        suggestion: "steepest" (most negative d log(loss) / d log(eta)) or "min/10"

    `make_tx(learning_rate)` builds the optimizer; it is given the growing rate as a schedule (every
    gradtx optimizer takes one). `loss_fn(params, batch)` is the loss on one batch; `batches` is a
    tree of arrays whose leading axis is the step (batch k = leaf[k]), or None for `loss_fn(params)`
    (full batch; then `steps` is needed). `smoothing` averages out minibatch noise; for a
    deterministic loss pass 0 (an average lags behind a loss that falls by decades). The result
    holds the curve up to the divergence, the suggestion and its rule; `result.plot()` draws it.

    >>> import gradtx, jax.numpy as jnp
    >>> loss = lambda w: jnp.sum(w**2)  # curvature L = 2: the loss falls fastest at 1 / L, diverges above 2 / L
    >>> r = gradtx.lr_finder(loss, jnp.ones(2), gradtx.sgd, steps=61, min_lr=1e-2, max_lr=10.0, smoothing=0.0)
    >>> print(f"{r.suggestion:.2f} {r.diverged_at:.2f}")
    0.50 1.58
    """
    if rule not in RULES:
        raise ValueError(f"lr_finder: rule must be one of {sorted(RULES)}, got {rule!r}")
    check("lr_finder", min_lr=(min_lr, "(0, inf)"), max_lr=(max_lr, "(0, inf)"))
    check("lr_finder", smoothing=(smoothing, "[0, 1)"), diverge=(diverge, "(1, inf)"))
    if max_lr <= min_lr:
        raise ValueError(f"lr_finder: max_lr must be above min_lr, got {max_lr!r} <= {min_lr!r}")
    if batches is None:
        if steps is None:
            raise TypeError("lr_finder: without batches (a full-batch loss_fn(params)), pass steps")
    else:
        lengths = {int(jnp.shape(x)[0]) for x in jax.tree.leaves(batches)}
        if len(lengths) != 1:
            raise ValueError(f"lr_finder: every leaf of batches needs the same leading axis (steps), got {lengths}")
        steps = lengths.pop() if steps is None else steps
        if steps > min(lengths | {steps}):
            raise ValueError(f"lr_finder: steps={steps} but batches has only {min(lengths)}")
    check("lr_finder", steps=(steps, "[2, inf)"))
    assert steps is not None
    lr = schedule("lr_finder.exponential", _exponential, min_lr=min_lr, max_lr=max_lr, steps=int(steps))
    tx = make_tx(lr)
    loss = _run(loss_fn, tx, params, batches, int(steps), float(smoothing), float(diverge))
    losses, smoothed = (np.asarray(x, np.float64) for x in loss[:2])
    diverged_k = loss[2]
    diverged_k = int(diverged_k)
    rates = np.asarray(jax.vmap(lr)(jnp.arange(steps, dtype=jnp.int32)), np.float64)
    end = steps if diverged_k < 0 else diverged_k
    rates, losses, smoothed = rates[: end + 1], losses[: end + 1], smoothed[: end + 1]
    # The divergence itself is no suggestion; neither are the first 1 / (1 - smoothing) steps, where
    # the average holds few losses and their noise reads as a slope.
    stop = end if diverged_k >= 0 else steps
    skip = min(int(np.ceil(1 / (1 - smoothing))) if smoothing > 0 else 0, stop // 4)
    usable = slice(skip, stop)
    log_s, log_r = np.log(np.maximum(smoothed[usable], 1e-300)), np.log(rates[usable])
    if rule == "steepest" and len(log_s) >= 2:
        slope = np.diff(log_s) / np.diff(log_r)  # between eta_k and eta_{k+1}: at eta_k's step
        suggestion = float(rates[skip + int(np.nanargmin(slope))])
    else:
        suggestion = float(rates[skip + int(np.nanargmin(smoothed[usable]))] / 10)
        rule = "min/10"  # also where too few steps came before the divergence for a slope
    return LRFinderResult(
        learning_rates=rates, losses=losses, smoothed=smoothed, suggestion=suggestion, rule=rule,
        explanation=RULES[rule], diverged_at=None if diverged_k < 0 else float(rates[diverged_k]),
    )  # fmt: skip


def _run(loss_fn: Callable, tx: Any, params: Any, batches: Any, steps: int, b: float, diverge: float) -> Any:
    @jax.jit
    def run(params: Any, batches: Any) -> Any:
        def step(carry: Any, xs: Any) -> Any:
            p, state, ema, best, diverged_k = carry
            k, batch = xs
            loss, g = jax.value_and_grad(loss_fn)(p, *(() if batches is None else (batch,)))
            ema = b * ema + (1 - b) * loss
            smoothed = ema / (1 - b ** (k + 1).astype(ema.dtype))
            best = jnp.minimum(best, smoothed)
            now = (diverged_k < 0) & (~jnp.isfinite(smoothed) | (smoothed > diverge * best))
            diverged_k = jnp.where(now, k, diverged_k)
            u, new_state = update_one(tx, g, state, p, {"loss": loss})
            moving = diverged_k < 0  # once diverged, the params stop (no overflow to inf and NaN)
            p = jax.tree.map(lambda a, c: jnp.where(moving, a, c), apply_updates(p, u), p)
            state = jax.tree.map(lambda a, c: jnp.where(moving, a, c), new_state, state)
            return (p, state, ema, best, diverged_k), (loss, smoothed)

        dtype = jax.eval_shape(loss_fn, params, *(() if batches is None else (jax.tree.map(lambda x: x[0], batches),)))
        zero = jnp.zeros((), dtype.dtype)
        carry = (params, tx.init(params), zero, zero + jnp.inf, jnp.asarray(-1, jnp.int32))
        ks = jnp.arange(steps, dtype=jnp.int32)
        xs = (ks, None if batches is None else jax.tree.map(lambda x: x[:steps], batches))
        (_, _, _, _, diverged_k), (losses, smoothed) = jax.lax.scan(step, carry, xs)
        return losses, smoothed, diverged_k

    return run(params, batches)
