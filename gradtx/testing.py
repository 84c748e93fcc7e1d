"""The conformance kit: check that a transformation keeps gradtx's contract.

gradtx's own tests run every public transformation through `check_transformation`; run yours through
it too:

    >>> import jax.numpy as jnp, gradtx
    >>> from gradtx.testing import check_transformation
    >>> check_transformation(gradtx.adam(1e-3), {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})

It checks, raising AssertionError with the leaf's key path on the first failure:

- init is shape-only (works under `jax.eval_shape`) and its state leaves are arrays;
- update keeps the updates' tree structure and dtypes, `None` leaves included;
- the state keeps init's tree structure and dtypes across steps;
- jit equals op-by-op execution (`jax.disable_jit`, to `rtol`), and a jitted step does not retrace
  after the first step;
- the transformation survives pickling equal and equally hashed, and equals a rebuilt copy;
- outputs are finite for finite inputs.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import GradientTransformation, Params, Updates, apply_updates

__all__ = [
    "assert_trees_all_close",
    "assert_trees_same_structure_and_dtypes",
    "check_transformation",
    "pseudo_gradients",
]


def _path(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def assert_trees_same_structure_and_dtypes(actual: Any, expected: Any, what: str = "tree") -> None:
    """Same tree structure (None leaves included) and, leaf by leaf, the same dtype and shape."""
    s_actual: Any = jax.tree.structure(actual)
    s_expected: Any = jax.tree.structure(expected)
    if s_actual != s_expected:
        raise AssertionError(f"{what}: tree structure changed\n  got:      {s_actual}\n  expected: {s_expected}")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        if (jnp.result_type(a), jnp.shape(a)) != (jnp.result_type(b), jnp.shape(b)):
            raise AssertionError(
                f"{what}{_path(path)}: got {jnp.result_type(a)}{list(jnp.shape(a))},"
                f" expected {jnp.result_type(b)}{list(jnp.shape(b))}"
            )


def assert_trees_all_close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 0.0, what: str = "tree"):
    """Leaf-by-leaf `np.testing.assert_allclose`, naming the key path of the first mismatch."""
    structure: Any = jax.tree.structure(actual)
    if structure != jax.tree.structure(expected):
        raise AssertionError(
            f"{what}: tree structures differ\n  got:      {jax.tree.structure(actual)}\n"
            f"  expected: {jax.tree.structure(expected)}"
        )
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        a64 = np.asarray(jnp.asarray(a).astype(jnp.complex128 if jnp.iscomplexobj(a) else jnp.float64))
        b64 = np.asarray(jnp.asarray(b).astype(jnp.complex128 if jnp.iscomplexobj(b) else jnp.float64))
        np.testing.assert_allclose(a64, b64, rtol=rtol, atol=atol, err_msg=f"{what}{_path(path)}")


def pseudo_gradients(params: Params, step: int) -> Updates:
    """Deterministic, varied, finite gradients with the params' structure and dtypes (None kept)."""

    def leaf(path: tuple, p: Any) -> Any:
        p = jnp.asarray(p)
        seed = zlib.crc32(f"{_path(path)}:{step}".encode())
        x = np.random.default_rng(seed).normal(size=p.shape)
        if jnp.iscomplexobj(p):
            x = x + 1j * np.random.default_rng(seed + 1).normal(size=p.shape)
        return jnp.asarray(x).astype(p.dtype)

    return jax.tree_util.tree_map_with_path(leaf, params)


def check_transformation(
    tx: GradientTransformation,
    params: Params,
    steps: int = 3,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    rebuild: Callable[[], GradientTransformation] | None = None,
    extra_args: dict[str, Any] | Callable[[Params, Updates], dict[str, Any]] | None = None,
) -> None:
    """Runs the contract checks of this module on `tx` with `params` (see the module docstring).

    `rebuild`, if given, builds a fresh equal transformation (to check equality by value); by
    default the repr is evaluated in gradtx's namespace where that is possible. `extra_args` are
    passed to every update: a dict (e.g. `{"loss": 1.0}` for `rollback`), or a function
    `(params, grads) -> dict` called at each step with that step's params and gradients (the
    `value=`, `grad=`, `value_fn=` of a line search, which depend on them).
    """
    extra = extra_args if callable(extra_args) else (lambda p, g, fixed=extra_args or {}: fixed)
    init_state = tx.init(params)
    abstract = jax.eval_shape(tx.init, params)
    assert_trees_same_structure_and_dtypes(init_state, abstract, "init(params) vs eval_shape")
    for path, leaf in jax.tree_util.tree_leaves_with_path(init_state):
        if not isinstance(leaf, jax.Array):
            raise AssertionError(f"state{_path(path)}: state leaves must be arrays, got {type(leaf).__name__}")

    traces: list[None] = []

    def step(state: Any, grads: Updates, params: Params) -> tuple[Updates, Any]:
        traces.append(None)  # runs once per trace, never per call
        return tx.update(grads, state, params, **extra(params, grads))

    jstep = jax.jit(step)
    eager_state = jit_state = init_state
    p = params
    for k in range(steps):
        g = pseudo_gradients(params, k)
        with jax.disable_jit():  # op by op: gradtx's update would otherwise run compiled when called eagerly
            u_eager, eager_state = tx.update(g, eager_state, p, **extra(p, g))
        u_jit, jit_state = jstep(jit_state, g, p)
        assert_trees_same_structure_and_dtypes(u_jit, g, f"updates at step {k}")
        assert_trees_same_structure_and_dtypes(jit_state, init_state, f"state at step {k}")
        assert_trees_all_close(u_jit, u_eager, rtol=rtol, atol=atol, what=f"jit vs eager updates at step {k}")
        for path, leaf in jax.tree_util.tree_leaves_with_path((u_jit, jit_state)):
            if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(leaf))):
                raise AssertionError(f"(updates, state){_path(path)} is not finite at step {k}")
        p = apply_updates(p, u_jit)
    if len(traces) != 1:
        raise AssertionError(f"the jitted step was traced {len(traces)} times in {steps} steps; expected once")

    clone = pickle.loads(pickle.dumps(tx))
    if clone != tx or hash(clone) != hash(tx):
        raise AssertionError(f"a pickled copy of {tx!r} is not equal to it")
    if rebuild is not None:
        other = rebuild()
        if other != tx or hash(other) != hash(tx):
            raise AssertionError(f"two builds with the same arguments differ: {tx!r} vs {other!r}")
