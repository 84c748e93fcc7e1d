"""Trajectories against optax, shared by the tests of issue 10's transformations and wrappers.

A trajectory is STEPS steps of one compiled `lax.scan` on a multi-leaf model (a dense kernel, a
bias, a convolution kernel, a scalar) whose params move by the updates, so that transformations
that read the params see a changing model. `compare_with_optax` runs the same composition built
from gradtx and from optax (`make(module)`): in float64 both must agree to rtol 1e-9; in float32,
gradtx's distance to optax's float64 trajectory must be no larger than optax's own float32 distance
(plus a few ulps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx

STEPS = 32
F32_ULP = float(np.finfo(np.float32).eps)


def model(dtype: Any = jnp.float64) -> dict:
    rng = np.random.default_rng(7)
    return {
        "w": jnp.asarray(rng.normal(size=(3, 4)), dtype),
        "b": jnp.asarray(rng.normal(size=(4,)) * 0.1, dtype),
        "conv": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), dtype),
        "s": jnp.asarray(0.7, dtype),
    }


def gradients(params: dict, steps: int = STEPS, seed: int = 0, scale: Any = None) -> dict:
    """Gradients for `steps` steps (stacked on axis 0), their size swept over the run (0.05x to 3x by
    default) so that thresholds are crossed in both directions."""
    rng = np.random.default_rng(seed)
    size = np.linspace(0.05, 3.0, steps) if scale is None else np.asarray(scale)

    def leaf(p: jax.Array) -> jax.Array:
        g = rng.normal(size=(steps, *p.shape)) * size.reshape(-1, *[1] * p.ndim)
        return jnp.asarray(g, p.dtype)

    return jax.tree.map(leaf, params)


def _scan(tx: Any, p0: Any, gs: Any, lr: float, extra_args: dict) -> Any:
    def step(carry: Any, g: Any) -> Any:
        p, state = carry
        u, state = tx.update(g, state, p, **extra_args)
        p = jax.tree.map(lambda x, v: x + lr * v, p, u)
        return (p, state), (u, p)

    (_, state), (us, ps) = jax.lax.scan(step, (p0, tx.init(p0)), gs)
    return us, ps, state


def trajectories(tx: Any, problems: list, standard: bool = False, lr: float = 0.1, **extra_args: Any) -> list:
    """`trajectory` for each (params, grads) of `problems`, in one compiled program (one compilation)."""
    run = jax.jit(lambda problems: [_scan(tx, p, g, lr, extra_args) for p, g in problems])
    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return run(problems)
    return run(problems)


def trajectory(tx: Any, params: Any, grads: Any, standard: bool = False, lr: float = 0.1, **extra_args: Any):
    """(updates at each step, params at each step, final state); p <- p + lr u at each step."""
    return trajectories(tx, [(params, grads)], standard, lr, **extra_args)[0]


def assert_close(actual: Any, expected: Any, rtol: float = 1e-9, atol: float = 0.0, what: str = "") -> None:
    structure: Any = jax.tree.structure(actual)
    assert structure == jax.tree.structure(expected), f"{what}: {structure} != {jax.tree.structure(expected)}"
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{what}{jax.tree_util.keystr(path)}")


def distance(actual: Any, reference: Any) -> float:
    """The largest difference over every leaf, relative to that leaf's largest reference value."""
    out = 0.0
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(reference), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        out = max(out, float(np.max(np.abs(a - b), initial=0.0)) / max(float(np.max(np.abs(b), initial=0.0)), 1e-30))
    return out


def to(dtype: Any, tree_: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree_)


def compare_with_optax(
    make: Callable[[Any], Any],
    params: Any = None,
    grads: Any = None,
    rtol: float = 1e-9,
    float32: bool = True,
    lr: float = 0.1,
    **extra_args: Any,
) -> tuple:
    """make(gradtx) against make(optax): float64 at rtol, then float32 no less accurate than optax's.

    Compares updates and params at every step. Returns (gradtx's, optax's) float64 trajectories.
    """
    params = model() if params is None else params
    grads = gradients(params) if grads is None else grads
    problems = [(params, grads)] + ([(to(jnp.float32, params), to(jnp.float32, grads))] if float32 else [])
    ours = trajectories(make(gradtx), problems, lr=lr, **extra_args)
    theirs = trajectories(make(optax), problems, standard=True, lr=lr, **extra_args)
    assert_close(ours[0][:2], theirs[0][:2], rtol=rtol, atol=rtol * 1e-3, what="float64 (updates, params)")
    if float32:
        d_ours, d_theirs = distance(ours[1][:2], theirs[0][:2]), distance(theirs[1][:2], theirs[0][:2])
        assert d_ours <= d_theirs + 4 * F32_ULP, f"float32: gradtx is {d_ours:.3g} from float64, optax {d_theirs:.3g}"
    return ours[0], theirs[0]


def fields(state: Any) -> list:
    """(key path, leaf) of a state: how the layouts of two libraries' states are compared (NamedTuple
    fields by name, dict keys, tuple positions), with the leaves' shapes and dtypes."""
    return [
        (jax.tree_util.keystr(path), jnp.shape(x), jnp.result_type(x))
        for path, x in jax.tree_util.tree_flatten_with_path(state)[0]
    ]


def assert_same_layout(ours: Any, theirs: Any) -> None:
    """The same fields, leaves, shapes and dtypes, with the same values (a checkpoint of one loads in the other)."""
    ours_, theirs_ = fields(ours), fields(theirs)
    assert ours_ == theirs_, f"state layouts differ:\n  gradtx: {ours_}\n  optax:  {theirs_}"
    names = lambda s: [type(n).__name__ for n in _nodes(s)]
    assert names(ours) == names(theirs), f"state node types differ: {names(ours)} vs {names(theirs)}"
    assert_close(jax.tree.leaves(ours), jax.tree.leaves(theirs), rtol=1e-9)


def _nodes(tree_: Any) -> list:
    """The NamedTuple nodes of a tree, depth first (their class names are part of a checkpoint's layout)."""
    found: list = []

    def walk(x: Any) -> None:
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            found.append(x)
        if isinstance(x, tuple | list):
            for v in x:
                walk(v)
        elif isinstance(x, dict):
            for k in sorted(x):
                walk(x[k])

    walk(tree_)
    return found
