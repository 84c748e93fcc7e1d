"""Schedules against optax's same-named schedules and NumPy formulas written from the equations; count
kinds, jit and vmap, dtypes, equality, pickling, repr round trips and validation messages.

Counts are k = updates already applied. optax runs in float64 here (x64 is on), gradtx in float32,
so agreement is to float32 rounding.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

COUNTS = np.arange(0, 1201, dtype=np.int32)
SOME_COUNTS = (0, 1, 49, 50, 99, 100, 101, 250, 399, 400, 777, 1000, 1200)
COUNT_KINDS = {  # one count of each kind a caller may pass (under jit, NumPy and JAX ints trace alike)
    "python int": 50,
    "numpy int64": np.int64(101),
    "jnp int32": jnp.asarray(1200, jnp.int32),
}
NAMESPACE = {name: getattr(gradtx, name) for name in gradtx.__all__}  # `from gradtx import *`
RTOL, ATOL = 2e-5, 3e-7  # float32 against optax's float64, values of order 1

# Each case builds the same schedule from `m = gradtx` and `m = optax`.
OPTAX_CASES = {
    "constant": lambda m: m.constant_schedule(0.3),
    "linear": lambda m: m.linear_schedule(1.0, 0.1, 500, 100),
    "linear[no-transition]": lambda m: m.linear_schedule(0.2, 1.0, 0),
    "polynomial": lambda m: m.polynomial_schedule(1.0, 0.01, 2.0, 800, 50),
    "polynomial[rising,sqrt]": lambda m: m.polynomial_schedule(
        init_value=0.5,
        end_value=2.0,
        power=0.5,
        transition_steps=256,  # 300: optax's is NaN under jit, below
    ),
    "exponential": lambda m: m.exponential_decay(1.0, 100, 0.5),
    "exponential[staircase,begin]": lambda m: m.exponential_decay(1.0, 100, 0.5, 50, staircase=True),
    "exponential[end_value]": lambda m: m.exponential_decay(1.0, 100, 0.5, transition_begin=200, end_value=0.1),
    "exponential[rising,end_value]": lambda m: m.exponential_decay(0.01, 100, 1.5, end_value=0.05),
    "exponential[staircase,end_value]": lambda m: m.exponential_decay(2.0, 70, 0.8, 30, True, 0.3),
    "piecewise_constant": lambda m: m.piecewise_constant_schedule(1.0, {100: 0.5, 400: 0.1, 900: 2.0}),
    "piecewise_constant[none]": lambda m: m.piecewise_constant_schedule(0.1),
    "piecewise_interpolate[linear]": lambda m: m.piecewise_interpolate_schedule(
        "linear", 1.0, {400: 0.1, 100: 0.5, 900: 2.0}
    ),
    "piecewise_interpolate[cosine]": lambda m: m.piecewise_interpolate_schedule(
        "cosine", 1.0, {0: 0.5, 300: 0.1, 301: 3.0, 1100: 0.0}
    ),
    "piecewise_interpolate[none]": lambda m: m.piecewise_interpolate_schedule("cosine", 0.7),
    "cosine_decay": lambda m: m.cosine_decay_schedule(1.0, 1000),
    "cosine_decay[alpha,exponent]": lambda m: m.cosine_decay_schedule(2.0, 700, alpha=0.1, exponent=2.0),
    "warmup_constant": lambda m: m.warmup_constant_schedule(0.0, 1.0, 100),
    "warmup_cosine": lambda m: m.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000, end_value=0.1, exponent=1.5),
    "warmup_cosine[no-warmup]": lambda m: m.warmup_cosine_decay_schedule(0.1, 1.0, 0, 500),
    "warmup_cosine[zero-peak]": lambda m: m.warmup_cosine_decay_schedule(0.5, 0.0, 100, 500, end_value=0.2),
    "warmup_exponential": lambda m: m.warmup_exponential_decay_schedule(0.0, 1.0, 100, 200, 0.5),
    "warmup_exponential[all]": lambda m: m.warmup_exponential_decay_schedule(
        0.0, 1.0, 100, 200, 0.5, transition_begin=50, staircase=True, end_value=0.05
    ),
    "join": lambda m: m.join_schedules(
        [m.constant_schedule(1.0), m.linear_schedule(1.0, 0.0, 300), m.cosine_decay_schedule(0.5, 200)], [100, 500]
    ),
    "cosine_onecycle": lambda m: m.cosine_onecycle_schedule(1000, 1.0),
    "cosine_onecycle[args]": lambda m: m.cosine_onecycle_schedule(900, 2.0, 0.25, 10.0, 100.0),
    "linear_onecycle": lambda m: m.linear_onecycle_schedule(1000, 1.0),
    "linear_onecycle[args]": lambda m: m.linear_onecycle_schedule(800, 0.5, 0.1, 0.7, 5.0, 50.0),
    "linear_onecycle[short]": lambda m: m.linear_onecycle_schedule(3, 1.0),  # boundaries collide, as in optax
    "sgdr": lambda m: m.sgdr_schedule(
        [
            dict(init_value=0.0, peak_value=1.0, warmup_steps=50, decay_steps=400, end_value=0.01),
            dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=300),
            dict(init_value=0.0, peak_value=0.8, warmup_steps=20, decay_steps=600, exponent=2.0),
        ]
    ),
}


def inverse_time_np(k, init_value, decay_rate, transition_steps=1, transition_begin=0, staircase=False):
    """alpha0 / (1 + r t), t = max(k - B, 0) / T, floored when staircase: the docstring's equations."""
    t = np.maximum(np.asarray(k, np.float64) - transition_begin, 0) / transition_steps
    t = np.floor(t) if staircase else t
    return init_value / (1 + decay_rate * t)


def sutskever_np(t, mu_max, per=250):
    """Sutskever et al. (2013), eq. (5), literally: min(1 - 2^(-1 - log2(floor(t / 250) + 1)), mu_max)."""
    return np.minimum(1 - 2.0 ** (-1 - np.log2(np.floor(np.asarray(t, np.float64) / per) + 1)), mu_max)


def optax_reference(make):
    """optax's schedule built by `make(optax)`, at given counts, in float64."""

    def values(counts: np.ndarray) -> np.ndarray:
        with jax.numpy_dtype_promotion("standard"):
            return np.asarray(jax.jit(jax.vmap(make(optax)))(jnp.asarray(counts)), np.float64)

    return values


def float_ramp(count):
    """A user's schedule, written here: module-level, so it pickles."""
    return jnp.minimum(jnp.asarray(count).astype(jnp.float32) / 100, 1.0)


# name: (build gradtx's schedule, reference values at an array of counts)
CASES = {
    **{name: (lambda make=make: make(gradtx), optax_reference(make)) for name, make in OPTAX_CASES.items()},
    "inverse_time": (lambda: gradtx.inverse_time_decay(1.0, 0.5), lambda k: inverse_time_np(k, 1.0, 0.5)),
    "inverse_time[all]": (
        lambda: gradtx.inverse_time_decay(0.1, 2.0, 100, transition_begin=50, staircase=True),
        lambda k: inverse_time_np(k, 0.1, 2.0, 100, 50, staircase=True),
    ),
    "inverse_time[smooth,begin]": (
        lambda: gradtx.inverse_time_decay(3.0, 0.3, transition_steps=7, transition_begin=11),
        lambda k: inverse_time_np(k, 3.0, 0.3, 7, 11),
    ),
    "sutskever": (lambda: gradtx.sutskever_momentum_schedule(0.99), lambda k: sutskever_np(k, 0.99)),
    "sutskever[cap,short]": (
        lambda: gradtx.sutskever_momentum_schedule(0.9, transition_steps=50),
        lambda k: sutskever_np(k, 0.9, per=50),
    ),
    # gradtx's other spellings, against optax's own.
    "piecewise_constant[pairs]": (
        lambda: gradtx.piecewise_constant_schedule(1.0, [(400, 0.1), (100, 0.5)]),
        optax_reference(lambda m: m.piecewise_constant_schedule(1.0, {100: 0.5, 400: 0.1})),
    ),
    "sgdr[built-cycles]": (
        lambda: gradtx.sgdr_schedule([gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 5, 20)] * 2),
        optax_reference(
            lambda m: m.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20)] * 2)
        ),
    ),
    "join[user-fn]": (
        lambda: gradtx.join_schedules([gradtx.constant_schedule(1.0), float_ramp], [10]),
        optax_reference(lambda m: m.join_schedules([m.constant_schedule(1.0), float_ramp], [10])),
    ),
}
ALL_BUILDS = {name: build for name, (build, _) in CASES.items()}
EXTREMES = np.asarray([10_000, 2**24 + 1, 2**31 - 2, 2**31 - 1], np.int32)  # up to the saturated counter


# ---------------------------------------------------------------------------------------------------
# Values and the kinds of count


@pytest.mark.parametrize("name", CASES)
def test_values_at_every_count_for_every_kind_of_count(name):
    build, reference = CASES[name]
    sched, expected = build(), reference(COUNTS)

    @jax.jit
    def evaluate(counts, kinds, array):
        return jax.vmap(sched)(counts), [sched(k) for k in kinds], sched(array)

    # Under one jit: vmap over every count (and up to the saturated int32 counter); one count of every
    # kind (a Python int is traced as a weak int64, as jnp.asarray makes it); an array of counts,
    # mapped elementwise, as vmap does. Then eagerly, as in a notebook.
    kinds = tuple(COUNT_KINDS.values())
    every, traced, elementwise = evaluate(
        jnp.asarray(np.concatenate([COUNTS, EXTREMES])), kinds, jnp.asarray(SOME_COUNTS, jnp.int32)
    )
    eager = sched(777)
    np.testing.assert_allclose(np.asarray(every[: len(COUNTS)], np.float64), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(traced, expected[[int(k) for k in kinds]], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(elementwise, expected[list(SOME_COUNTS)], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(eager), expected[777], rtol=RTOL, atol=ATOL)
    assert bool(jnp.all(jnp.isfinite(every)))
    # Numbers as hyperparameters give JAX's default float: float64 under x64 (as optax's), so a
    # float64 run's learning rate is not rounded to float32; without x64, float32.
    for value in (*traced, eager):
        assert value.shape == () and value.dtype == jnp.float64
    with jax.enable_x64(False):
        assert sched(7).dtype == jnp.float32


def test_a_traced_count_under_jit_compiles_once():
    sched, traces = gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100), []

    @jax.jit
    def at(count):
        traces.append(count)
        return sched(count)

    with jax.numpy_dtype_promotion("standard"):
        ref = optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100)
        expected = [float(ref(k)) for k in SOME_COUNTS]
    got = [float(at(jnp.asarray(k, jnp.int32))) for k in SOME_COUNTS]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert len(traces) == 1


def test_inverse_time_decay_is_the_lectures_one_over_t():
    # alpha = alpha0 / (1 + k t), at t = 0, 1, 3, 9 with k = 1/3.
    got = [float(gradtx.inverse_time_decay(0.6, 1 / 3)(t)) for t in (0, 1, 3, 9)]
    np.testing.assert_allclose(got, [0.6, 0.45, 0.3, 0.15], rtol=1e-6)


def test_sutskever_schedule_has_the_papers_stage_values():
    sched = gradtx.sutskever_momentum_schedule(0.99)
    stages = {0: 0.5, 1: 0.75, 2: 5 / 6, 3: 0.875, 4: 0.9, 9: 0.95, 49: 0.99, 50: 0.99, 400: 0.99}
    for stage, mu in stages.items():
        for t in (250 * stage, 250 * stage + 249):
            np.testing.assert_allclose(float(sched(t)), mu, rtol=1e-7, err_msg=f"t={t}")
    capped = gradtx.sutskever_momentum_schedule(0.8)
    np.testing.assert_allclose([float(capped(t)) for t in (0, 250, 500, 10_000)], [0.5, 0.75, 0.8, 0.8], rtol=1e-7)


def test_sutskever_schedule_drives_trace():
    # t <- mu_k t + g with mu_k at k = updates already applied: t1 = g, t2 = 0.75 g + g, t3 = (5/6) t2 + g.
    tx = gradtx.trace(decay=gradtx.sutskever_momentum_schedule(0.999, transition_steps=1))
    g = {"w": jnp.ones(2, jnp.float32)}
    state, step = tx.init(g), jax.jit(tx.update)
    for expected in (1.0, 1.75, 5 / 6 * 1.75 + 1):
        u, state = step(g, state)
        np.testing.assert_allclose(u["w"], [expected] * 2, rtol=1e-6)
        assert u["w"].dtype == jnp.float32


def test_ramps_are_exact_at_their_ends_under_jit():
    # Under jit XLA divides by T as a multiplication by 1/T, so 1 - T/T can round below 0, and a square
    # root of it is NaN: optax.polynomial_schedule(0.5, 2.0, 0.5, 300) is NaN at k = 300 under jit.
    # And a warmup from 0 must start at 0, not at a negative learning rate.
    for warmup in (gradtx.warmup_constant_schedule(0.0, 1.0, 10), gradtx.linear_schedule(0.0, 0.3, 7)):
        values = jax.jit(jax.vmap(warmup))(jnp.arange(12, dtype=jnp.int32))
        assert float(values[0]) == 0.0 and bool(jnp.all(values >= 0))
    counts = np.asarray([0, 299, 300, 301])
    poly = jax.jit(jax.vmap(gradtx.polynomial_schedule(0.5, 2.0, 0.5, 300)))(jnp.asarray(counts))
    np.testing.assert_allclose(poly, (0.5 - 2.0) * np.sqrt(1 - np.minimum(counts, 300) / 300) + 2.0, rtol=1e-6)
    cos = jax.jit(jax.vmap(gradtx.cosine_decay_schedule(1.0, 300, exponent=0.5)))(jnp.asarray(counts))
    t = np.minimum(counts, 300)
    np.testing.assert_allclose(cos, np.sqrt((1 + np.cos(np.pi * t / 300)) / 2), rtol=RTOL, atol=ATOL)


def test_an_empty_warmup_starts_at_the_peak():
    # optax.warmup_constant_schedule(0.1, 1.0, 0) stays at 0.1 for ever (its linear_schedule with 0
    # transition steps holds init_value); the warmups that join a decay at step 0 already start at the peak.
    assert [float(gradtx.warmup_constant_schedule(0.1, 1.0, 0)(k)) for k in (0, 5)] == [1.0, 1.0]
    with jax.numpy_dtype_promotion("standard"):
        assert float(optax.warmup_cosine_decay_schedule(0.1, 1.0, 0, 10)(0)) == 1.0
    assert float(gradtx.warmup_cosine_decay_schedule(0.1, 1.0, 0, 10)(0)) == 1.0


def test_negative_counts_are_treated_as_zero():
    for sched in (gradtx.cosine_decay_schedule(1.0, 100), gradtx.piecewise_interpolate_schedule("linear", 1.0)):
        assert float(sched(-5)) == float(sched(0))


# ---------------------------------------------------------------------------------------------------
# Dtypes


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64])
def test_a_schedule_value_never_changes_a_models_dtype(dtype):
    # gradtx casts a schedule's float32 value to each leaf's compute dtype.
    g = jnp.ones(3, dtype)
    tx = gradtx.scale_by_learning_rate(gradtx.exponential_decay(0.1, 10, 0.5))
    assert jax.jit(tx.update)({"w": g}, tx.init({"w": g}))[0]["w"].dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32, jnp.float64])
def test_a_traced_hyperparameter_sets_the_dtype(dtype):
    def value(peak):
        return gradtx.warmup_cosine_decay_schedule(0.0, peak, 10, 100, end_value=0.01)(jnp.asarray(40, jnp.int32))

    peaks = jnp.asarray([0.5, 1.0, 2.0], dtype)
    got = jax.vmap(value)(peaks)
    assert got.dtype == dtype and not got.weak_type
    with jax.numpy_dtype_promotion("standard"):
        expected = [
            float(optax.warmup_cosine_decay_schedule(0.0, float(p), 10, 100, end_value=0.01)(40)) for p in peaks
        ]
    # float64 hyperparameters compute in float64; narrower ones in float32, then round to their dtype.
    rtol = {jnp.bfloat16: 1e-2, jnp.float32: 1e-6, jnp.float64: 1e-13}[dtype]
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=rtol)


def test_vmap_over_hyperparameters_of_every_kind_of_schedule():
    counts = jnp.asarray([0, 150, 600], jnp.int32)
    lrs = jnp.asarray([0.1, 0.2], jnp.float32)

    def sweep(lr):
        scheds = [
            gradtx.constant_schedule(lr),
            gradtx.exponential_decay(lr, 100, 0.5, end_value=lr / 10),
            gradtx.piecewise_constant_schedule(lr, {100: 0.5}),
            gradtx.piecewise_interpolate_schedule("cosine", lr, {100: 0.5}),
            gradtx.cosine_onecycle_schedule(500, lr),
            gradtx.linear_onecycle_schedule(500, lr),
            gradtx.inverse_time_decay(lr, 0.01),
            gradtx.sutskever_momentum_schedule(lr * 4),
        ]
        return jnp.stack([jax.vmap(s)(counts) for s in scheds])

    got = jax.jit(jax.vmap(sweep))(lrs)
    assert got.shape == (2, 8, 3) and got.dtype == jnp.float32
    for row, lr in zip(got, lrs.tolist(), strict=True):  # the same schedules built from Python numbers
        np.testing.assert_allclose(row, jax.jit(lambda lr=lr: sweep(lr))(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Equality, hashing, pickling, repr


@pytest.mark.parametrize("name", ALL_BUILDS)
def test_equal_hashable_picklable_and_repr_rebuilds_it(name):
    sched, again = ALL_BUILDS[name](), ALL_BUILDS[name]()
    assert sched == again and hash(sched) == hash(again)
    restored = pickle.loads(pickle.dumps(sched))  # float_ramp is module-level, so it pickles too
    assert restored == sched and float(restored(123)) == float(sched(123))
    rebuilt = eval(repr(sched), {**NAMESPACE, "float_ramp": float_ramp})
    assert rebuilt == sched and hash(rebuilt) == hash(sched) and repr(rebuilt) == repr(sched)


def test_equal_by_value_across_spellings():
    assert gradtx.piecewise_constant_schedule(1.0, {100: 0.5, 50: 0.1}) == gradtx.piecewise_constant_schedule(
        1.0, [(50, 0.1), (100, 0.5)]
    )
    assert gradtx.piecewise_constant_schedule(1.0, {}) == gradtx.piecewise_constant_schedule(1.0)
    assert gradtx.cosine_decay_schedule(np.float64(0.5), np.int64(100)) == gradtx.cosine_decay_schedule(0.5, 100)
    assert gradtx.cosine_decay_schedule(0.5, 1e2) == gradtx.cosine_decay_schedule(0.5, 100)
    members = [gradtx.constant_schedule(1.0), gradtx.linear_schedule(1.0, 0.0, 10)]
    assert gradtx.join_schedules(members, [5]) == gradtx.join_schedules(tuple(members), (5,))
    kwargs = dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20)
    assert gradtx.sgdr_schedule([kwargs]) == gradtx.sgdr_schedule([gradtx.warmup_cosine_decay_schedule(**kwargs)])
    assert gradtx.cosine_decay_schedule(0.5, 100) != gradtx.cosine_decay_schedule(0.5, 101)
    assert gradtx.linear_schedule(1.0, 0.0, 10) != gradtx.polynomial_schedule(1.0, 0.0, 1, 10)
    assert len({gradtx.exponential_decay(1.0, 10, 0.5), gradtx.exponential_decay(1.0, 10, 0.5, staircase=True)}) == 2


def test_repr_reads_as_the_code_that_built_it():
    assert repr(gradtx.exponential_decay(0.1, 100, 0.9, end_value=0.01)) == (
        "exponential_decay(init_value=0.1, transition_steps=100, decay_rate=0.9, transition_begin=0,"
        " staircase=False, end_value=0.01)"
    )
    assert repr(gradtx.piecewise_constant_schedule(0.1, {200: 0.1, 100: 0.5})) == (
        "piecewise_constant_schedule(init_value=0.1, boundaries_and_scales=((100, 0.5), (200, 0.1)))"
    )


# ---------------------------------------------------------------------------------------------------
# Validation


def _constant():
    return gradtx.constant_schedule(1.0)


INVALID = [
    (
        lambda: gradtx.cosine_decay_schedule(1.0, 0),
        ValueError,
        "cosine_decay_schedule: decay_steps must be in [1, inf), got 0",
    ),
    (
        lambda: gradtx.cosine_decay_schedule(1.0, 100, exponent=-1.0),
        ValueError,
        "exponent must be in [0, inf), got -1.0",
    ),
    (
        lambda: gradtx.exponential_decay(1.0, 10, 0.0),
        ValueError,
        "exponential_decay: decay_rate must be in (0, inf), got 0.0",
    ),
    (
        lambda: gradtx.exponential_decay(1.0, 0, 0.5),
        ValueError,
        "exponential_decay: transition_steps must be in [1, inf), got 0",
    ),
    (lambda: gradtx.exponential_decay(1.0, 10, 0.5, -1), ValueError, "transition_begin must be in [0, inf), got -1"),
    (
        lambda: gradtx.exponential_decay(1.0, 10, 0.5, staircase="yes"),
        TypeError,
        "staircase must be True or False, got 'yes'",
    ),
    (
        lambda: gradtx.linear_schedule(1.0, 0.0, 10.5),
        TypeError,
        "linear_schedule: transition_steps must be an integer number of steps, got 10.5",
    ),
    (lambda: gradtx.linear_schedule(1.0, 0.0, -3), ValueError, "transition_steps must be in [0, inf), got -3"),
    (lambda: gradtx.polynomial_schedule(1.0, 0.0, -1.0, 10), ValueError, "power must be in [0, inf), got -1.0"),
    (
        lambda: gradtx.constant_schedule(float("nan")),
        ValueError,
        "constant_schedule: value must be in (-inf, inf), got nan",
    ),
    (
        lambda: gradtx.constant_schedule(_constant()),
        TypeError,
        "constant_schedule: value must be a number in (-inf, inf), not a schedule",
    ),
    (lambda: gradtx.constant_schedule("0.1"), TypeError, "value must be a real number, got '0.1'"),
    (
        lambda: gradtx.piecewise_constant_schedule(1.0, {10.5: 0.1}),
        TypeError,
        "boundary must be an integer number of steps, got 10.5",
    ),
    (
        lambda: gradtx.piecewise_constant_schedule(1.0, {"10": 0.1}),
        TypeError,
        "boundary must be an integer number of steps, got '10'",
    ),
    (
        lambda: gradtx.piecewise_constant_schedule(1.0, {10: -0.1}),
        ValueError,
        "boundaries_and_scales[10] must be in [0, inf), got -0.1",
    ),
    (lambda: gradtx.piecewise_constant_schedule(1.0, 0.5), TypeError, "boundaries_and_scales must be a dict"),
    (
        lambda: gradtx.piecewise_interpolate_schedule("quadratic", 1.0),
        ValueError,
        "interpolate_type must be 'linear' or 'cosine', got 'quadratic'",
    ),
    (
        lambda: gradtx.join_schedules([_constant(), _constant()], [1, 2]),
        TypeError,
        "join_schedules: boundaries must have one entry fewer than schedules",
    ),
    (
        lambda: gradtx.join_schedules([_constant(), 0.5], [1]),
        TypeError,
        "join_schedules: schedules[1] must be a schedule count -> value, got 0.5",
    ),
    (
        lambda: gradtx.join_schedules([_constant()] * 3, [5, 3]),
        ValueError,
        "boundaries must be non-decreasing, got (5, 3)",
    ),
    (
        lambda: gradtx.join_schedules([_constant()] * 2, [2.5]),
        TypeError,
        "boundaries[0] must be an integer number of steps, got 2.5",
    ),
    (lambda: gradtx.join_schedules([], []), ValueError, "schedules must hold at least one schedule"),
    (
        lambda: gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 100),
        ValueError,
        "decay_steps counts the warmup too, so it must exceed warmup_steps, got decay_steps=100, warmup_steps=100",
    ),
    (
        lambda: gradtx.warmup_exponential_decay_schedule(0.0, 1.0, 10, 10, -0.5),
        ValueError,
        "decay_rate must be in (0, inf), got -0.5",
    ),
    (
        lambda: gradtx.cosine_onecycle_schedule(0, 1.0),
        ValueError,
        "cosine_onecycle_schedule: transition_steps must be in [1, inf), got 0",
    ),
    (
        lambda: gradtx.cosine_onecycle_schedule(100, 1.0, pct_start=1.5),
        ValueError,
        "pct_start must be in [0, 1], got 1.5",
    ),
    (
        lambda: gradtx.linear_onecycle_schedule(100, 1.0, div_factor=0.0),
        ValueError,
        "div_factor must be in (0, inf), got 0.0",
    ),
    (
        lambda: gradtx.linear_onecycle_schedule(100, 1.0, 0.5, 0.3),
        ValueError,
        "pct_final must be at least pct_start, got pct_start=0.5, pct_final=0.3",
    ),
    (lambda: gradtx.sgdr_schedule([]), ValueError, "sgdr_schedule: cosine_kwargs must hold at least one cycle"),
    (
        lambda: gradtx.sgdr_schedule([100]),
        TypeError,
        "cosine_kwargs[0] must be a dict of warmup_cosine_decay_schedule's arguments",
    ),
    (
        lambda: gradtx.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=5)]),
        ValueError,
        "sgdr_schedule: cosine_kwargs[0]['decay_steps'] counts the warmup too",
    ),
    (
        lambda: gradtx.inverse_time_decay(1.0, -0.5),
        ValueError,
        "inverse_time_decay: decay_rate must be in [0, inf), got -0.5",
    ),
    (
        lambda: gradtx.sutskever_momentum_schedule(1.5),
        ValueError,
        "sutskever_momentum_schedule: mu_max must be in [0, 1], got 1.5",
    ),
    (lambda: gradtx.sutskever_momentum_schedule(0.9, 0), ValueError, "transition_steps must be in [1, inf), got 0"),
]


@pytest.mark.parametrize(("build", "error", "message"), INVALID, ids=[m[:48] for _, _, m in INVALID])
def test_validation_names_the_builder_the_argument_and_the_value(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


def test_step_arguments_must_be_concrete():
    def build(steps):
        return gradtx.cosine_decay_schedule(1.0, steps)(0)

    with pytest.raises(TypeError, match="decay_steps must be a concrete integer number of steps, got a traced value"):
        jax.vmap(build)(jnp.asarray([10, 20]))
