"""Every optimizer converges on the lecture's ill-conditioned quadratic and on Rosenbrock.

    quadratic:  f(w) = (w1 - 1)^2 + 100 (w2 - 1)^2          minimum at (1, 1), condition number 100
    Rosenbrock: f(w) = (1 - w1)^2 + 100 (w2 - w1^2)^2       minimum at (1, 1), a curved flat valley

Settings are typical hand-tuned values; the step budgets are generous so that the tests check
convergence, not speed (speed is for benchmarks/).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def quadratic(w: jax.Array) -> jax.Array:
    return (w[0] - 1) ** 2 + 100 * (w[1] - 1) ** 2


def rosenbrock(w: jax.Array) -> jax.Array:
    return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


def minimize(tx: gradtx.GradientTransformation, f, w0, steps: int) -> jax.Array:
    @jax.jit
    def run(w):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(f)(w), state, w)
            return (gradtx.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, tx.init(w)), None, length=steps)[0][0]

    return run(jnp.asarray(w0, jnp.float64))


# name: (optimizer, steps) on the quadratic and on Rosenbrock. Plain SGD needs a smaller step on
# Rosenbrock (curvature ~1300 at the start, so lr < 2 / 1300); Adadelta needs rho = 0.999 and a
# learning rate there, as is commonly reported.
ROW_SCHEDULE = gradtx.cosine_decay_schedule(0.02, 20_000)
QUADRATIC = {
    "sgd": (gradtx.sgd(0.009), 2_000),
    "sgd-momentum": (gradtx.sgd(0.002, momentum=0.9), 2_000),
    "sgd-nesterov": (gradtx.sgd(0.001, momentum=0.9, nesterov=True), 2_000),
    "adagrad": (gradtx.adagrad(0.5), 3_000),
    "rmsprop": (gradtx.rmsprop(0.01), 3_000),
    "rmsprop-centered-momentum": (gradtx.rmsprop(0.001, centered=True, momentum=0.9), 3_000),
    "adadelta": (gradtx.adadelta(eps=1e-4), 5_000),
    "adam": (gradtx.adam(0.05), 3_000),
    "adamw": (gradtx.adamw(0.05, weight_decay=0.0), 3_000),
    "nadam": (gradtx.nadam(0.05), 3_000),
    "adamax": (gradtx.adamax(0.05), 3_000),
    "amsgrad": (gradtx.amsgrad(0.05), 3_000),
    # The layerwise optimizers step by about lr ||w|| whatever the gradient's size (one block here):
    # a decaying learning rate lets them settle.
    "lamb": (gradtx.lamb(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    "lars": (gradtx.lars(gradtx.cosine_decay_schedule(0.5, 3_000), trust_coefficient=0.1), 3_000),
    "adafactor": (gradtx.adafactor(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    # Sign methods move every coordinate by lr: a small lr lands within lr of the minimum.
    "lion": (gradtx.lion(1e-3, weight_decay=0.0), 3_000),
    "sign_sgd": (gradtx.sign_sgd(1e-3), 3_000),
    "signum": (gradtx.signum(1e-3), 3_000),
    "rprop": (gradtx.rprop(1e-3), 3_000),
    "radam": (gradtx.radam(0.05), 3_000),
    "adabelief": (gradtx.adabelief(0.05), 3_000),
    "yogi": (gradtx.yogi(0.05), 3_000),
    # NovoGrad normalizes the whole gradient (one leaf here) and sums it with b1 = 0.9 (steps ~ 10 lr).
    "novograd": (gradtx.novograd(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    "noisy_sgd": (gradtx.noisy_sgd(0.009, key=0), 3_000),
    # issue 10 (optim)
    "sgd-dampening": (gradtx.sgd(0.004, momentum=0.9, dampening=0.5), 2_000),
    "adan": (gradtx.adan(0.05), 3_000),
    "nadamw": (gradtx.nadamw(0.05, weight_decay=0.0), 3_000),
    "adamaxw": (gradtx.adamaxw(0.05, weight_decay=0.0), 3_000),
    "sm3": (gradtx.sm3(0.5), 3_000),
    "fromage": (gradtx.fromage(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),  # steps ~ lr ||w||, as lars
    "optimistic_gradient_descent": (gradtx.optimistic_gradient_descent(0.002), 3_000),
    "optimistic_adam": (gradtx.optimistic_adam(0.01), 3_000),
    "optimistic_adam_v2": (gradtx.optimistic_adam_v2(0.01), 3_000),
    "asgd": (gradtx.asgd(0.009), 3_000),
    "ftrl": (gradtx.ftrl(0.5), 3_000),
    "safeguarded_lbfgs": (gradtx.safeguarded_lbfgs(1.0), 3_000),  # torch.optim.LBFGS's fixed unit step
    # issue 10 (optax.contrib): the learning-rate-free ones with their defaults
    "acprop": (gradtx.acprop(0.05), 3_000),
    "cocob": (gradtx.cocob(), 3_000),
    "dog": (gradtx.dog(1.0), 10_000),  # its step grows from reps_rel: slow to start on a quadratic
    "dowg": (gradtx.dowg(1.0), 3_000),
    "madgrad": (gradtx.madgrad(0.01), 3_000),
    # the presets (their frameworks' defaults but the learning rate)
    "presets.torch.Adam": (gradtx.presets.torch.Adam(0.05), 3_000),
    "presets.torch.RAdam": (gradtx.presets.torch.RAdam(0.05), 3_000),
    "presets.torch.RMSprop": (gradtx.presets.torch.RMSprop(0.01), 3_000),
    "presets.torch.ASGD": (gradtx.presets.torch.ASGD(0.009), 3_000),  # as asgd
    "presets.keras.SGD": (gradtx.presets.keras.SGD(0.009), 3_000),
    "presets.keras.Adam": (gradtx.presets.keras.Adam(0.05), 3_000),
    "presets.keras.AdamW": (gradtx.presets.keras.AdamW(0.05, weight_decay=0.0), 3_000),
    "presets.keras.Adamax": (gradtx.presets.keras.Adamax(0.05), 3_000),
    # issue 11: schedule-free (the params y; the average x converges with them)
    "schedule_free_sgd": (gradtx.schedule_free_sgd(0.009), 3_000),
    "schedule_free_adamw": (gradtx.schedule_free_adamw(0.05), 3_000),
    "presets.keras.ScheduleFreeAdamW": (gradtx.presets.keras.ScheduleFreeAdamW(0.05), 3_000),
    # Muon orthogonalizes matrices: w is one 1 x 2 row here (MuonDimensionNumbers((), 0); torch's preset
    # makes a vector a row itself), whose orthogonal factor is w / |w|, normalized gradient descent with
    # momentum; Keras's Muon gives vectors to its Adam. A decaying rate, since the step's length is the rate.
    "muon": (gradtx.muon(ROW_SCHEDULE, muon_weight_dimension_numbers=gradtx.MuonDimensionNumbers((), 0)), 20_000),
    "normuon": (gradtx.normuon(ROW_SCHEDULE, muon_weight_dimension_numbers=gradtx.MuonDimensionNumbers((), 0)), 20_000),
    # Shampoo: the params are vectors here, so Adam's direction (its graft) with summed momentum (1 / (1 - b1))
    "shampoo": (gradtx.shampoo(0.005), 3_000),
    "presets.torch.Muon": (gradtx.presets.torch.Muon(ROW_SCHEDULE, weight_decay=0.0), 20_000),
    # PSGD Kron: w is a vector, so one diagonal factor; the update's RMS is clipped to 1.1, a decaying rate
    "kron": (gradtx.kron(ROW_SCHEDULE), 20_000),
    "presets.keras.Muon": (gradtx.presets.keras.Muon(ROW_SCHEDULE, weight_decay=None, adam_weight_decay=None), 20_000),
    # issue 11: Adam's newer relatives. CAME's step on a vector is its clipped momentum, ~ lr a
    # coordinate: a decaying rate lets it settle (as adafactor)
    "came": (gradtx.came(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    "laprop": (gradtx.laprop(0.05), 3_000),
    "adam_atan2": (gradtx.adam_atan2(0.05), 3_000),
    # MARS on w itself (mars_mask: every leaf; a vector would go to its AdamW by default)
    "mars": (gradtx.mars(0.05, mars_mask=lambda p: True), 3_000),
    # Adam-mini with one block for w: a single second moment, so the steps are m^ / RMS(m^)-like
    "adam_mini": (gradtx.adam_mini(0.05), 3_000),
    "presets.keras.Ftrl": (gradtx.presets.keras.Ftrl(0.5), 3_000),  # as ftrl
    "presets.torch.LBFGS": (gradtx.presets.torch.LBFGS(), 3_000),  # torch's defaults
    "presets.torch.SparseAdam": (gradtx.presets.torch.SparseAdam(0.05), 3_000),  # as adam (every g != 0 here)
    # Adafactor's steps are ~ rho_t rms(w): a decaying learning rate lets them settle (as adafactor)
    "presets.torch.Adafactor": (gradtx.presets.torch.Adafactor(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    "presets.keras.Adafactor": (gradtx.presets.keras.Adafactor(gradtx.cosine_decay_schedule(0.05, 3_000)), 3_000),
    # Adam's newer relatives: the defaults, but a smaller b1 for Simplified AdEMAMix, whose momentum is a
    # sum of ~1 / (1 - b1) gradients (lr 1e-3 with b1 = 0.9 is Adam's 1e-2)
    "adopt": (gradtx.adopt(0.05), 3_000),
    "ademamix": (gradtx.ademamix(0.05), 3_000),
    "simplified_ademamix": (gradtx.simplified_ademamix(0.001, b1=0.9), 3_000),
}
ROSENBROCK = {
    **{name: (tx, 20_000) for name, (tx, _) in QUADRATIC.items()},
    "sgd": (gradtx.sgd(0.001), 30_000),
    "adagrad": (gradtx.adagrad(0.5), 30_000),
    "rmsprop-centered-momentum": (gradtx.rmsprop(0.001, centered=True, momentum=0.9), 30_000),
    "adadelta": (gradtx.adadelta(0.1, rho=0.999), 30_000),
    "lamb": (gradtx.lamb(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "lars": (gradtx.lars(gradtx.cosine_decay_schedule(1.0, 20_000), trust_coefficient=0.01), 20_000),
    "adafactor": (gradtx.adafactor(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    # RAdam's first five steps are SGD steps (rho_t < 5): lr 0.05 times Rosenbrock's gradient of ~200 diverges.
    "radam": (gradtx.radam(1e-3), 20_000),
    "novograd": (gradtx.novograd(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "noisy_sgd": (gradtx.noisy_sgd(0.001, key=0), 30_000),
    # signSGD with a constant lr settles into a cycle across the curved valley: it needs a decaying lr.
    "sign_sgd": (gradtx.sign_sgd(gradtx.cosine_decay_schedule(0.003, 20_000)), 20_000),
    # issue 10 (optim)
    "sgd-dampening": (gradtx.sgd(0.001, momentum=0.9, dampening=0.5), 30_000),
    "fromage": (gradtx.fromage(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "optimistic_gradient_descent": (gradtx.optimistic_gradient_descent(5e-4), 30_000),
    "asgd": (gradtx.asgd(0.001), 30_000),
    "acprop": (gradtx.acprop(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "cocob": (gradtx.cocob(), 40_000),
    "dog": (gradtx.dog(1.0), 20_000),
    "presets.torch.RAdam": (gradtx.presets.torch.RAdam(1e-3), 20_000),  # as radam
    "presets.keras.SGD": (gradtx.presets.keras.SGD(0.001), 30_000),  # as sgd
    # schedule-free SGD's average of the iterates trails them along the valley: a longer budget
    "schedule_free_sgd": (gradtx.schedule_free_sgd(0.0014), 40_000),
    "schedule_free_adamw": (gradtx.schedule_free_adamw(0.01), 20_000),
    "presets.keras.ScheduleFreeAdamW": (gradtx.presets.keras.ScheduleFreeAdamW(0.01), 20_000),
    # Muon orthogonalizes matrices: w is one 1 x 2 row here (MuonDimensionNumbers((), 0); torch's preset
    # makes a vector a row itself), whose orthogonal factor is w / |w|, normalized gradient descent with
    # momentum; Keras's Muon gives vectors to its Adam. A decaying rate, since the step's length is the rate.
    "muon": (gradtx.muon(ROW_SCHEDULE, muon_weight_dimension_numbers=gradtx.MuonDimensionNumbers((), 0)), 20_000),
    "normuon": (gradtx.normuon(ROW_SCHEDULE, muon_weight_dimension_numbers=gradtx.MuonDimensionNumbers((), 0)), 20_000),
    "shampoo": (gradtx.shampoo(0.001), 20_000),
    "presets.torch.Muon": (gradtx.presets.torch.Muon(ROW_SCHEDULE, weight_decay=0.0), 20_000),
    # PSGD Kron: w is a vector, so one diagonal factor; the update's RMS is clipped to 1.1, a decaying rate
    "kron": (gradtx.kron(ROW_SCHEDULE), 20_000),
    "presets.keras.Muon": (gradtx.presets.keras.Muon(ROW_SCHEDULE, weight_decay=None, adam_weight_decay=None), 20_000),
    "came": (gradtx.came(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),  # as adafactor
    "mars": (gradtx.mars(gradtx.cosine_decay_schedule(0.01, 20_000), mars_mask=lambda p: True), 20_000),
    "adam_mini": (gradtx.adam_mini(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "presets.torch.ASGD": (gradtx.presets.torch.ASGD(0.001), 30_000),  # as asgd
    "presets.torch.Adafactor": (gradtx.presets.torch.Adafactor(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
    "presets.keras.Adafactor": (gradtx.presets.keras.Adafactor(gradtx.cosine_decay_schedule(0.01, 20_000)), 20_000),
}


@pytest.mark.parametrize("name", QUADRATIC)
def test_converges_on_ill_conditioned_quadratic(name):
    tx, steps = QUADRATIC[name]
    w = minimize(tx, quadratic, [-1.0, -1.0], steps)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=1e-2)


@pytest.mark.parametrize("name", ROSENBROCK)
def test_converges_on_rosenbrock(name):
    tx, steps = ROSENBROCK[name]
    w = minimize(tx, rosenbrock, [-1.2, 1.0], steps)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=5e-2)


def test_covers_every_optimizer():
    from tests.registry import OPTIMIZERS as REGISTERED

    assert (
        {c.name for c in REGISTERED}
        == {name.split("-")[0] for name in QUADRATIC}
        == {name.split("-")[0] for name in ROSENBROCK}
    )
