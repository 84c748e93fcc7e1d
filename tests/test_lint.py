"""gradtx.lint: gradtx's optimizers are clean, each deliberately bad chain gives exactly its warning,
and the classification it reads (lint.ROLES) covers every builder the registry builds."""

from __future__ import annotations

import optax
import pytest

import gradtx
from gradtx.lint import ROLES
from gradtx.walk import hyperparams_of, stages
from tests.registry import (
    EXTRA_ARGS,
    OPTIMIZERS,
    OWN_PARAMS,
    PER_EXAMPLE,
    TRANSFORMATION_CASES,
    TRANSFORMS,
    decay_mask,
)

CLEAN = [pytest.param(c, id=c.id) for c in OPTIMIZERS + OWN_PARAMS + EXTRA_ARGS]


def builders(tx) -> set[str]:
    return {hp.builder for _, _, t, _ in stages(tx) if (hp := hyperparams_of(t)) is not None}


def test_roles_classify_every_builder_in_the_registry():
    cases = TRANSFORMATION_CASES + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE
    seen = set().union(*(builders(c.build()) for c in cases))
    # An optimizer among EXTRA_ARGS (lbfgs, polyak_sgd) builds a chain: its name is no stage's.
    seen |= {
        c.name for c in TRANSFORMS + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE if c.build().hyperparams.builder != "chain"
    }
    assert seen - set(ROLES) == set(), "classify these builders in gradtx/lint.py ROLES"
    assert set(ROLES) - seen == set(), "ROLES names a builder the registry does not build"


# Presets whose chains hold what lint rightly reports, because their framework computes it so.
FRAMEWORK_FORM = {
    # Keras decays the weights before the step, which then reads the decayed weights' RMS: the step
    # is scaled by 1 - lr wd, a second fixed step size (presets/keras_adafactor.py).
    "presets.keras.Adafactor": ["two-lr"],
}


@pytest.mark.parametrize("case", CLEAN)
def test_every_optimizer_is_lint_clean(case):
    assert [w.rule for w in gradtx.lint(case.build())] == FRAMEWORK_FORM.get(case.id, [])


def test_an_odd_number_of_flips_descends():
    decay_outside = gradtx.chain(
        gradtx.adam(1e-3), gradtx.scale(-1.0), gradtx.add_decayed_weights(1e-4), gradtx.scale(-1.0)
    )  # u - 1e-4 p: the decay added with the descent sign
    assert gradtx.lint(decay_outside) == []
    assert [w.rule for w in gradtx.lint(gradtx.chain(decay_outside, gradtx.scale(-1.0)))] == ["sign"]


def test_optimizers_with_schedules_masks_and_wrappers_are_clean():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)
    for tx in (
        gradtx.adamw(sched, mask=decay_mask),
        gradtx.sgd(sched, momentum=0.9, nesterov=True),
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(sched)),
        gradtx.partition({"a": gradtx.adam(1e-3), "f": gradtx.set_to_zero()}, {"w": "a", "b": "f"}),
        gradtx.inject_hyperparams(gradtx.lion)(learning_rate=1e-4),
        gradtx.MultiSteps(gradtx.apply_if_finite(gradtx.lamb(1e-3), 2), 4).gradient_transformation(),
        gradtx.chain(gradtx.scale_by_momentum(0.9), gradtx.bias_correction(0.9), gradtx.scale_by_learning_rate(0.1)),
        gradtx.adafactor(1e-2, momentum=0.9, weight_decay_rate=1e-3),
    ):
        assert gradtx.lint(tx) == [], tx


sched = gradtx.exponential_decay(0.1, 10, 0.5)
BAD = {
    # rule: a chain that breaks it, and nothing else
    "sign": [
        gradtx.chain(gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(1e-3, flip_sign=False)),  # missing
        gradtx.chain(gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(1e-3), gradtx.scale(-1.0)),  # doubled
        gradtx.masked(gradtx.adam(1e-3), {"w": True, "b": False}),  # b is masked out: raw gradients ascend
        gradtx.partition({"a": gradtx.adam(1e-3), "s": gradtx.scale_by_rms()}, {"w": "a", "b": "s"}),
    ],
    "decay-order": [gradtx.chain(gradtx.adam(1e-3), gradtx.add_decayed_weights(1e-2))],
    "clip-order": [
        gradtx.chain(gradtx.scale_by_adam(), gradtx.clip_by_global_norm(1.0), gradtx.scale_by_learning_rate(1e-3)),
    ],
    "two-lr": [gradtx.chain(gradtx.scale_by_adam(), gradtx.scale(0.1), gradtx.scale_by_learning_rate(1e-3))],
    "momentum-lr": [gradtx.chain(gradtx.scale_by_learning_rate(sched), gradtx.trace(0.9))],
    "bias-ema": [
        gradtx.chain(gradtx.trace(0.9), gradtx.bias_correction(0.9), gradtx.scale_by_learning_rate(0.1)),  # no EMA
        # ema debiases already
        gradtx.chain(gradtx.ema(0.9), gradtx.bias_correction(0.9), gradtx.scale_by_learning_rate(0.1)),
        gradtx.chain(gradtx.scale_by_momentum(0.99), gradtx.bias_correction(0.9), gradtx.scale_by_learning_rate(0.1)),
    ],
}  # fmt: skip
BAD_CASES = [pytest.param(rule, tx, id=f"{rule}-{i}") for rule, txs in BAD.items() for i, tx in enumerate(txs)]


@pytest.mark.parametrize(("rule", "tx"), BAD_CASES)
def test_each_bad_chain_gives_exactly_its_warning(rule, tx):
    found = gradtx.lint(tx)
    assert [w.rule for w in found] == [rule], [str(w) for w in found]
    assert str(found[0]).startswith(f"{rule}: ") and found[0].stage


def test_warnings_say_which_leaves_and_which_stages():
    (w,) = gradtx.lint(BAD["sign"][2])
    assert "masked out" in w.message and "ascends" in w.message
    (w,) = gradtx.lint(BAD["sign"][3])
    assert "labelled 's'" in w.message
    (w,) = gradtx.lint(BAD["sign"][1])
    assert "2 times" in w.message and "scale(step_size=-1.0)" in w.message
    (w,) = gradtx.lint(BAD["bias-ema"][2])
    assert "0.99" in w.message and "0.9" in w.message


def test_describe_reports_lint_and_lint_looks_past_what_it_cannot_see():
    assert "decay-order" in str(gradtx.describe(BAD["decay-order"][0], {"w": 1.0}, costs=False))
    # An optax member may flip the sign itself: the sign rules stay silent, the others still apply.
    assert gradtx.lint(gradtx.chain(gradtx.scale_by_adam(), optax.scale(-1e-3))) == []
    mixed = gradtx.chain(
        optax.identity(), gradtx.scale_by_adam(), gradtx.clip(1.0), gradtx.scale_by_learning_rate(1e-3)
    )
    assert [w.rule for w in gradtx.lint(mixed)] == ["clip-order"]
    with pytest.raises(TypeError, match="lint: expected a gradient transformation"):
        gradtx.lint(gradtx.adam)
