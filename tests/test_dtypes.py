"""DESIGN.md section 4 (numerics) for every registry entry: the dtype policy and finiteness at the edges.

- The dtype policy, as a matrix of param dtype (float32, bfloat16, float16, float64, complex64) by
  hyperparameter kind (Python float, NumPy scalar, concrete JAX 0-d array, traced JAX scalar,
  schedule where the builder takes one): over two steps, updates keep the gradients' dtypes and
  the state keeps the dtypes `init` gave it; second moments are real and at least float32; first
  moments are in the params' dtype unless an `accumulator_dtype` says otherwise; step counters are
  int32 scalars. The types are those of the jitted steps, read from their trace (what jit compiles
  and returns); the values come from running the same steps eagerly and must be finite. Compiling
  every cell would take minutes on two cores; tests/test_contract.py compiles and runs the
  float32/bfloat16/float64 cases.
- bfloat16 params with `accumulator_dtype=jnp.float32` keep float32 first moments.
- A complex param's first moment stays complex at `accumulator_dtype`'s precision (its imaginary
  part kept); a real param's stays real.
- Finite for finite inputs: zero gradients at step 0, zero clipping thresholds, float16 gradients
  near float16's maximum, and `jax.grad` through `update` (a meta-gradient, against finite
  differences).
- Step counters saturate at the int32 maximum instead of wrapping.

The expected dtypes are written out here (SECOND_MOMENT_DTYPE), not computed with gradtx's helpers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gradtx
from gradtx.testing import assert_trees_same_structure_and_dtypes, pseudo_gradients
from tests.registry import DECAYS, LR, TRANSFORMATION_CASES

DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16, "f16": jnp.float16, "f64": jnp.float64, "c64": jnp.complex64}
# DESIGN.md section 4 and README "One dtype policy": second moments real and at least float32.
SECOND_MOMENT_DTYPE = {
    "f32": jnp.float32,
    "bf16": jnp.float32,
    "f16": jnp.float32,
    "f64": jnp.float64,
    "c64": jnp.float32,
}
# optax's field names (`n`: Adan's and Simplified AdEMAMix's; `m1`, `m2`: AdEMAMix's fast and slow EMAs)
SECOND_MOMENTS = frozenset({"nu", "nu_max", "sum_of_squares", "e_g", "e_x", "n"})
FIRST_MOMENTS = frozenset({"mu", "trace", "ema", "m1", "m2"})  # the accumulators `accumulator_dtype` sets
# Averages of the params (ema_params, swa_params): at least float32 unless `accumulator_dtype` says
# otherwise (a bfloat16 average with decay 0.999 would never move); complex params keep complex ones.
AVERAGES = frozenset({"average"})
AVERAGE_DTYPE = {"f32": jnp.float32, "bf16": jnp.float32, "f16": jnp.float32, "f64": jnp.float64, "c64": jnp.complex64}
COUNT = frozenset({"count"})
INT32_MAX = int(np.iinfo(np.int32).max)
F16_MAX = float(jnp.finfo(jnp.float16).max)
F16_TINY = float(jnp.finfo(jnp.float16).tiny)  # the smallest normal float16

# Entries whose swept argument takes no schedule (checked: building with one raises), and why.
NO_SCHEDULE = {
    "scale": "scale(step_size) takes a number; a schedule goes to scale_by_schedule",
    "ema": "ema debiases by 1 - decay^t, which needs a constant decay",
    "bias_correction": "bias_correction divides by 1 - decay^t, which needs a constant decay",
    "scale_by_rss": "scale_by_rss's initial_accumulator_value is a number, as in optax",
    "scale_by_adadelta": "scale_by_adadelta's rho is a number, as in optax",
    "scale_by_adam": "scale_by_adam's b1 is a number, as in optax",
    "scale_by_amsgrad": "scale_by_amsgrad's b1 is a number, as in optax",
    "scale_by_adamax": "scale_by_adamax's b1 is a number, as in optax",
    "scale_by_nadam": "scale_by_nadam's b1 is a number: its momentum schedule mu_t is built in",
    "clip": "clip's max_delta is a number, as in optax",
    "clip_by_global_norm": "clip_by_global_norm's max_norm is a number, as in optax",
    "clip_by_leaf_norm": "clip_by_leaf_norm's max_norm is a number, as clip_by_global_norm's",
    "scale_by_adopt": "scale_by_adopt's b1 is a number, as in optax",
}
# The hyperparameter a user would vary, for registry entries without a sweep.
EXTRA_SWEEPS = {
    "ema[raw]": (lambda m, h: m.ema(h, debias=False), DECAYS),
    "nesterov": (lambda m, h: m.nesterov(h), DECAYS),
    "bias_correction": (lambda m, h: m.bias_correction(h), DECAYS),
    "scale_by_stddev": (lambda m, h: m.scale_by_stddev(h), DECAYS),
    "scale_by_rss": (lambda m, h: m.scale_by_rss(h), (0.0, 0.1, 1.0)),
    "scale_by_adadelta": (lambda m, h: m.scale_by_adadelta(h), DECAYS),
    "scale_by_amsgrad": (lambda m, h: m.scale_by_amsgrad(h), DECAYS),
    "scale_by_adamax": (lambda m, h: m.scale_by_adamax(h), DECAYS),
    "nadam": (lambda m, h: m.nadam(h), LR),
    "adamax": (lambda m, h: m.adamax(h), LR),
    "amsgrad": (lambda m, h: m.amsgrad(h), LR),
}
# Builders not defined for complex params, and why (from their docstrings).
NO_COMPLEX = {
    "clip": "clip bounds each coordinate to [-c, c]; complex numbers have no order (jnp.clip raises)",
    "scale_by_rprop": "Rprop compares the signs of successive gradients; complex numbers have none (init raises)",
    "keep_params_nonnegative": "keep_params_nonnegative keeps params >= 0; complex numbers have no order",
    "ftrl": "FTRL's L1 threshold clip(z, -l1, l1) needs an order; complex numbers have none (init raises)",
    "scale_by_cocob": "COCOB bets on the sign of each real coordinate (init raises; split_real_and_imaginary wraps it)",
    "scale_by_kron": "PSGD Kron's Q fit (kron_torch's) is for real gradients (init raises; split_real_and_imaginary)",
}
# Builders whose updates are nonzero for zero gradients by design (besides weight decay and noise).
MOVES_WITHOUT_GRADIENTS = {
    "asgd": "torch's ASGD decays the weights by its lambd: u = -eta lambd W",
    "ftrl": "FTRL's weights are a function of z, W = (clip(z, -l1, l1) - z) / q: 0 while z = 0",
}
# State types whose optax field names mean the other moment: SM3's `mu` holds its per-axis sums of
# squares (a second moment), its `nu` the momentum (a first moment). Checked under swapped names.
SWAPPED_MOMENTS = (gradtx.ScaleBySM3State,)


class _Swapped(NamedTuple):
    nu: Any
    mu: Any


def with_moments_named(state):
    """The state with each SWAPPED_MOMENTS node's mu and nu swapped, so the names say what they hold."""
    swap = lambda s: _Swapped(nu=s.mu, mu=s.nu) if isinstance(s, SWAPPED_MOMENTS) else s
    return jax.tree.map(swap, state, is_leaf=lambda s: isinstance(s, SWAPPED_MOMENTS))


# ---------------------------------------------------------------------------------------------------
# Helpers


def members(tx) -> list:
    """The Hyperparams of tx and of every gradtx transformation nested in it (chain, named_chain,
    partition's transforms)."""
    hp = tx.hyperparams
    found = [hp]
    labelled = [v for value in hp.kwargs.values() if isinstance(value, dict) for v in value.values()]
    for arg in [*hp.args, *labelled]:
        sub = arg[1] if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[0], str) else arg
        if isinstance(sub, gradtx.GradientTransformation) and sub.hyperparams is not None:
            found += members(sub)
    return found


def builders(tx) -> set[str]:
    return {hp.builder for hp in members(tx)}


def accumulator_dtypes(tx) -> set:
    return {jnp.dtype(hp.kwargs["accumulator_dtype"]) for hp in members(tx) if hp.kwargs.get("accumulator_dtype")}


def with_accumulator_dtype(tx, dtype):
    """tx rebuilt with `accumulator_dtype=dtype` in every member that takes one."""
    hp = tx.hyperparams
    if hp.builder == "chain":
        return gradtx.chain(*(with_accumulator_dtype(m, dtype) for m in hp.args))
    if hp.builder == "named_chain":
        return gradtx.named_chain(*((name, with_accumulator_dtype(m, dtype)) for name, m in hp.args))
    if "accumulator_dtype" in hp.kwargs:
        return getattr(gradtx, hp.builder)(*hp.args, **{**hp.kwargs, "accumulator_dtype": dtype})
    return tx


def stored_fields(tx) -> frozenset:
    """The fields a state_dtype or quantized_state member stores in a dtype of its own, by design
    (tests/test_compact.py checks their dtypes and values)."""
    return frozenset(
        name for hp in members(tx) if hp.builder in ("state_dtype", "quantized_state") for name, _ in hp.codecs
    )


def fields(state, names: frozenset) -> list[tuple[str, jax.Array]]:
    """(key path, leaf) for every leaf of `state` under a NamedTuple field named in `names`."""
    return [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if any(isinstance(k, jax.tree_util.GetAttrKey) and k.name in names for k in path)
    ]


def set_counts(state, value: int):
    """The state with every step counter (a NamedTuple field `count`) set to `value`."""

    def leaf(path, x):
        is_count = isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "count"
        return jnp.asarray(value, jnp.int32) if is_count else x

    return jax.tree_util.tree_map_with_path(leaf, state)


def assert_finite(tree, what: str) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            assert bool(jnp.all(jnp.isfinite(leaf))), f"{what}{jax.tree_util.keystr(path)} is not finite: {leaf}"


def complex_skip_reason(tx) -> str | None:
    for name in builders(tx) & NO_COMPLEX.keys():
        return NO_COMPLEX[name]
    return None


def matrix_params(dtype) -> dict:
    w = np.linspace(-1, 1, 6).reshape(2, 3)
    return {"w": jnp.asarray(w * (1 + 0.5j) if dtype == jnp.complex64 else w).astype(dtype)}


def mixed_params(with_complex: bool = True) -> dict:
    """One (2, 3) leaf of each dtype, and a None leaf (a frozen part of a model)."""
    base = np.linspace(-1, 1, 6).reshape(2, 3)
    params = {name: jnp.asarray(base).astype(dtype) for name, dtype in DTYPES.items() if name != "c64"}
    if with_complex:
        params["c64"] = jnp.asarray(base * (1 + 0.5j)).astype(jnp.complex64)
    return {**params, "frozen": None}


def halving_schedule(value: float, count: jax.Array) -> jax.Array:
    """A user-written schedule in float64 (x64 is on): value * 2^-count. Must not widen any dtype."""
    return jnp.asarray(value, jnp.float64) * jnp.exp2(-count.astype(jnp.float64))


def swept_value(case) -> float:
    """A power of two within the case's sweep range: exact in float32 and bfloat16, so a NumPy float32
    scalar or a bfloat16 0-d array hold the same number as the Python float."""
    h = 2.0 ** math.floor(math.log2(case.sweep_values[1]))
    assert min(case.sweep_values) <= h <= max(case.sweep_values), (case.id, h)
    return h


def _steps(tx, state, grads: list, params) -> list:
    """(updates, state) after each of len(grads) steps, the params updated in between.

    Op by op when called eagerly (gradtx would otherwise compile an update called outside jit).
    """
    out = []
    with jax.disable_jit():
        for g in grads:
            updates, state = tx.update(g, state, params)
            params = gradtx.apply_updates(params, updates)
            out.append((updates, state))
    return out


jit_steps = jax.jit(_steps, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def jit_steps_traced(case, h, state, grads, params) -> list:
    return _steps(case.sweep(gradtx, h), state, grads, params)


def check_steps(types: list, values: list | None, grads: list, state, dtype_name: str, tx) -> None:
    """`types`: the jitted steps' output types; `values`: the same steps run (eagerly or vmapped)."""
    for k, (u_type, s_type) in enumerate(types):
        assert_trees_same_structure_and_dtypes(u_type, grads[k], f"jitted updates at step {k}")
        assert_trees_same_structure_and_dtypes(s_type, state, f"jitted state at step {k}")
        check_state_fields(s_type, dtype_name, tx, f"jitted state at step {k}")
        if values is not None:
            assert_trees_same_structure_and_dtypes(values[k], (u_type, s_type), f"values at step {k}")
            assert_finite(values[k], f"step {k}: (updates, state)")


# ---------------------------------------------------------------------------------------------------
# The dtype policy: param dtype x hyperparameter kind

KINDS = ("python", "numpy", "jax", "traced", "schedule")
# Values under a traced hyperparameter (jax.vmap over it, slow op by op) are checked here for the
# dtypes that no other test runs that way: tests/test_properties.py runs float32/bfloat16/float64
# params under vmap over the hyperparameter (and test_contract.py float32).
TRACED_VALUES_ELSEWHERE = ("f32", "bf16", "f64")
SWEPT = [
    dataclasses.replace(case, sweep=EXTRA_SWEEPS[case.id][0], sweep_values=EXTRA_SWEEPS[case.id][1])
    if case.id in EXTRA_SWEEPS and case.sweep is None
    else case
    for case in TRANSFORMATION_CASES
]
MATRIX = [
    pytest.param(case, kind, id=f"{case.id}-{kind}")
    for case in SWEPT
    for kind in (KINDS if case.sweep is not None else ("default",))
]


def build(case, kind: str):
    if kind == "default":
        return case.build()
    h = swept_value(case)
    if kind in ("python", "traced"):
        return case.sweep(gradtx, h)
    if kind == "schedule":
        return case.sweep(gradtx, functools.partial(halving_schedule, h))
    return case.sweep(gradtx, np.float32(h) if kind == "numpy" else jnp.asarray(h, jnp.bfloat16))


def check_state_fields(state, dtype_name: str, tx, what: str) -> None:
    """Second moments real and >= float32; first moments in the params' or an accumulator dtype; int32 counts."""
    state = with_moments_named(state)
    stored = stored_fields(tx)
    for path, leaf in fields(state, SECOND_MOMENTS - stored):
        assert leaf.dtype == SECOND_MOMENT_DTYPE[dtype_name], f"{what}{path}: second moment is {leaf.dtype}"
    allowed = {jnp.dtype(DTYPES[dtype_name])} | accumulator_dtypes(tx)
    for path, leaf in fields(state, FIRST_MOMENTS - stored):
        assert leaf.dtype in allowed, f"{what}{path}: first moment is {leaf.dtype}, expected one of {allowed}"
    averages = {jnp.dtype(AVERAGE_DTYPE[dtype_name])} | accumulator_dtypes(tx)
    for path, leaf in fields(state, AVERAGES):
        assert leaf.dtype in averages, f"{what}{path}: average is {leaf.dtype}, expected one of {averages}"
    for path, count in fields(state, COUNT):
        assert count.dtype == jnp.int32 and count.shape == (), f"{what}{path}: count is {count.dtype}{count.shape}"


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("case, kind", MATRIX)
def test_dtype_policy(case, kind, dtype_name):
    """Two steps of each entry, its hyperparameter given as each kind, its params in each dtype.

    Types from the jitted steps' trace; values from eager steps, or for a traced hyperparameter
    from jax.vmap over two of its values (a tracer, run without compiling the whole step).
    """
    dtype = DTYPES[dtype_name]
    if kind in ("numpy", "jax"):
        # A concrete scalar is stored as the Python number: the transformation is equal to the one
        # built from the Python float, so it runs the same computation (and shares its compiled step).
        tx, python = build(case, kind), build(case, "python")
        assert tx == python and hash(tx) == hash(python) and repr(tx) == repr(python), (tx, python)
        return
    if kind == "schedule" and case.id in NO_SCHEDULE:
        with pytest.raises(TypeError, match="schedule"):
            build(case, kind)
        return  # rejected at build time, with an error naming the argument: nothing to run
    tx = build(case, kind)
    if dtype == jnp.complex64 and (reason := complex_skip_reason(tx)):
        pytest.skip(reason)
    params = matrix_params(dtype)
    grads = [pseudo_gradients(params, k) for k in range(2)]
    state = tx.init(params)
    check_state_fields(state, dtype_name, tx, "init state")
    if kind == "traced":
        h = jnp.asarray(swept_value(case), jnp.float64)
        types = jit_steps_traced.trace(case, h, state, grads, params).out_info
        if dtype_name not in TRACED_VALUES_ELSEWHERE:
            steps = jax.vmap(lambda h: _steps(case.sweep(gradtx, h), state, grads, params))(jnp.stack([h, h / 2]))
            for i in range(2):
                check_steps(types, jax.tree.map(lambda x, i=i: x[i], steps), grads, state, dtype_name, tx)
        else:
            check_steps(types, None, grads, state, dtype_name, tx)
    else:
        types = jit_steps.trace(tx, state, grads, params).out_info
        check_steps(types, _steps(tx, state, grads, params), grads, state, dtype_name, tx)


# ---------------------------------------------------------------------------------------------------
# accumulator_dtype

ACCUMULATOR_CASES = [
    pytest.param(case, id=case.id)
    for case in TRANSFORMATION_CASES
    if with_accumulator_dtype(case.build(), jnp.float32) != case.build()
]


@pytest.mark.parametrize("case", ACCUMULATOR_CASES)
def test_bf16_params_with_float32_accumulator_keep_float32_first_moments(case):
    tx = with_accumulator_dtype(case.build(), jnp.float32)
    params = matrix_params(jnp.bfloat16)
    grads = [pseudo_gradients(params, k) for k in range(2)]
    state = tx.init(params)
    assert fields(state, FIRST_MOMENTS | AVERAGES), f"{tx!r} takes accumulator_dtype but its state has no first moment"
    types = jit_steps.trace(tx, state, grads, params).out_info
    check_steps(types, _steps(tx, state, grads, params), grads, state, "bf16", tx)
    for k, (updates, new_state) in enumerate([(None, state), *types]):
        for path, leaf in fields(new_state, FIRST_MOMENTS | AVERAGES):
            assert leaf.dtype == jnp.float32, f"state{path} at step {k}: {leaf.dtype}"
        for path, leaf in fields(new_state, SECOND_MOMENTS):
            assert leaf.dtype == jnp.float32, f"state{path} at step {k}: {leaf.dtype}"
        if updates is not None:
            assert updates["w"].dtype == jnp.bfloat16, f"updates at step {k}: {updates['w'].dtype}"


@pytest.mark.parametrize(
    "accumulator, complex_moment, real_moment",
    [
        (jnp.bfloat16, jnp.complex64, jnp.bfloat16),
        (jnp.float32, jnp.complex64, jnp.float32),
        (jnp.float64, jnp.complex128, jnp.float64),
        (jnp.complex128, jnp.complex128, jnp.float64),
    ],
    ids=["bf16", "f32", "f64", "c128"],
)
def test_accumulator_dtype_sets_the_precision_and_the_param_whether_complex(accumulator, complex_moment, real_moment):
    """A complex param's first moment is complex at accumulator_dtype's precision (complex64 for float32
    and narrower, complex128 for float64) and keeps its imaginary part; a real param's is real."""
    tx = gradtx.scale_by_adam(b1=0.5, accumulator_dtype=accumulator)
    params = {"c": matrix_params(jnp.complex64)["w"], "r": matrix_params(jnp.float32)["w"]}
    grads = pseudo_gradients(params, 0)
    state = tx.init(params)
    assert (state.mu["c"].dtype, state.mu["r"].dtype) == (jnp.dtype(complex_moment), jnp.dtype(real_moment))
    updates, state = tx.update(grads, state, params)
    assert (state.mu["c"].dtype, state.mu["r"].dtype) == (jnp.dtype(complex_moment), jnp.dtype(real_moment))
    g = np.asarray(grads["c"]).astype(np.complex128)
    assert np.all(np.imag(g) != 0)
    np.testing.assert_allclose(np.asarray(state.mu["c"]), 0.5 * g, rtol=1e-6)  # (1 - b1) g, imaginary part kept
    assert updates["c"].dtype == jnp.complex64 and updates["r"].dtype == jnp.float32
    # With one step, m^ / sqrt(v^) = g / |g|: a unit complex number with g's phase.
    np.testing.assert_allclose(np.asarray(updates["c"]), g / np.abs(g), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Finite at the edges

CASES = [pytest.param(case, id=case.id) for case in TRANSFORMATION_CASES]


def moves_without_gradients(tx) -> bool:
    """Weight decay (add_decayed_weights, or a member's own nonzero weight_decay as NovoGrad's), gradient
    noise, or keep_params_nonnegative (it moves negative params to 0)."""
    hps = members(tx)
    if MOVES_WITHOUT_GRADIENTS.keys() & builders(tx):
        return True
    moving = {"add_decayed_weights", "add_noise", "keep_params_nonnegative"}
    return bool(moving & builders(tx)) or any(hp.kwargs.get("weight_decay") for hp in hps)


@pytest.mark.parametrize("case", CASES)
def test_zero_gradients_at_step_0_give_finite_zero_updates(case):
    """Zero gradients from init (0 / 0 in every normalizer) give zero updates, finite states, in every
    dtype; only weight decay (u = g + lambda W) and gradient noise make a nonzero update of zero gradients."""
    tx = case.build()
    params = mixed_params(with_complex=complex_skip_reason(tx) is None)
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = tx.init(params)
    for k in range(2):
        updates, state = tx.update(zeros, state, params)
        assert_trees_same_structure_and_dtypes(updates, zeros, f"updates at step {k}")
        assert_finite((updates, state), f"step {k}: (updates, state)")
        if not moves_without_gradients(tx):
            for path, leaf in jax.tree_util.tree_flatten_with_path(updates)[0]:
                assert not np.any(np.asarray(leaf)), f"updates{jax.tree_util.keystr(path)} at step {k}: {leaf}"


ZERO_THRESHOLDS = [
    gradtx.clip(0.0),
    gradtx.clip_by_global_norm(0.0),
    gradtx.chain(gradtx.clip_by_global_norm(0.0), gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(0.1)),
    gradtx.chain(gradtx.clip(0.0), gradtx.scale_by_rms(eps_in_sqrt=False), gradtx.trace(0.9)),
]


@pytest.mark.parametrize("tx", ZERO_THRESHOLDS, ids=[repr(tx)[:40] for tx in ZERO_THRESHOLDS])
def test_zero_clipping_thresholds_give_zero_updates(tx):
    """A threshold of 0 clips everything to 0: zero updates, never 0 / 0, also for huge or zero
    gradients, and for whatever follows in a chain."""
    params = mixed_params(with_complex=complex_skip_reason(tx) is None)
    cases = {
        "zero": jax.tree.map(jnp.zeros_like, params),
        "ones": jax.tree.map(jnp.ones_like, params),
        "huge": jax.tree.map(lambda p: jnp.full_like(p, 0.9 * float(jnp.finfo(p.dtype).max)), params),
    }
    for name, grads in cases.items():
        state = tx.init(params)
        for k in range(2):
            updates, state = tx.update(grads, state, params)
            assert_trees_same_structure_and_dtypes(updates, grads, f"{name} gradients, updates")
            assert_finite((updates, state), f"{name} gradients, step {k}: (updates, state)")
            for path, leaf in jax.tree_util.tree_flatten_with_path(updates)[0]:
                assert not np.any(np.asarray(leaf)), f"{name} gradients: updates{jax.tree_util.keystr(path)} = {leaf}"


def stages(tx) -> list:
    """The transformations a chain applies in turn (tx itself if it is not a chain)."""
    hp = tx.hyperparams
    if hp.builder == "chain":
        return [s for member in hp.args for s in stages(member)]
    if hp.builder == "named_chain":
        return [s for _, member in hp.args for s in stages(member)]
    return [tx]


# Entries whose float16 updates are, by design, differences of float16 params, and why.
ON_THE_PARAMS_GRID = {
    "stochastic_rounding": "its updates are W' - W with W' = W + u rounded at random to float16's grid"
    " (tests/test_precision.py checks it against float64)",
    "kahan_summation": "its updates are W' - W with W' = W + c + u rounded to float16's grid, the rest"
    " kept in c (tests/test_precision.py checks it against float64)",
    **dict.fromkeys(
        ["schedule_free", "schedule_free_sgd", "schedule_free_adamw", "presets.keras.ScheduleFreeAdamW"],
        "its z, a copy of the params moved by the base optimizer, is kept in the params' dtype (optax's"
        " default; state_dtype=jnp.float32 keeps it finer), so its steps are rounded to float16's grid",
    ),
    # by case id: the plain presets.keras.SGD case is checked
    "presets.keras.SGD[clipnorm,ema]": "its second update overwrites the params with the average, u = W^ - W:"
    " a difference against the float16 params, which carries their rounding",
}


@pytest.mark.parametrize("case", CASES)
def test_huge_float16_gradients_stay_finite_where_the_result_is_representable(case):
    """float16 gradients of 6e4 (float16's maximum is 65504) square to 3.6e9: an optimizer that
    squared them in float16 would hold inf. Every float16 output (update, state, and the updates
    passed between the members of a chain) whose exact value is a float16 number must be finite and
    close to it. The exact values come from the same transformations run in float64; coordinates
    where any float16 quantity exceeds float16's range (a Nesterov look-ahead of 1.9 * 6e4, say) are
    not checked from then on."""
    if case.name in ON_THE_PARAMS_GRID or case.id in ON_THE_PARAMS_GRID:
        pytest.skip(ON_THE_PARAMS_GRID.get(case.id, ON_THE_PARAMS_GRID.get(case.name)))
    txs = stages(case.build())
    g16 = [
        {"w": jnp.asarray([[6e4, -6e4, 1.0], [0.5, -3e4, 0.0]], jnp.float16)},
        {"w": jnp.asarray([[6e4, 2.0, -6e4], [-0.25, 6e4, 3.0]], jnp.float16)},
    ]
    p16 = {"w": jnp.asarray([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], jnp.float16)}
    to64 = functools.partial(jax.tree.map, lambda x: jnp.asarray(x).astype(jnp.float64))
    p64 = to64(p16)
    s16, s64 = [t.init(p16) for t in txs], [t.init(p64) for t in txs]
    in_range = np.ones((2, 3), bool)  # every float16 quantity's exact value is finite in float16
    for k in range(2):
        u16, u64, outputs = g16[k], to64(g16[k]), []
        for i, t in enumerate(txs):
            u16, s16[i] = t.update(u16, s16[i], p16)
            u64, s64[i] = t.update(u64, s64[i], p64)
            outputs += zip(jax.tree.leaves((u16, s16[i])), jax.tree.leaves((u64, s64[i])), strict=True)
        outputs = [(a, np.asarray(b)) for a, b in outputs if a.shape == (2, 3)]  # per-coordinate leaves
        # Closeness is checked only where no float16 quantity is subnormal (below 6.1e-5, float16
        # keeps fewer than 11 bits: after clipping 6e4 to norm 1 the small coordinates are there).
        normal = np.ones((2, 3), bool)
        for a, b in outputs:
            if a.dtype == jnp.float16:  # stored in float16: its exact value must fit
                in_range &= np.abs(b) <= F16_MAX
                normal &= (b == 0) | (np.abs(b) >= F16_TINY)
        assert in_range.any(), "nothing left to check: choose smaller gradients"
        for a, b in outputs:
            a = np.asarray(a.astype(jnp.float64))
            assert np.all(np.isfinite(a[in_range])), f"step {k}: got {a}, exact {b}"
            close = in_range & normal
            np.testing.assert_allclose(a[close], b[close], rtol=2e-2, atol=1e-3 * np.abs(b[close]).max(initial=0))
        p16, p64 = gradtx.apply_updates(p16, u16), gradtx.apply_updates(p64, u64)


SECOND_MOMENT_OF = {  # a transformation, the field holding (1 - decay) g^2 after one step, and 1 - decay
    "scale_by_rms": (lambda: gradtx.scale_by_rms(0.5), "nu", 0.5),
    "scale_by_stddev": (lambda: gradtx.scale_by_stddev(0.5), "nu", 0.5),
    "scale_by_rss": (lambda: gradtx.scale_by_rss(0.0), "sum_of_squares", 1.0),
    "scale_by_adadelta": (lambda: gradtx.scale_by_adadelta(0.5), "e_g", 0.5),
    "scale_by_adam": (lambda: gradtx.scale_by_adam(b2=0.5), "nu", 0.5),
    "scale_by_amsgrad": (lambda: gradtx.scale_by_amsgrad(b2=0.5), "nu", 0.5),
}


@pytest.mark.parametrize("dtype_name", ["bf16", "f16"])
@pytest.mark.parametrize("name", list(SECOND_MOMENT_OF))
def test_low_precision_gradients_are_squared_in_float32(name, dtype_name):
    """g = 1 + 2^-7 and -3 - 2^-6 are bfloat16 and float16 numbers; their squares need 15 bits, which
    float32 holds exactly: the float32 second moment after one step is exactly (1 - decay) g^2."""
    make, field, weight = SECOND_MOMENT_OF[name]
    g = np.asarray([1 + 2**-7, -3 - 2**-6])
    grads = {"w": jnp.asarray(g).astype(DTYPES[dtype_name])}
    tx = make()
    _, state = tx.update(grads, tx.init(grads))
    moment = getattr(state, field)["w"]
    assert moment.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(moment), (weight * g**2).astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# jax.grad through update (meta-gradients)


def loss(params) -> jax.Array:
    """0.5 ||params - 1||^2: its gradient is zero where a leaf is 1."""
    return 0.5 * sum(jnp.sum((p - 1.0) ** 2) for p in jax.tree.leaves(params))


def meta_loss(make, lr, params) -> jax.Array:
    """The loss after one update of `make(lr)` from `params`: a function of lr and params."""
    tx = make(lr)
    updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params)
    return loss(gradtx.apply_updates(params, updates))


def finite_differences(f, lr, params, h: float = 1e-6):
    """Central differences of f(lr, params) in float64, for lr and each coordinate of params."""
    d_lr = (f(lr + h, params) - f(lr - h, params)) / (2 * h)
    flat, unflatten = ravel_pytree(params)
    d_params = [(f(lr, unflatten(flat + h * e)) - f(lr, unflatten(flat - h * e))) / (2 * h) for e in np.eye(flat.size)]
    return d_lr, unflatten(jnp.asarray(d_params))


META = {
    "adam(eps_root=1e-8)": lambda lr: gradtx.adam(lr, eps_root=1e-8),
    "nadam(eps_root=1e-8)": lambda lr: gradtx.nadam(lr, eps_root=1e-8),
    "amsgrad(eps_root=1e-8)": lambda lr: gradtx.amsgrad(lr, eps_root=1e-8),
    "clip(0)": lambda lr: gradtx.chain(gradtx.clip(0.0), gradtx.sgd(lr)),
    "clip(1)": lambda lr: gradtx.chain(gradtx.clip(1.0), gradtx.sgd(lr)),
    "clip_by_global_norm(0)": lambda lr: gradtx.chain(gradtx.clip_by_global_norm(0.0), gradtx.sgd(lr)),
    "clip_by_global_norm(1)": lambda lr: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.sgd(lr)),
    "clip_by_global_norm(1),adam(eps_root=1e-8)": lambda lr: gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adam(lr, eps_root=1e-8)
    ),
}
# Zero gradients everywhere, and zero gradients in one leaf only (no coordinate at a clipping kink).
META_POINTS = {
    "zero": {"w": jnp.ones(2, jnp.float64), "b": jnp.ones(3, jnp.float64)},
    "partly-zero": {"w": jnp.ones(2, jnp.float64), "b": jnp.asarray([0.25, 0.5, 2.5], jnp.float64)},
}


@pytest.mark.parametrize("point", list(META_POINTS))
@pytest.mark.parametrize("name", list(META))
def test_meta_gradient_through_update_at_zero_gradients(name, point):
    """d/d(lr) and d/d(params) of the loss after one update: finite, and equal to central differences."""
    make, params, lr = META[name], META_POINTS[point], jnp.asarray(0.1, jnp.float64)
    f = functools.partial(meta_loss, make)
    d_lr, d_params = jax.grad(f, argnums=(0, 1))(lr, params)
    assert_finite((d_lr, d_params), f"{name} at {point}: d(loss)/d(lr, params)")
    want_lr, want_params = finite_differences(f, lr, params)
    np.testing.assert_allclose(d_lr, want_lr, rtol=1e-6, atol=1e-7, err_msg="d/d(lr)")
    for key in params:
        np.testing.assert_allclose(d_params[key], want_params[key], rtol=1e-6, atol=1e-7, err_msg=f"d/d(params[{key}])")


@pytest.mark.parametrize("case", CASES)
def test_every_entry_has_finite_gradients_through_update_at_zero_gradients(case):
    tx = case.build()
    params = META_POINTS["zero"]  # the loss's minimum: zero gradients (the shapes above: JAX's caches are shared)
    d_params = jax.grad(lambda p: meta_loss(lambda _: tx, None, p))(params)
    assert_finite(d_params, "d(loss after one update)/d(params)")


# ---------------------------------------------------------------------------------------------------
# Step counters


# Entries whose counts do not advance at every update, and why.
COUNTS_NOT_PER_UPDATE = {
    "MultiSteps": "the inner optimizer's count advances once every k = 3 updates (test_wrappers.py checks"
    " that MultiSteps' own gradient_step saturates)",
    "apply_every": "its count is the place in a cycle of k = 3, 0 to 2 (optax's), not a step counter",
    "conditionally_mask": "the inner optimizer's count advances at the steps the condition picks only",
    "conditionally_transform": "the inner transformation's count advances at the steps the condition picks only",
}


@pytest.mark.parametrize("case", CASES)
def test_step_counters_saturate_at_the_int32_maximum(case):
    """From a state whose counts are 2^31 - 3, four steps: the counts reach 2^31 - 1 and stay there
    (never wrap to a negative count), and updates and state stay finite (bias corrections, schedules)."""
    if case.id in COUNTS_NOT_PER_UPDATE:
        pytest.skip(COUNTS_NOT_PER_UPDATE[case.id])
    tx = case.build()
    params = matrix_params(jnp.float32)
    state = tx.init(params)
    if not fields(state, COUNT):
        pytest.skip("its state has no step counter")
    start = INT32_MAX - 2
    state = set_counts(state, start)
    for k in range(4):
        updates, state = tx.update(pseudo_gradients(params, k), state, params)
        for path, count in fields(state, COUNT):
            assert count.dtype == jnp.int32, f"state{path}: {count.dtype}"
            assert int(count) == min(start + k + 1, INT32_MAX), f"state{path} after {k + 1} steps: {int(count)}"
        assert_finite((updates, state), f"step {k}: (updates, state)")
