"""Sweeps in one compiled program: train a population of configurations with `vmap` under one `jit`.

    for each configuration i (vmapped):  tx_i = make_tx(hparams[i]);  params_0 = params
        for k < steps (lax.scan):        loss_k = loss_fn(params_k, batch_k)
                                         params_{k+1} = params_k + tx_i(grad loss_k)
    returns losses[i, k] (and, if asked, the final params of every configuration)

A gradtx hyperparameter may be a traced value, so `make_tx` builds each configuration's optimizer
from its row of `hparams` inside the vmapped function: 64 learning rates cost one compilation and
one program, whose matrix products run batched over the configurations.

Several optimizers in one sweep: pass a sequence of builders as `make_tx` and an integer entry
`hparams["optimizer"]` choosing one per configuration. Their states must have the same leaves
(shapes and dtypes, e.g. adam and adabelief: count, mu, nu), since a vmapped program has one state
layout; each configuration then runs its own optimizer through `lax.switch` (under vmap every
branch is computed and the chosen one kept). Optimizers that differ in a hyperparameter only (adam
and adamw: weight_decay = 0 or not; sgd with momentum 0 or 0.9) need no switch: sweep that value.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import apply_updates
from gradtx.checks import POSITIVE_COUNT, check
from gradtx.combine import update_one

__all__ = ["SweepResult", "sweep"]


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """losses[i, k]: configuration i's loss at step k (before its k-th update); params: the final
    params of every configuration stacked on a leading axis (None unless keep_params=True); hparams;
    compile_s and run_s: the seconds spent compiling the program and running it."""

    losses: np.ndarray
    params: Any
    hparams: Any
    compile_s: float = float("nan")
    run_s: float = float("nan")

    @property
    def final_losses(self) -> np.ndarray:
        """Each configuration's last recorded loss."""
        return self.losses[:, -1]

    def best(self) -> int:
        """The configuration with the lowest finite final loss."""
        final = np.where(np.isfinite(self.final_losses), self.final_losses, np.inf)
        return int(np.argmin(final))


class _Switch:
    """The optimizer `makers[index](h)` for a traced index, on a state flattened to its leaves."""

    def __init__(self, makers: Sequence[Callable[[Any], Any]], h: Any, index: jax.Array):
        self.txs = [make(h) for make in makers]
        self.index = index

    def init(self, params: Any) -> list:
        shapes = [jax.eval_shape(tx.init, params) for tx in self.txs]
        layouts = [[(x.shape, x.dtype) for x in jax.tree.leaves(s)] for s in shapes]
        for k, layout in enumerate(layouts[1:], 1):
            if layout != layouts[0]:
                raise ValueError(
                    "sweep: the optimizers of one sweep need states with the same leaves (shapes and"
                    f" dtypes); optimizer 0 ({self.txs[0]!r}) has {layouts[0]}, optimizer {k}"
                    f" ({self.txs[k]!r}) has {layout}. Sweep those in separate calls."
                )
        self.treedefs = [jax.tree.structure(s) for s in shapes]
        branches = [lambda p, tx=tx: jax.tree.leaves(tx.init(p)) for tx in self.txs]
        return jax.lax.switch(self.index, branches, params)

    def update(self, g: Any, state: list, params: Any, extra: dict) -> tuple[Any, list]:
        def branch(tx: Any, treedef: Any) -> Callable:
            def run(g: Any, state: list, params: Any) -> tuple[Any, list]:
                u, new = update_one(tx, g, jax.tree.unflatten(treedef, state), params, extra)
                return u, jax.tree.leaves(new)

            return run

        branches = [branch(tx, td) for tx, td in zip(self.txs, self.treedefs, strict=True)]
        return jax.lax.switch(self.index, branches, g, state, params)


class _One:
    def __init__(self, tx: Any):
        self.tx = tx

    def init(self, params: Any) -> Any:
        return self.tx.init(params)

    def update(self, g: Any, state: Any, params: Any, extra: dict) -> Any:
        return update_one(self.tx, g, state, params, extra)


def _stack(hparams: Any) -> Any:
    if isinstance(hparams, list | tuple) and hparams and isinstance(hparams[0], dict):
        return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *hparams)
    return jax.tree.map(jnp.asarray, hparams)


def sweep(
    make_tx: Callable[[Any], Any] | Sequence[Callable[[Any], Any]],
    loss_fn: Callable[..., Any],
    params: Any,
    hparams: Any,
    data: Any = None,
    *,
    steps: int | None = None,
    seeds: Any = None,
    keep_params: bool = False,
) -> SweepResult:
    """Trains every configuration of `hparams` at once: one `jax.jit(jax.vmap(train))`.

        losses[i, k] = loss_fn(params_k^i, batch_k),   params_{k+1}^i = params_k^i + make_tx(hparams[i])(g)

    `hparams` is a tree of arrays with one entry per configuration on the leading axis (or a list
    of dicts of numbers, stacked for you); `make_tx(h)` builds an optimizer from one configuration's
    values (traced scalars), or is a sequence of builders chosen by the integer `h["optimizer"]`
    (see the module docstring). `loss_fn(params, batch)` is the loss of one batch; `data` is None
    (then `loss_fn(params)`, and `steps` is needed), a tree of arrays whose leading axis is the step
    (batch k = leaf[k], the same for every configuration), or a function `(key, k) -> batch`.
    `seeds` (an int per configuration) gives each configuration the key `jax.random.key(seed)`,
    passed to `data` and, if `params` is a function `key -> params`, to it (its own initial params);
    without seeds every configuration gets `jax.random.key(0)`. The loss is passed to every update
    as `loss=` (so `rollback` works inside a sweep). Equal to running each configuration alone
    (tests/test_sweep.py checks it to float64 rounding), in one compiled program.

    >>> import gradtx, jax.numpy as jnp
    >>> quad = gradtx.landscapes.quadratic(condition=10.0)  # diverges for eta > 1 / 10
    >>> lrs = {"lr": jnp.array([0.01, 0.05, 0.2])}
    >>> result = gradtx.sweep(lambda h: gradtx.sgd(h["lr"]), quad, jnp.zeros(2), lrs, steps=50)
    >>> result.losses.shape, result.best()
    ((3, 50), 1)
    """
    hparams = _stack(hparams)
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) else -1 for x in jax.tree.leaves(hparams)}
    if not sizes or -1 in sizes or len(sizes) != 1:
        raise ValueError(
            "sweep: hparams must hold arrays with one entry per configuration on the leading axis, all"
            f" of one length; got leading lengths {sorted(sizes)} (-1: a scalar)"
        )
    n = sizes.pop()
    several = not callable(make_tx)
    if several and not (isinstance(hparams, dict) and "optimizer" in hparams):
        raise ValueError('sweep: with a sequence of builders, hparams["optimizer"] must choose one per configuration')
    if (callable(data) or data is None) and steps is None:
        raise TypeError("sweep: pass steps (data is a function or None)")
    if not (callable(data) or data is None):
        lengths = {int(jnp.shape(x)[0]) for x in jax.tree.leaves(data)}
        if len(lengths) != 1:
            raise ValueError(f"sweep: every leaf of data needs the same leading axis (the step), got {sorted(lengths)}")
        steps = min(lengths) if steps is None else steps
    check("sweep", steps=(steps, POSITIVE_COUNT))
    if not (callable(data) or data is None) and steps > min(lengths):  # type: ignore[operator]  # checked above
        raise ValueError(f"sweep: steps={steps} but data holds {min(lengths)} batches")
    seeds = jnp.zeros(n, jnp.uint32) if seeds is None else jnp.asarray(seeds).astype(jnp.uint32)
    if seeds.shape != (n,):
        raise ValueError(f"sweep: seeds must hold one int per configuration ({n}), got shape {seeds.shape}")
    assert steps is not None
    stacked = None if callable(data) or data is None else jax.tree.map(lambda x: x[:steps], data)

    def train(h: Any, seed: jax.Array, shared: Any, stacked: Any) -> tuple[jax.Array, Any]:
        key = jax.random.key(seed)
        p0 = params(key) if callable(params) else shared
        if several:
            tx: Any = _Switch(make_tx, h, jnp.asarray(h["optimizer"]).astype(jnp.int32))  # type: ignore[arg-type]
        else:
            tx = _One(make_tx(h))  # type: ignore[operator]

        def step(carry: Any, xs: Any) -> Any:
            p, state = carry
            k, batch = xs
            if callable(data):
                batch = data(key, k)
            loss, g = jax.value_and_grad(loss_fn)(p, *(() if data is None else (batch,)))
            u, state = tx.update(g, state, p, {"loss": loss})
            return (apply_updates(p, u), state), loss

        xs = (jnp.arange(steps, dtype=jnp.int32), stacked)
        (p, _), losses = jax.lax.scan(step, (p0, tx.init(p0)), xs)
        return losses, (p if keep_params else None)

    shared = None if callable(params) else params
    start = time.perf_counter()
    run = jax.jit(jax.vmap(train, in_axes=(0, 0, None, None))).lower(hparams, seeds, shared, stacked).compile()
    compiled = time.perf_counter()
    losses, final = jax.block_until_ready(run(hparams, seeds, shared, stacked))
    done = time.perf_counter()
    return SweepResult(np.asarray(losses), final, hparams, compiled - start, done - compiled)
