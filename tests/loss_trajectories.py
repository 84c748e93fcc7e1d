"""Closed-loop runs on a noisy quadratic whose loss the transformations may read, for the reference tests.

A multi-leaf model moves under its own updates (params <- params + u) on a noisy quadratic: the
gradient at p is (p - 1/2) + 0.3 noise_k, the loss 1/2 ||p - 1/2||^2 (passed as `value=` to the
transformations that read it). `closeness` measures how far a
trajectory is from a reference one, for the float32 rule: gradtx's float32 run is no farther from
the float64 reference than optax's float32 run is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.testing import pseudo_gradients

STEPS = 32


def model(dtype: Any = jnp.float64) -> dict:
    return {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(3, 4),
        "b": jnp.full((4,), 0.1, dtype),
        "layers": [jnp.ones((2, 2), dtype), jnp.asarray(0.3, dtype)],
    }


def loss(params: Any) -> jax.Array:
    return 0.5 * sum(jnp.sum((p - 0.5) ** 2) for p in jax.tree.leaves(params))


def gradient(params: Any, noise: Any) -> Any:
    return jax.tree.map(lambda p, e: (p - 0.5) + 0.3 * e, params, noise)


def noises(params: Any, steps: int = STEPS) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[pseudo_gradients(params, k) for k in range(steps)])


def run(txs: Mapping[str, Any], params: Any, value: frozenset[str] = frozenset(), steps: int = STEPS) -> dict:
    """{name: (updates, params) at every step, stacked} for each transformation.

    One jitted step per transformation, called `steps` times: on these small trees that compiles
    faster than a scan over all of them, and runs faster than op by op. The transformations named
    in `value` get the loss at the current params as `value=`.
    """
    noise = [pseudo_gradients(params, k) for k in range(steps)]
    out = {}
    for name, tx in txs.items():
        takes_value = name in value

        @jax.jit
        def step(p: Any, state: Any, e: Any, tx: Any = tx, takes_value: bool = takes_value) -> Any:
            u, state = tx.update(gradient(p, e), state, p, **({"value": loss(p)} if takes_value else {}))
            return u, jax.tree.map(lambda x, v: x + v, p, u), state

        p, state, trace = params, tx.init(params), []
        for e in noise:
            u, p, state = step(p, state, e)
            trace.append((u, p))
        out[name] = jax.tree.map(lambda *xs: jnp.stack(xs), *trace)
    return out


class Runs:
    """Trajectories computed when first asked for and kept: `runs("gradtx", jnp.float64, name)`.

    `cases[name](m, c)` builds the transformation from a library module `m` (gradtx or optax) and
    the module that holds the contrib names `c` (gradtx or optax.contrib).
    """

    def __init__(self, cases: Mapping[str, Any], value: frozenset[str] = frozenset(), params: Any = model):
        self.cases, self.value, self.params, self.done = cases, value, params, {}

    def __call__(self, library: str, dtype: Any, name: str) -> Any:
        key = (library, jnp.dtype(dtype), name)
        if key not in self.done:
            import optax
            import optax.contrib

            import gradtx

            m, c = (gradtx, gradtx) if library == "gradtx" else (optax, optax.contrib)
            with jax.numpy_dtype_promotion("standard" if library == "optax" else "strict"):
                tx = self.cases[name](m, c)
                self.done[key] = run({name: tx}, self.params(dtype), self.value)[name]
        return self.done[key]


def closeness(trajectory: Any, reference: Any) -> float:
    """The largest difference, relative to the reference leaf's largest magnitude, over all leaves."""
    worst = 0.0
    for a, b in zip(jax.tree.leaves(trajectory), jax.tree.leaves(reference), strict=True):
        a64, b64 = np.asarray(a).astype(np.complex128), np.asarray(b).astype(np.complex128)
        scale = max(float(np.abs(b64).max(initial=0)), 1e-300)
        worst = max(worst, float(np.abs(a64 - b64).max(initial=0)) / scale)
    return worst


def assert_float32_no_less_accurate(ours32: Any, theirs32: Any, reference64: Any, what: str) -> None:
    """gradtx's float32 trajectory is no farther from the float64 reference than optax's float32 one,
    up to a few float32 ulps, or 1% of optax's own distance where that is larger (a trajectory that
    amplifies roundings, as Mechanic's learned scale, lands within that of optax's either way)."""
    ours, theirs = closeness(ours32, reference64), closeness(theirs32, reference64)
    slack = max(4 * float(np.finfo(np.float32).eps), 0.01 * theirs)
    assert ours <= theirs + slack, f"{what}: gradtx float32 is {ours:.3g} from float64, optax float32 {theirs:.3g}"


def torch_run(make_optimizer: Any, params: Any, steps: int = STEPS, value: bool = False) -> list:
    """The params after each step of a torch optimizer on the same problem, in float64.

    `make_optimizer(tensors)` builds it over the params' leaves (in `jax.tree.leaves` order); with
    `value=True` its step is given the loss (`step(loss=...)`, as MoMo's authors' code takes it).
    """
    import torch

    leaves, structure = jax.tree.flatten(params)
    noise = [np.asarray(x) for x in jax.tree.leaves(noises(params, steps))]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # tensors an optimizer creates itself (torch.tensor(0.)) too
    try:
        tensors = [torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in leaves]
        optimizer = make_optimizer(tensors)
        out = []
        for k in range(steps):
            with torch.no_grad():
                for t, e in zip(tensors, noise, strict=True):
                    t.grad = (t - 0.5) + 0.3 * torch.tensor(e[k], dtype=torch.float64)
                current = 0.5 * sum(((t - 0.5) ** 2).sum() for t in tensors)
            optimizer.step(loss=current) if value else optimizer.step()
            out.append(jax.tree.unflatten(structure, [t.detach().numpy().copy() for t in tensors]))
    finally:
        torch.set_default_dtype(default)
    return out


def stacked(trees: list) -> Any:
    """A list of trees (one per step) as one tree of arrays with a leading step axis."""
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)
