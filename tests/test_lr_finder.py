"""gradtx.lr_finder on problems whose good learning rates are known analytically.

Gradient descent on L(w) = (lambda / 2) |w|^2 multiplies the loss by (1 - eta lambda)^2 per step:
it falls while eta < 2 / lambda (fastest at eta = 1 / lambda) and grows above 2 / lambda. Along an
exponentially growing eta the loss must then fall until eta crosses 2 / lambda and rise after it,
the range test's divergence must come just above 2 / lambda, and "steepest" must suggest 1 / lambda.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

CURVATURE = 8.0  # lambda: the loss falls fastest at eta = 1/8, diverges above eta = 1/4
STEPS, LOW, HIGH = 81, 1e-3, 10.0
RATIO = (HIGH / LOW) ** (1 / (STEPS - 1))  # one step's growth of the learning rate


def loss(w):
    return 0.5 * CURVATURE * jnp.sum(w**2)


@pytest.fixture(scope="module")
def result():
    return gradtx.lr_finder(loss, jnp.ones(3), gradtx.sgd, steps=STEPS, min_lr=LOW, max_lr=HIGH, smoothing=0.0)


def test_the_curve_falls_below_two_over_lambda_and_rises_above(result):
    rates, losses = result.learning_rates, result.losses
    np.testing.assert_allclose(rates, LOW * RATIO ** np.arange(len(rates)), rtol=1e-12)
    # loss_k is taken before the k-th update: loss_{k+1} / loss_k = (1 - eta_k lambda)^2, by hand
    np.testing.assert_allclose(losses[1:] / losses[:-1], (1 - rates[:-1] * CURVATURE) ** 2, rtol=1e-9)
    rising = np.flatnonzero(losses[1:] > losses[:-1])
    assert rates[rising[0]] > 2 / CURVATURE >= rates[rising[0] - 1]


def test_divergence_and_suggestion_fall_where_theory_says(result):
    assert 2 / CURVATURE < result.diverged_at < 2 / CURVATURE * RATIO**6
    assert result.rule == "steepest" and 1 / CURVATURE / RATIO <= result.suggestion <= 1 / CURVATURE * RATIO
    assert len(result.learning_rates) < STEPS and result.learning_rates[-1] == result.diverged_at
    text = str(result)
    assert "steepest descent" in text and f"{result.suggestion:.3g}" in text


def test_min_over_ten_and_minibatches():
    r = gradtx.lr_finder(
        loss, jnp.ones(3), gradtx.sgd, steps=STEPS, min_lr=LOW, max_lr=HIGH, smoothing=0.0, rule="min/10"
    )
    # The lowest loss is the one taken just before the first update with eta above 2 / lambda.
    assert 2 / CURVATURE / 10 < r.suggestion <= 2 / CURVATURE * RATIO / 10 and r.rule == "min/10"
    # Minibatches: batch k is leaf[k]; noisy targets around 1 and a smoothed curve, with Adam, whose
    # steps are about eta per coordinate: from 0, rates of 0.01 to 1 cover the distance 1 in the
    # steps the range test spends there, much smaller ones do not move, much larger ones overshoot.
    rng = np.random.default_rng(0)
    targets = jnp.asarray(1.0 + 0.1 * rng.normal(size=(200, 3)))
    r = gradtx.lr_finder(
        lambda w, t: jnp.sum((w - t) ** 2), jnp.zeros(3), gradtx.adam, targets, min_lr=1e-5, max_lr=100.0
    )
    assert len(r.losses) <= 200 and r.losses[0] == pytest.approx(float(jnp.sum(targets[0] ** 2)))
    assert 1e-2 < r.suggestion < 1 and r.smoothed.min() < 0.2 * r.smoothed[0]
    assert r.diverged_at is not None and r.diverged_at > 1


def test_errors():
    with pytest.raises(TypeError, match="pass steps"):
        gradtx.lr_finder(loss, jnp.ones(3), gradtx.sgd)
    with pytest.raises(ValueError, match="max_lr must be above min_lr"):
        gradtx.lr_finder(loss, jnp.ones(3), gradtx.sgd, steps=10, min_lr=1.0, max_lr=0.1)
    with pytest.raises(ValueError, match="rule must be one of"):
        gradtx.lr_finder(loss, jnp.ones(3), gradtx.sgd, steps=10, rule="fastai")
