"""gradtx.describe and gradtx.state_nbytes: every registry entry is described; bytes are hand-counted.

The byte counts are written out by hand from the algorithms' state (Adam keeps m and v, SGD with
momentum a trace, Adafactor a row and a column statistic per factored matrix), not read from gradtx.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import gradtx
from gradtx.walk import OPAQUE, equation
from tests.registry import EXTRA_ARGS, OWN_PARAMS, PER_EXAMPLE, TRANSFORMATION_CASES

PARAMS = {"w": jnp.zeros((3, 4), jnp.float32), "b": jnp.zeros(4, jnp.float32)}  # 16 floats, 64 bytes
ALL = TRANSFORMATION_CASES + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE
# Builders whose docstrings (and modules' docstrings) hold no equation: their summary line says it.
# Any other builder must have one, so that describe shows it without a table kept here.
NO_EQUATION = {"identity", "stateless", "stateless_with_tree_map", "named_chain", "set_to_zero"}
# Entries that hold a hand-built transformation (no gradtx hyperparameters: an opaque stage), and why.
OPAQUE_INSIDE = {"with_extra_args_support": "it exists to wrap a hand-built GradientTransformation"}


def _nbytes(x) -> int:
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return 8  # a threefry key holds 2 uint32
    return x.size * x.dtype.itemsize


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ALL])
def test_every_registry_entry_is_described(case):
    tx = case.build()
    d = gradtx.describe(tx, PARAMS, costs=False)
    assert d.stages[0].tx is tx and d.params_bytes == 64
    # The stages' own bytes add up to the whole state's, counted independently of describe.
    state = jax.eval_shape(tx.init, PARAMS)
    assert sum(s.state_bytes for s in d.stages) == sum(map(_nbytes, jax.tree.leaves(state)))
    for s in d.stages:
        if s.name == OPAQUE and case.id in OPAQUE_INSIDE:
            continue
        assert s.name != OPAQUE and s.summary, s
        assert s.equation or s.name in NO_EQUATION, f"{s.name}: no equation in its docstring"
    assert str(d).count("\n") >= len(d.stages)


def test_adam_is_described_stage_by_stage_with_costs():
    d = gradtx.describe(gradtx.adam(1e-3), PARAMS)
    names = [s.name for s in d.stages]
    assert names == ["chain", "scale_by_adam", "scale_by_learning_rate"]
    adam = d.stages[1]
    assert adam.hyperparams["b1"] == 0.9 and adam.hyperparams["b2"] == 0.999
    assert adam.state_bytes == 2 * 64 + 4  # m and v, float32 like the params, and an int32 count
    assert set(adam.state) == {"count", "mu", "nu"}
    assert "m <- b1 m + (1 - b1) g" in adam.equation
    # XLA's cost model: a scale is one multiply per element, and reads and writes each element once.
    lr = d.stages[2]
    assert lr.flops == 16 and lr.bytes_accessed >= 2 * 64
    assert adam.flops > 5 * 16  # two EMAs, two corrections, a root and a division per element
    assert d.stages[0].flops >= adam.flops + lr.flops - 16  # the chain compiles both (XLA may fuse)
    assert "scale_by_adam(b1=0.9" in str(d) and "lint" not in str(d)


def test_nested_wrappers_are_walked_and_masked_stages_see_their_leaves():
    mask = {"w": True, "b": False}
    tx = gradtx.apply_if_finite(
        gradtx.MultiSteps(gradtx.masked(gradtx.adam(1e-3), mask), 2).gradient_transformation(), 3
    )
    d = gradtx.describe(tx, PARAMS)
    assert [s.name for s in d.stages] == [
        "apply_if_finite",
        "MultiSteps",
        "masked",
        "chain",
        "scale_by_adam",
        "scale_by_learning_rate",
    ]
    adam = d.stages[4]
    assert adam.path == "inner/inner/inner/0" and adam.depth == 4
    assert adam.state_bytes == 2 * 48 + 4  # only w (12 floats) is masked in
    multi = d.stages[1]
    assert multi.state_bytes == 64 + 4 + 4  # its accumulator (all 16 floats) and two counts
    assert all(s.flops is not None for s in d.stages), [s.cost_error for s in d.stages]


def test_partition_and_inject_hyperparams():
    labels = {"w": "adam", "b": "sgd"}
    tx = gradtx.partition({"adam": gradtx.adam(1e-3), "sgd": gradtx.sgd(0.1, momentum=0.9)}, labels)
    d = gradtx.describe(tx, PARAMS, costs=False)
    by_name = {s.name: s for s in d.stages}
    assert by_name["scale_by_adam"].state_bytes == 2 * 48 + 4 and by_name["trace"].state_bytes == 16 + 4
    by_int = gradtx.partition({0: gradtx.adam(1e-3), 1: gradtx.sgd(0.1, momentum=0.9)}, {"w": 0, "b": 1})
    assert [
        s.state_bytes
        for s in gradtx.describe(by_int, PARAMS, costs=False).stages
        if s.name in ("scale_by_adam", "trace")
    ] == [2 * 48 + 4, 16 + 4]
    inj = gradtx.describe(gradtx.inject_hyperparams(gradtx.adam)(1e-3), PARAMS, costs=False)
    assert [s.name for s in inj.stages] == ["inject_hyperparams", "chain", "scale_by_adam", "scale_by_learning_rate"]


def test_optax_members_are_opaque_but_measured():
    with jax.numpy_dtype_promotion("standard"):
        d = gradtx.describe(gradtx.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)), PARAMS)
    assert [s.name for s in d.stages] == ["chain", OPAQUE, OPAQUE]
    assert d.stages[2].state_bytes == 2 * 64 + 4 and d.stages[2].flops > 0


def test_rollback_is_described_with_its_loss():
    d = gradtx.describe(gradtx.rollback(gradtx.sgd(0.1, momentum=0.9)), PARAMS, extra_args={"loss": jnp.float32(1)})
    rb = d.stages[0]
    # its own: a copy of the params, a copy of the inner state (the trace and its count), the counters
    assert rb.state_bytes == 64 + (64 + 4) + 4 + 3 * 4 + 1 and rb.flops is not None
    missing = gradtx.describe(gradtx.rollback(gradtx.sgd(0.1)), PARAMS)
    assert "loss" in missing.stages[0].cost_error


def test_equation_is_the_first_indented_block():
    def builder():
        """One line.

        More words.

            u = 2 g
            v = u

        >>> builder()
        """

    assert equation(builder) == ("One line.", "u = 2 g\nv = u")
    assert equation(gradtx.sgd)[1] is None


@pytest.mark.parametrize(
    ("tx", "by_stage"),
    [
        # Adam: m and v for each of the 16 floats (float32) and one int32 count.
        (gradtx.adam(1e-3), {"[0] ScaleByAdamState": 2 * 16 * 4 + 4, "[1] EmptyState": 0}),
        # SGD with momentum: a trace of 16 floats and a count.
        (gradtx.sgd(0.1, momentum=0.9), {"[0] TraceState": 16 * 4 + 4, "[1] EmptyState": 0}),
        # Adafactor factors w (3 x 4): a row statistic of 3 and a column statistic of 4 floats, and
        # a (1,) placeholder for its unfactored v; b (4,) keeps v whole and (1,) placeholders.
        (
            gradtx.adafactor(1e-2, min_dim_size_to_factor=2),
            {
                "[0] FactoredState": 4 + (3 + 4 + 1) * 4 + (1 + 1 + 4) * 4,
                **{f"[{i}] EmptyState": 0 for i in range(1, 5)},
            },
        ),
        # masked adam on w only: m and v of its 12 floats.
        (
            gradtx.masked(gradtx.adam(1e-3), {"w": True, "b": False}),
            {".inner_state[0] ScaleByAdamState": 2 * 12 * 4 + 4, ".inner_state[1] EmptyState": 0, "MaskedState": 0},
        ),
    ],
    ids=["adam", "sgd-momentum", "adafactor", "masked"],
)
def test_state_nbytes_by_hand(tx, by_stage):
    report = gradtx.state_nbytes(tx, PARAMS)
    assert report.by_stage == by_stage or dict(sorted(report.by_stage.items())) == dict(sorted(by_stage.items()))
    assert report.total == sum(by_stage.values()) and report.params == 64
    assert report.multiple() == pytest.approx(report.total / 64)
    # The same from a state, counted per dtype and per leaf.
    state = tx.init(PARAMS)
    again = gradtx.state_nbytes(state, PARAMS)
    assert again.total == report.total and sum(again.by_dtype.values()) == report.total
    assert sum(again.by_leaf.values()) == report.total


def test_state_nbytes_reads_as_a_multiple_of_the_params():
    params = {"w": jnp.zeros((1000, 1000), jnp.float32)}
    report = gradtx.state_nbytes(gradtx.adam(1e-3), params)
    assert f"{report.multiple():.1f}" == "2.0" and "2.0 x params" in str(report)
    assert report.by_dtype == {"int32": 4, "float32": 8_000_000}
    bf16 = gradtx.state_nbytes(gradtx.adam(1e-3), {"w": jnp.zeros((1000, 1000), jnp.bfloat16)})
    assert f"{bf16.multiple():.1f}" == "3.0"  # m in bfloat16, v in float32: 2 + 4 bytes per 2-byte param
    with pytest.raises(TypeError, match="pass the params"):
        gradtx.state_nbytes(gradtx.adam(1e-3))
