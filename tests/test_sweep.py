"""gradtx.sweep equals running each configuration on its own (float64: to rounding), for learning
rates, betas and weight decays, several optimizers through a switch, and per-configuration seeds.

The separate runs are plain Python loops, one configuration at a time with Python-number
hyperparameters, independent of sweep's vmap and scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(6, 16, 5)))  # 6 batches of 16 examples, 5 features
Y = jnp.asarray(RNG.normal(size=(6, 16, 2)))
PARAMS = {"w": jnp.asarray(RNG.normal(size=(5, 2)) / 3), "b": jnp.zeros(2)}


def loss_fn(params, batch):
    x, y = batch
    return jnp.mean((jnp.tanh(x @ params["w"] + params["b"]) - y) ** 2)


def separately(make_tx, h, params, batches, steps):
    tx = make_tx(h)
    state, losses = tx.init(params), []
    for k in range(steps):
        batch = jax.tree.map(lambda x, k=k: x[k], batches) if not callable(batches) else batches(k)
        loss, g = jax.value_and_grad(loss_fn)(params, batch)
        u, state = tx.update(g, state, params)
        params = gradtx.apply_updates(params, u)
        losses.append(float(loss))
    return np.asarray(losses), params


def rows(hparams):
    n = len(next(iter(hparams.values())))
    return [{k: float(v[i]) if k != "optimizer" else int(v[i]) for k, v in hparams.items()} for i in range(n)]


def adamw(h):
    return gradtx.adamw(h["lr"], b1=h["b1"], weight_decay=h["wd"])


def test_equals_separate_runs_in_float64():
    hparams = {
        "lr": jnp.asarray([1e-3, 1e-2, 0.1, 0.3]),
        "b1": jnp.asarray([0.9, 0.5, 0.9, 0.0]),
        "wd": jnp.asarray([0.0, 0.1, 1e-3, 0.0]),
    }
    result = gradtx.sweep(adamw, loss_fn, PARAMS, hparams, (X, Y), keep_params=True)
    assert result.losses.shape == (4, 6) and result.losses.dtype == np.float64
    for i, h in enumerate(rows(hparams)):
        losses, params = separately(adamw, h, PARAMS, (X, Y), 6)
        np.testing.assert_allclose(result.losses[i], losses, rtol=1e-13)
        assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], result.params), params, rtol=1e-12)


def test_equals_separate_runs_in_float32():
    params = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS)
    data = (X.astype(jnp.float32), Y.astype(jnp.float32))
    lrs = {"lr": jnp.asarray([0.01, 0.1, 1.0], jnp.float32)}
    make = lambda h: gradtx.sgd(h["lr"], momentum=0.9)
    result = gradtx.sweep(make, loss_fn, params, lrs, data, steps=5)
    assert result.losses.shape == (3, 5) and result.losses.dtype == np.float32
    for i, h in enumerate(rows(lrs)):
        np.testing.assert_allclose(result.losses[i], separately(make, h, params, data, 5)[0], rtol=1e-6)


def test_several_optimizers_whose_states_share_their_leaves():
    makers = [lambda h: gradtx.adam(h["lr"]), lambda h: gradtx.adabelief(h["lr"]), lambda h: gradtx.yogi(h["lr"])]
    hparams = {"lr": jnp.asarray([0.01, 0.05, 0.01, 0.05, 0.02]), "optimizer": jnp.asarray([0, 0, 1, 1, 2])}
    result = gradtx.sweep(makers, loss_fn, PARAMS, hparams, (X, Y))
    for i, h in enumerate(rows(hparams)):
        want, _ = separately(makers[h["optimizer"]], h, PARAMS, (X, Y), 6)
        np.testing.assert_allclose(result.losses[i], want, rtol=1e-13)
    with pytest.raises(ValueError, match="states with the same leaves"):
        gradtx.sweep(
            [makers[0], lambda h: gradtx.sgd(h["lr"])],
            loss_fn,
            PARAMS,
            hparams | {"optimizer": jnp.asarray([0, 1, 0, 1, 0])},
            (X, Y),
        )
    with pytest.raises(ValueError, match='hparams\\["optimizer"\\]'):
        gradtx.sweep(makers, loss_fn, PARAMS, {"lr": jnp.asarray([0.1])}, (X, Y))


def test_per_configuration_seeds_for_initial_params_and_data():
    def init(key):
        return {"w": jax.random.normal(key, (5, 2)) / 3, "b": jnp.zeros(2)}

    def data(key, k):
        idx = jax.random.permutation(jax.random.fold_in(key, k), 6)[0]  # a batch drawn per config and step
        return X[idx], Y[idx]

    seeds = jnp.asarray([0, 1, 2])
    lrs = {"lr": jnp.asarray([0.1, 0.1, 0.1])}
    make = lambda h: gradtx.sgd(h["lr"])
    result = gradtx.sweep(make, loss_fn, init, lrs, data, steps=4, seeds=seeds)
    for i, seed in enumerate([0, 1, 2]):
        key = jax.random.key(seed)
        want, _ = separately(make, {"lr": 0.1}, init(key), lambda k, key=key: data(key, k), 4)
        np.testing.assert_allclose(result.losses[i], want, rtol=1e-13)
    assert len({tuple(r) for r in result.losses}) == 3  # three different runs


def test_full_batch_list_of_dicts_and_errors():
    quad = gradtx.landscapes.quadratic(condition=10.0)
    result = gradtx.sweep(lambda h: gradtx.sgd(h["lr"]), quad, jnp.zeros(2), [{"lr": 0.05}, {"lr": 0.2}], steps=30)
    assert result.final_losses[0] < 1e-2 and not (result.final_losses[1] < 1e3)  # 0.2 > 1 / 10 diverges
    assert result.best() == 0
    with pytest.raises(TypeError, match="pass steps"):
        gradtx.sweep(lambda h: gradtx.sgd(h["lr"]), quad, jnp.zeros(2), {"lr": jnp.ones(2)})
    with pytest.raises(ValueError, match="one entry per configuration"):
        gradtx.sweep(lambda h: gradtx.sgd(h["lr"]), quad, jnp.zeros(2), {"lr": 0.1}, steps=3)
    with pytest.raises(ValueError, match="seeds must hold one int per configuration"):
        gradtx.sweep(lambda h: gradtx.sgd(h["lr"]), quad, jnp.zeros(2), {"lr": jnp.ones(2)}, steps=3, seeds=[1])
