"""Properties of every registry entry over random trees and random valid hyperparameters (hypothesis).

The trees nest dicts, lists and tuples, with None leaves, 0-d and zero-size arrays, shapes up to
3 x 4 and float32/bfloat16/float64 leaves; gradients are random at a random scale, and an entry
with a `sweep` gets a random hyperparameter within its sweep's range. For two steps:

- updates have the gradients' structure (None kept) and dtypes; the state keeps the structure
  and dtypes that `init` gave it; the jitted steps' trace has the same types; all is finite;
- `jax.vmap` over a batch of params and gradients (and of copies of the hyperparameter, a tracer
  then) equals a Python loop over the batch with the hyperparameter as a number;
- the compiled steps, the hyperparameter traced, equal the steps run eagerly with it as a number.

Speed: one XLA compilation costs 0.1-0.5 s on a 2-core machine and a new tree is a new program,
so the first two properties run eagerly (JAX caches each operation per shape and dtype, and the
entries draw many of the same examples, so the cache is shared) and take the jitted types from a
trace; only the last one compiles, once per entry and example. Examples per entry: 10, 4 (eager
vmap costs a few eager steps) and 2 (a quarter of those, at least one, for `EAGER_HEAVY`). Empty
trees, and the contract on fixed trees under jit, are tests/test_contract.py's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradtx
from gradtx.testing import assert_trees_same_structure_and_dtypes
from tests.registry import TRANSFORMATION_CASES

CASES = [pytest.param(case, id=case.id) for case in TRANSFORMATION_CASES]
DTYPES = (jnp.float32, jnp.bfloat16, jnp.float64)
# Shapes up to 3 x 4: a few of each rank, so that JAX's per-shape caches are shared across examples.
SHAPES = ((), (0,), (3,), (0, 4), (2, 3), (3, 4))
# (rtol, atol relative to the leaf's largest value) by dtype. float64: the registry's schedules return
# float32 values, so a step size carries float32 rounding, which jit and eager may round differently.
# bfloat16: under jit XLA may keep intermediates in float32 where eager rounds them (as in
# tests/test_contract.py).
TOLERANCE = {
    jnp.dtype(jnp.float32): (1e-5, 1e-6),
    jnp.dtype(jnp.bfloat16): (2e-2, 2e-2),
    jnp.dtype(jnp.float64): (1e-6, 1e-9),
}

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------------
# Strategies: a tree of leaf specs (shape, dtype index), made into arrays from a seed


@st.composite
def leaf_specs(draw):
    if draw(st.integers(0, 7)) == 0:
        return None  # a frozen part of a model
    return ("leaf", draw(st.sampled_from(SHAPES)), draw(st.integers(0, len(DTYPES) - 1)))


def containers(children):
    keys = st.sampled_from(["a", "b", "w", "x"])  # "b" is what the registry's decay_mask leaves out
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=3),
    )


def has_array(spec) -> bool:
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] == "leaf":
        return True
    return any(has_array(v) for v in (spec.values() if isinstance(spec, dict) else spec or ()))


# At least one array (empty trees are test_contract.py's; a bare None is not a tree of params:
# update(g, s, params=None) means "no params given").
tree_specs = st.recursive(leaf_specs(), containers, max_leaves=4).filter(has_array)


def make_tree(spec, rng: np.random.Generator, scale: float = 1.0, batch: int = 0):
    """NumPy arrays in their final dtypes (so that making them compiles nothing), `batch` of each
    leaf stacked on a leading axis if batch > 0."""
    if spec is None:
        return None
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] == "leaf":
        shape = (batch, *spec[1]) if batch else spec[1]
        return np.asarray(scale * rng.normal(size=shape), dtype=DTYPES[spec[2]])
    if isinstance(spec, dict):
        return {k: make_tree(v, rng, scale, batch) for k, v in spec.items()}
    children = [make_tree(v, rng, scale, batch) for v in spec]
    return tuple(children) if isinstance(spec, tuple) else children


@st.composite
def problems(draw, case, batch: int = 0):
    """(params, [grads at step 0, grads at step 1], hyperparameter or None); params and grads with a
    leading batch axis if batch > 0. The leaves are NumPy arrays: JAX takes them as they are."""
    spec = draw(tree_specs)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.0, 1e-3, 1.0, 1e3]))  # of the gradients
    h = None
    if case.sweep is not None:
        h = draw(st.floats(min(case.sweep_values), max(case.sweep_values), allow_nan=False))
    params = make_tree(spec, rng, 1.0, batch)
    grads = [make_tree(spec, rng, scale, batch) for _ in range(2)]
    return params, grads, h


# ---------------------------------------------------------------------------------------------------
# Helpers


def build(case, h):
    return case.build() if h is None else case.sweep(gradtx, h)


def steps(tx, grads: list, params) -> list:
    """init, then (updates, state) after each step, the params updated in between.

    Op by op when called eagerly (gradtx would otherwise compile each update called outside jit):
    JAX caches each operation per shape and dtype, so new random trees cost no compilation.
    """
    with jax.disable_jit():
        state = tx.init(params)
        out = [state]
        for g in grads:
            updates, state = tx.update(g, state, params)
            params = gradtx.apply_updates(params, updates)
            out.append((updates, state))
    return out


@functools.partial(jax.jit, static_argnums=0)
def jit_steps(case, h, grads, params) -> list:
    """The steps compiled with the hyperparameter traced: one compilation per entry and tree."""
    return steps(build(case, h), grads, params)


def assert_finite(tree, what: str) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            values = np.asarray(leaf).astype(np.float64)  # in NumPy: no JAX operation to compile per shape
            assert np.isfinite(values).all(), f"{what}{jax.tree_util.keystr(path)} is not finite: {leaf}"


def assert_close_by_dtype(actual, expected, params, what: str) -> None:
    """Leaf by leaf, with the tolerance of the less precise of the leaf's dtype and its param's
    (a float32 second moment of bfloat16 gradients carries bfloat16 rounding, which XLA may skip)."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), what
    param_dtypes = {jax.tree_util.keystr(path): p.dtype for path, p in jax.tree_util.tree_flatten_with_path(params)[0]}
    pairs = zip(jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected), strict=True)
    for (path, a), b in pairs:
        at = jax.tree_util.keystr(path)
        assert a.dtype == b.dtype, f"{what}{at}: {a.dtype} vs {b.dtype}"
        if not jnp.issubdtype(a.dtype, jnp.inexact):
            np.testing.assert_array_equal(a, b, err_msg=f"{what}{at}")  # step counts
            continue
        # The param whose key path ends this leaf's (the longest such): the leaf's coordinates. A
        # leaf of no param (a hyperparameter that inject_hyperparams keeps in the state) has its own.
        owner = max((k for k in param_dtypes if at.endswith(k)), key=len, default=None)
        param_dtype = a.dtype if owner is None else param_dtypes[owner]
        rtol, atol = max(TOLERANCE[jnp.dtype(a.dtype)], TOLERANCE[jnp.dtype(param_dtype)])
        a64, b64 = (np.asarray(x).astype(np.float64) for x in (a, b))
        atol *= max(1.0, float(np.abs(b64).max(initial=0)))
        np.testing.assert_allclose(a64, b64, rtol=rtol, atol=atol, err_msg=f"{what}{at}")


def unstack(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def stack(trees: list):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


# ---------------------------------------------------------------------------------------------------
# Properties


def examples(case, n: int):
    """Hypothesis's settings for `n` examples of `case`: fewer (a quarter, at least one) for the
    entries whose eager steps run hundreds of small operations per leaf (`quantized_state`: block
    scales, codebook search; its codecs' properties are tests/test_quantize.py's)."""
    return settings(max_examples=max(1, n // 4) if case.name in EAGER_HEAVY else n, **SETTINGS)


EAGER_HEAVY = frozenset({"quantized_state"})


@pytest.mark.parametrize("case", CASES)
def test_structure_dtypes_and_finiteness(case):
    examples(case, 10)(given(data=st.data())(_structure_dtypes_and_finiteness))(case)


def _structure_dtypes_and_finiteness(case, data):
    params, grads, h = data.draw(problems(case))
    tx = build(case, h)
    state, *out = eager = steps(tx, grads, params)
    for k, (updates, new_state) in enumerate(out):
        assert_trees_same_structure_and_dtypes(updates, grads[k], f"updates at step {k}")
        assert_trees_same_structure_and_dtypes(new_state, state, f"state at step {k}")
        assert_finite((updates, new_state), f"step {k}: (updates, state)")
    # The jitted steps (traced, not compiled) return the same types.
    jitted = jax.jit(steps, static_argnums=0).trace(tx, grads, params).out_info
    assert_trees_same_structure_and_dtypes(jitted, eager, "jitted steps")


@pytest.mark.parametrize("case", CASES)
def test_vmap_over_models_and_hyperparameters_equals_a_loop(case):
    """vmap over two models, and over two copies of the hyperparameter (a tracer then), equals a
    loop over the models with the hyperparameter as a number. Eager vmap is slow (a few times an
    eager step), hence fewer examples."""
    examples(case, 4)(given(data=st.data())(_vmap_equals_a_loop))(case)


def _vmap_equals_a_loop(case, data):
    batch_params, batch_grads, h = data.draw(problems(case, batch=2))
    tx = build(case, h)
    looped = [steps(tx, unstack(batch_grads, i), unstack(batch_params, i)) for i in range(2)]
    hs = None if h is None else jnp.full(2, h, jnp.float64)
    batched = jax.vmap(lambda h, g, p: steps(build(case, h), g, p))(hs, batch_grads, batch_params)
    assert_close_by_dtype(batched, stack(looped), unstack(batch_params, 0), "vmap vs loop: ")


@pytest.mark.parametrize("case", CASES)
def test_jit_with_a_traced_hyperparameter_equals_eager(case):
    """One compilation per example (0.1-0.5 s on two cores), hence two examples per entry."""
    examples(case, 2)(given(data=st.data())(_jit_equals_eager))(case)


def _jit_equals_eager(case, data):
    params, grads, h = data.draw(problems(case))
    eager = steps(build(case, h), grads, params)
    compiled = jit_steps(case, None if h is None else jnp.asarray(h, jnp.float64), grads, params)
    assert_close_by_dtype(compiled, eager, params, "jit vs eager: ")
