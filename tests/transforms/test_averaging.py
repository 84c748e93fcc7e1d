"""ema_params / swa_params / averaged_params against the lecture's formula, torch's AveragedModel and Keras's EMA.

- NumPy loops written from the lecture (W^_T = a W^_(T-1) + (1 - a) W_T) and from the uniform mean,
  over a NumPy SGD-with-momentum trajectory: every step's averaged params, float64, rtol 1e-12.
- torch.optim.swa_utils.AveragedModel in float64 (EMA through get_ema_multi_avg_fn, and its default
  equal-weight SWA average), with torch's SGD, CosineAnnealingLR and SWALR, rtol 1e-10.
- Keras 3 (JAX backend) `use_ema=True, ema_momentum, ema_overwrite_frequency`, when keras is installed.
- Inside chain (last), masked, partition, MultiSteps; on packed params; NaN; low-precision params;
  a checkpoint of the state through orbax, resumed; the lint rule; averaged_params' errors.
The sharded case is in tests/sharding_worker.py (part `averaging`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

torch = pytest.importorskip("torch")

A = {"w": np.asarray([1.0, 4.0, 0.25]), "b": np.asarray([9.0, 0.5])}
B = {"w": np.asarray([1.0, -2.0, 3.0]), "b": np.asarray([0.5, -1.0])}
W0 = {"w": np.asarray([2.0, -1.0, 0.5]), "b": np.asarray([0.3, 1.5])}
LR, MU, STEPS = 0.05, 0.9, 120


def loss(params):
    return sum(0.5 * (A[k] * params[k] ** 2).sum() - (B[k] * params[k]).sum() + 0.1 * (params[k] ** 4).sum() for k in A)


def grad_np(params):
    return {k: A[k] * params[k] - B[k] + 0.4 * params[k] ** 3 for k in A}


def sgd_np(steps, lr=LR, mu=MU):
    """torch/optax SGD with heavy-ball momentum in NumPy: t <- mu t + g; W <- W - lr t. W_1 ... W_steps."""
    w, t, out = {k: v.copy() for k, v in W0.items()}, {k: np.zeros_like(v) for k, v in W0.items()}, []
    for _ in range(steps):
        g = grad_np(w)
        t = {k: mu * t[k] + g[k] for k in w}
        w = {k: w[k] - lr * t[k] for k in w}
        out.append(w)
    return out


def ema_np(ws, a, start=0):
    """The lecture's W^_T = a W^_(T-1) + (1 - a) W_T, from the first averaged update (T = start + 1), which copies."""
    out, avg = [], None
    for k, w in enumerate(ws):  # k: updates applied before this one
        avg = w if k <= start else {n: a * avg[n] + (1 - a) * w[n] for n in w}
        out.append(avg)
    return out


def mean_np(ws, start=0, every=1):
    """The uniform mean of W_(start+1), W_(start+1+every), ... so far; the params themselves before the start."""
    out, taken = [], []
    for k, w in enumerate(ws):
        if k >= start and (k - start) % every == 0:
            taken.append(w)
        out.append({n: np.mean([t[n] for t in taken], axis=0) for n in w} if taken else w)
    return out


def run(tx, steps=STEPS, params=None):
    """(params, averaged_params) after each of `steps` jitted updates: one compiled scan."""
    params = jax.tree.map(jnp.asarray, W0) if params is None else params

    def step(carry, _):
        p, state = carry
        u, state = tx.update(jax.grad(lambda q: loss(gradtx.unpack(q)))(p), state, p)
        p = gradtx.apply_updates(p, u)
        return (p, state), (p, gradtx.averaged_params(state, p))

    (_, state), (ps, avgs) = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(params)
    return ps, avgs, state


def stacked(trees):
    return {k: np.stack([t[k] for t in trees]) for k in trees[0]}


def assert_close(got, expected, rtol=1e-12, atol=0.0):
    for k in expected:
        np.testing.assert_allclose(np.asarray(got[k]), expected[k], rtol=rtol, atol=atol, err_msg=k)


# ---------------------------------------------------------------------------------------------------
# The lecture's formula and the uniform mean, in NumPy


@pytest.mark.parametrize("start", [0, 17])
def test_ema_params_is_the_lectures_polyak_average(start):
    ws = sgd_np(STEPS)
    ps, avgs, state = run(gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.ema_params(0.95, start_step=start)))
    assert_close(ps, stacked(ws))  # the updates pass through: the params are SGD's
    assert_close(avgs, stacked(ema_np(ws, 0.95, start)))
    assert int(state[1].count) == STEPS and int(state[1].n_averaged) == STEPS - start


def test_swa_params_is_the_uniform_mean_from_the_start_step():
    ws = sgd_np(STEPS)
    _, avgs, state = run(gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.swa_params(start_step=30, every=7)))
    assert_close(avgs, stacked(mean_np(ws, 30, 7)))
    assert int(state[1].n_averaged) == len(range(30, STEPS, 7))


def test_a_decay_schedule_and_keras_overwrite_in_numpy():
    # a_k from a schedule, and every 4th update the params are set to W^ (Keras's ema_overwrite_frequency).
    decay = gradtx.linear_schedule(0.5, 0.9, 40)
    tx = gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.ema_params(decay, overwrite_frequency=4))
    ps, avgs, _ = run(tx, 60)
    w, t, avg, want_p, want_avg = dict(W0), {k: np.zeros_like(v) for k, v in W0.items()}, None, [], []
    for k in range(60):
        g = grad_np(w)
        t = {n: MU * t[n] + g[n] for n in w}
        w = {n: w[n] - LR * t[n] for n in w}
        a = 0.5 + 0.4 * min(k, 40) / 40
        avg = w if k == 0 else {n: a * avg[n] + (1 - a) * w[n] for n in w}
        if (k + 1) % 4 == 0:
            w = dict(avg)
        want_p.append(w)
        want_avg.append(avg)
    assert_close(ps, stacked(want_p), rtol=1e-11)
    assert_close(avgs, stacked(want_avg), rtol=1e-11)


# ---------------------------------------------------------------------------------------------------
# torch.optim.swa_utils.AveragedModel


class TorchModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(W0["w"], dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(W0["b"], dtype=torch.float64))

    def loss(self):
        return sum(
            0.5 * (torch.tensor(A[k]) * p**2).sum() - (torch.tensor(B[k]) * p).sum() + 0.1 * (p**4).sum()
            for k, p in (("w", self.w), ("b", self.b))
        )


def torch_averaged(make_average, update_at, steps, schedule=None):
    """torch's loop: SGD(momentum) step, scheduler step, average.update_parameters(model) after the
    updates `update_at(k)` picks (k = updates applied before it). The averaged params after each update."""
    model = TorchModel()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MU)
    average = make_average(model)
    scheduler = schedule(opt) if schedule else None
    out = []
    for k in range(steps):
        opt.zero_grad()
        model.loss().backward()
        opt.step()
        if scheduler:
            scheduler.step()
        if update_at(k):
            average.update_parameters(model)
        out.append({n: getattr(average.module, n).detach().numpy().copy() for n in ("w", "b")})
    return out


def test_ema_params_equals_torchs_averaged_model_with_ema_from_its_first_update():
    swa_utils, start = torch.optim.swa_utils, 10
    want = torch_averaged(
        lambda m: swa_utils.AveragedModel(m, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.97)),
        lambda k: k >= start,
        STEPS,
    )
    _, avgs, _ = run(gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.ema_params(0.97, start_step=start)))
    # From its first update_parameters on; before it torch holds the params as copied at construction.
    assert_close({k: v[start:] for k, v in avgs.items()}, stacked(want[start:]), rtol=1e-10)


def test_swa_params_and_swa_schedule_equal_torchs_swa_recipe():
    # torch's documented SWA loop: CosineAnnealingLR, then from swa_start SWALR and an equal-weight
    # average updated every `every` updates.
    swa_utils, swa_start, every = torch.optim.swa_utils, 40, 5
    lr_sched = torch.optim.lr_scheduler

    def schedulers(opt):
        cos, swa = lr_sched.CosineAnnealingLR(opt, T_max=200), swa_utils.SWALR(opt, swa_lr=0.02, anneal_epochs=8)

        class Switch:
            k = 0

            def step(self):
                (swa if self.k >= swa_start else cos).step()
                self.k += 1

        return Switch()

    take = lambda k: k >= swa_start and (k - swa_start) % every == 0
    want = torch_averaged(swa_utils.AveragedModel, take, STEPS, schedulers)
    decay = gradtx.cosine_decay_schedule(LR, 200)
    lr = gradtx.join_schedules([decay, gradtx.swa_schedule(float(decay(swa_start)), 0.02, 8)], [swa_start])
    tx = gradtx.chain(gradtx.sgd(lr, momentum=MU), gradtx.swa_params(start_step=swa_start, every=every))
    _, avgs, _ = run(tx)
    assert_close({k: v[swa_start:] for k, v in avgs.items()}, stacked(want[swa_start:]), rtol=1e-10)


# ---------------------------------------------------------------------------------------------------
# Keras 3's use_ema (JAX backend), if installed


def test_ema_params_equals_keras_use_ema_with_overwrite():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras runs on {keras.backend.backend()}, this test on its JAX backend")
    # Hyperparameters exact in float32 (Keras keeps its learning rate in a float32 variable).
    lr, mu, a, every = 0.0625, 0.875, 0.75, 3
    variables = [keras.Variable(W0[k], dtype="float64") for k in ("w", "b")]
    opt = keras.optimizers.SGD(lr, momentum=mu, use_ema=True, ema_momentum=a, ema_overwrite_frequency=every)
    opt.build(variables)
    want_p, want_avg = [], []
    for _ in range(30):
        g = grad_np({"w": np.asarray(variables[0].value), "b": np.asarray(variables[1].value)})
        with jax.numpy_dtype_promotion("standard"):  # Keras mixes its int32 counter with float64
            opt.apply([keras.ops.convert_to_tensor(g[k], dtype="float64") for k in ("w", "b")], variables)
        want_p.append({k: np.asarray(v.value) for k, v in zip(("w", "b"), variables, strict=True)})
        averages = opt._model_variables_moving_average  # Keras keeps them here (no public reader)
        want_avg.append({k: np.asarray(v.value) for k, v in zip(("w", "b"), averages, strict=True)})
    tx = gradtx.chain(gradtx.sgd(lr, momentum=mu), gradtx.ema_params(a, overwrite_frequency=every))
    ps, avgs, _ = run(tx, 30)
    assert_close(ps, stacked(want_p), rtol=1e-12)
    assert_close(avgs, stacked(want_avg), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Inside masked, partition, MultiSteps; on packed params


def test_inside_masked_and_partition_each_leaf_gets_its_own_average():
    ws = sgd_np(STEPS)
    masked = gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.masked(gradtx.ema_params(0.9), {"w": True, "b": False}))
    _, avgs, state = run(masked)
    assert_close({"w": avgs["w"]}, {"w": stacked(ema_np(ws, 0.9))["w"]})
    assert_close({"b": avgs["b"]}, {"b": stacked(ws)["b"]})  # masked out: the params themselves
    with pytest.raises(ValueError, match="pass the params"):
        gradtx.averaged_params(state)
    labels = {"w": "ema", "b": "swa"}
    both = gradtx.partition({"ema": gradtx.ema_params(0.9), "swa": gradtx.swa_params(start_step=5)}, labels)
    _, avgs, _ = run(gradtx.chain(gradtx.sgd(LR, momentum=MU), both))
    assert_close(avgs, {"w": stacked(ema_np(ws, 0.9))["w"], "b": stacked(mean_np(ws, 5))["b"]})


def test_inside_multisteps_it_averages_once_per_real_step():
    k = 3
    tx = gradtx.MultiSteps(
        gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.ema_params(0.8)), k
    ).gradient_transformation()
    ps, avgs, _ = run(tx, 10 * k)
    # The real steps see the mean of k gradients taken at unchanged params: k equal gradients, so
    # they are SGD's steps, one per k mini-steps.
    ws = sgd_np(10)
    at_real_steps = {n: np.asarray(v)[k - 1 :: k] for n, v in avgs.items()}
    assert_close(at_real_steps, stacked(ema_np(ws, 0.8)), rtol=1e-11)
    assert_close({n: np.asarray(v)[k - 1 :: k] for n, v in ps.items()}, stacked(ws), rtol=1e-11)


def test_packed_params_average_as_the_tree_does():
    tx = gradtx.chain(gradtx.adam(0.05), gradtx.ema_params(0.9, start_step=3))
    params = jax.tree.map(jnp.asarray, W0)
    _, tree_avgs, _ = run(tx, 40, params)
    _, packed_avgs, state = run(tx, 40, gradtx.pack(params))
    assert isinstance(state[1].average, gradtx.Packed)
    unpacked = gradtx.unpack(packed_avgs)
    assert_close(unpacked, {k: np.asarray(v) for k, v in tree_avgs.items()}, rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# NaN, dtypes, placement, errors, checkpoints


def test_a_nan_gradient_shows_in_the_average_and_stays():
    tx = gradtx.chain(gradtx.sgd(LR), gradtx.ema_params(0.9))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    for g in (1.0, jnp.nan, 1.0):
        u, state = tx.update({"w": jnp.full(3, g)}, state, params)
        assert bool(jnp.all(jnp.isnan(u["w"]))) == bool(jnp.isnan(g)) or bool(jnp.isnan(params["w"][0]))
        params = gradtx.apply_updates(params, u)
    assert bool(jnp.all(jnp.isnan(gradtx.averaged_params(state, params)["w"])))  # it stays NaN
    assert not bool(jnp.any(jnp.isnan(u["w"])))  # the last gradient was finite (the params are NaN)


def climbing_step(tx):
    """A jitted step whose gradient is -1 everywhere (the params climb by the learning rate)."""

    def step(p, s):
        u, s = tx.update({"w": -jnp.ones(4, jnp.bfloat16)}, s, p)
        return gradtx.apply_updates(p, u), s

    return jax.jit(step)


def test_bfloat16_params_keep_a_float32_average_that_moves():
    # The params climb by 0.01 a step (above bfloat16's spacing 0.0078 at 1); an EMA with decay 0.999
    # moves by 0.1% of W - W^, below half that spacing: in bfloat16 it stays where it started.
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    for dtype in (None, jnp.bfloat16):
        tx = gradtx.chain(gradtx.sgd(1e-2), gradtx.ema_params(0.999, accumulator_dtype=dtype))
        state, p = tx.init(params), params
        assert state[1].average["w"].dtype == (jnp.float32 if dtype is None else jnp.bfloat16)
        step = climbing_step(tx)
        p, state = step(p, state)
        first = float(gradtx.averaged_params(state)["w"][0])  # W_1, copied
        for _ in range(100):
            p, state = step(p, state)
        moved = float(gradtx.averaged_params(state)["w"][0]) - first
        assert float(p["w"][0]) > 1.5  # the params did move
        if dtype is None:
            assert moved > 0.02, moved  # sum over 100 steps of 0.001 (W - W^), W - W^ growing to 1
        else:
            assert moved == 0.0, moved
    assert gradtx.averaged_params(state, p)["w"].dtype == jnp.bfloat16  # given the params: their dtypes


def test_lint_wants_the_average_last():
    good = gradtx.chain(gradtx.adam(1e-3), gradtx.ema_params(0.999))
    bad = gradtx.chain(gradtx.ema_params(0.999), gradtx.adam(1e-3))
    assert gradtx.lint(good) == []
    assert [w.rule for w in gradtx.lint(bad)] == ["average-order"]


def test_averaged_params_errors_and_frozen_leaves():
    params = {"w": jnp.ones(2), "n": jnp.arange(2)}
    with pytest.raises(ValueError, match="averaged_params: the state holds no ema_params or swa_params state"):
        gradtx.averaged_params(gradtx.adam(1e-3).init(params), params)
    state = gradtx.chain(gradtx.sgd(0.1), gradtx.swa_params()).init(params)
    avg = gradtx.averaged_params(state, params)
    assert avg["n"] is params["n"] and avg["w"].dtype == params["w"].dtype
    with pytest.raises(ValueError, match="ema_params: update needs params"):
        gradtx.ema_params().update({"w": jnp.ones(2)}, gradtx.ema_params().init({"w": jnp.ones(2)}))
    for build, message in (
        (lambda: gradtx.ema_params(1.0), "ema_params: decay must be in [0, 1), got 1.0"),
        (lambda: gradtx.ema_params(start_step=-1), "ema_params: start_step must be in [0, inf), got -1"),
        (lambda: gradtx.ema_params(overwrite_frequency=0), "ema_params: overwrite_frequency must be in [1, inf)"),
        (lambda: gradtx.swa_params(every=2.5), "swa_params: every must be an integer in [1, inf), got 2.5"),
        (lambda: gradtx.swa_params(accumulator_dtype=jnp.int32), "swa_params: accumulator_dtype must be a floating"),
    ):
        with pytest.raises((ValueError, TypeError)) as info:
            build()
        assert str(info.value).startswith(message), str(info.value)


def test_a_checkpoint_of_the_state_restores_the_average_and_resumes(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    tx = gradtx.MultiSteps(
        gradtx.chain(gradtx.sgd(LR, momentum=MU), gradtx.ema_params(0.9)), 2
    ).gradient_transformation()
    step = jax.jit(lambda p, s: (lambda u, s: (gradtx.apply_updates(p, u), s))(*tx.update(jax.grad(loss)(p), s, p)))
    params = jax.tree.map(jnp.asarray, W0)
    state = tx.init(params)
    for _ in range(7):
        params, state = step(params, state)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ckpt", {"params": params, "state": state})
        ckpt.wait_until_finished()
        target = {"params": jax.eval_shape(lambda: params), "state": gradtx.abstract_state(tx, params)}
        restored = ckpt.restore(tmp_path / "ckpt", target)
    assert jax.tree.structure(restored["state"]) == jax.tree.structure(state)
    saved, back = gradtx.averaged_params(state, params), gradtx.averaged_params(restored["state"], restored["params"])
    for k in saved:
        assert np.asarray(back[k]).tobytes() == np.asarray(saved[k]).tobytes()
    p1, s1, p2, s2 = params, state, restored["params"], restored["state"]
    for _ in range(5):
        p1, s1 = step(p1, s1)
        p2, s2 = step(p2, s2)
    for k in W0:
        assert (
            np.asarray(gradtx.averaged_params(s2, p2)[k]).tobytes()
            == np.asarray(gradtx.averaged_params(s1, p1)[k]).tobytes()
        )
