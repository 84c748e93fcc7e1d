"""torch.optim's schedules as gradtx schedules, value by value against torch.optim.lr_scheduler.

torch's schedulers are stepped on a float64 SGD (or Adam) for hundreds of steps, once per update, as
torch documents for CyclicLR and OneCycleLR: the learning rate (and the momentum torch writes into
the param group) in force at update k is compared with gradtx's schedule at k = updates already
applied, at rtol 1e-12. Then NumPy formulas written from the docstrings' equations at counts torch
would take too long to reach (cycle boundaries in integers up to the saturated int32 counter),
whole SGD trajectories with the momentum cycles (the schedules plugged into `sgd(momentum=...)`
against torch's SGD with cycle_momentum), the edge cases, and the build-time checks.

The "torch scheduler -> gradtx" table of gradtx/schedules/README.md is checked here too, row by row.
"""

from __future__ import annotations

import functools
import math
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

torch = pytest.importorskip("torch")
L = torch.optim.lr_scheduler
N = 400  # steps of every torch scheduler
RTOL = 1e-12
LR, TMAX = 0.1, 1000  # torch's base learning rate; CosineAnnealingLR's period, beyond N (torch's cosine is periodic)


def torch_values(make, steps=N, adam=False):
    """The lr (and momentum, or Adam's beta1) of the param group at each update, torch stepping `make(opt)`."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=LR) if adam else torch.optim.SGD([p], lr=LR, momentum=0.9)
    scheduler = make(opt)
    lrs, moms = [], []
    for _ in range(steps):
        group = opt.param_groups[0]
        lrs.append(float(group["lr"]))
        moms.append(float(group["betas"][0] if adam else group["momentum"]))
        opt.step()  # no gradient: nothing moves, but torch sees the optimizer step before the scheduler's
        scheduler.step()
    return np.asarray(lrs), np.asarray(moms)


@functools.partial(jax.jit, static_argnums=1)
def _values_at(counts, sched):
    return jax.vmap(sched)(counts)


def gradtx_values(sched, steps=N):
    values = _values_at(jnp.arange(steps, dtype=jnp.int32), sched)
    assert values.dtype == jnp.float64, values.dtype  # x64 is on: the canonical float, never float32
    return np.asarray(values)


# module-level scale functions and factors (the schedules pickle and compare equal); JAX functions, so
# torch gets the same numbers from float(f(k)).
def inverse_cycle(c):
    return 1 / c


def half_every_100(k):
    return 0.5 ** (k / 100)  # k: int64 (x64), so this is float64


def warmup_factor(k):
    return jnp.minimum((k + 1) / 25, 1.0)


def bumpy_factor(k):
    return jnp.where(k % 3 == 0, 0.97, 1.005)


def as_python(f):
    return lambda k: float(f(k))


cyclic = dict(base_lr=0.01, max_lr=0.1, base_momentum=0.8, max_momentum=0.9)
CYCLIC = {  # torch CyclicLR arguments; gradtx's cycle arguments are the same
    "triangular,down=None": dict(step_size_up=7),
    "triangular2": dict(step_size_up=5, step_size_down=12, mode="triangular2"),
    "exp_range": dict(step_size_up=6, step_size_down=3, mode="exp_range", gamma=0.99),
    "sawtooth,down=0": dict(step_size_up=9, step_size_down=0),
    "scale_fn,cycle": dict(step_size_up=4, step_size_down=6, scale_fn=inverse_cycle),
    "scale_fn,iterations": dict(step_size_up=8, scale_fn=half_every_100, scale_mode="iterations"),
}


@pytest.mark.parametrize("name", list(CYCLIC))
def test_cyclic_schedule_and_its_momentum_equal_torchs_cycliclr(name):
    kw = CYCLIC[name]
    torch_kw = {k: as_python(v) if k == "scale_fn" else v for k, v in kw.items()}
    lr, mom = torch_values(lambda opt: L.CyclicLR(opt, **cyclic, **torch_kw))
    np.testing.assert_allclose(gradtx_values(gradtx.cyclic_schedule(0.01, 0.1, **kw)), lr, rtol=RTOL)
    np.testing.assert_allclose(gradtx_values(gradtx.cyclic_momentum_schedule(0.8, 0.9, **kw)), mom, rtol=RTOL)


ONECYCLE = {  # torch OneCycleLR arguments (max_lr 0.5); the momentum schedule takes those it shares
    "cos,2-phase": dict(total_steps=N),
    "cos,3-phase": dict(total_steps=N, three_phase=True),
    "linear,2-phase,args": dict(total_steps=N, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
                                final_div_factor=100.0, base_momentum=0.8, max_momentum=0.99),
    "linear,3-phase": dict(total_steps=N + 1, three_phase=True, anneal_strategy="linear", pct_start=0.4),
    "epochs*steps_per_epoch": dict(epochs=4, steps_per_epoch=N // 4, pct_start=0.1),
}  # fmt: skip
LR_ONLY, MOMENTUM_ONLY = {"div_factor", "final_div_factor"}, {"base_momentum", "max_momentum"}


@pytest.mark.parametrize("name", list(ONECYCLE))
def test_onecycle_schedule_and_its_momentum_equal_torchs_onecyclelr(name):
    kw = ONECYCLE[name]
    lr, mom = torch_values(lambda opt: L.OneCycleLR(opt, 0.5, **kw))
    lr_kw = {k: v for k, v in kw.items() if k not in MOMENTUM_ONLY}
    mom_kw = {k: v for k, v in kw.items() if k not in LR_ONLY}
    np.testing.assert_allclose(gradtx_values(gradtx.onecycle_schedule(0.5, **lr_kw)), lr, rtol=RTOL)
    np.testing.assert_allclose(gradtx_values(gradtx.onecycle_momentum_schedule(**mom_kw)), mom, rtol=RTOL)


def test_momentum_cycles_equal_the_beta1_torch_writes_into_adam():
    _, beta1 = torch_values(lambda opt: L.CyclicLR(opt, 0.001, 0.01, step_size_up=11, base_momentum=0.85), adam=True)
    np.testing.assert_allclose(gradtx_values(gradtx.cyclic_momentum_schedule(0.85, 0.9, 11)), beta1, rtol=RTOL)
    _, beta1 = torch_values(lambda opt: L.OneCycleLR(opt, 0.01, total_steps=N), adam=True)
    np.testing.assert_allclose(gradtx_values(gradtx.onecycle_momentum_schedule(N)), beta1, rtol=RTOL)


def cosine_then_swa(opt, swa_start, lazy=False, **swa_kw):
    """torch's documented SWA loop, per step: CosineAnnealingLR until swa_start, SWALR after.

    The SWALR is created at the start, as in torch's example; `lazy`: when it takes over (with
    anneal_epochs=0, one created at the start sets swa_lr at once, under the cosine's steps)."""
    cos = L.CosineAnnealingLR(opt, T_max=TMAX)
    make_swa = lambda: torch.optim.swa_utils.SWALR(opt, **swa_kw)
    swa = None if lazy else make_swa()

    class Both:
        k = 0

        def step(self):
            nonlocal swa
            if self.k < swa_start:
                cos.step()
            elif swa is None:
                swa = make_swa()  # its first step is its creation's
            else:
                swa.step()
            self.k += 1

    return Both()


def gradtx_cosine_then_swa(swa_start, swa_lr, anneal_epochs=10, anneal_strategy="cos"):
    decay = gradtx.cosine_decay_schedule(LR, TMAX)
    swa = gradtx.swa_schedule(float(decay(swa_start)), swa_lr, anneal_epochs, anneal_strategy)
    return gradtx.join_schedules([decay, swa], [swa_start])


# torch scheduler (stepped on lr 0.1) -> the gradtx schedule the README's table names for it
TABLE = {
    "LambdaLR": (lambda o: L.LambdaLR(o, as_python(warmup_factor)), lambda: gradtx.lambda_schedule(LR, warmup_factor)),
    "MultiplicativeLR": (
        lambda o: L.MultiplicativeLR(o, as_python(bumpy_factor)),
        lambda: gradtx.multiplicative_schedule(LR, bumpy_factor),
    ),
    "ChainedScheduler(ExponentialLR, LinearLR)": (
        lambda o: L.ChainedScheduler([L.ExponentialLR(o, 0.99), L.LinearLR(o, start_factor=0.1, total_iters=20)]),
        lambda: gradtx.multiply_schedules([gradtx.exponential_decay(LR, 1, 0.99), gradtx.linear_schedule(0.1, 1, 20)]),
    ),
    "ChainedScheduler(ConstantLR, MultiStepLR)": (
        lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.5, total_iters=30), L.MultiStepLR(o, [100, 250], 0.3)]),
        lambda: gradtx.multiply_schedules([
            gradtx.piecewise_constant_schedule(LR * 0.5, {30: 2.0}),
            gradtx.piecewise_constant_schedule(1.0, {100: 0.3, 250: 0.3}),
        ]),
    ),
    "SequentialLR(LinearLR, ExponentialLR)": (
        lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=10), L.ExponentialLR(o, 0.98)], [10]),
        lambda: gradtx.join_schedules(
            [gradtx.linear_schedule(LR * 0.1, LR, 10), gradtx.exponential_decay(LR, 1, 0.98)], [10]
        ),
    ),
    "SequentialLR(ConstantLR, CosineAnnealingLR, LambdaLR)": (
        lambda o: L.SequentialLR(o, [L.ConstantLR(o, 0.5, total_iters=40), L.CosineAnnealingLR(o, T_max=TMAX),
                                     L.LambdaLR(o, as_python(warmup_factor))], [50, 300]),
        lambda: gradtx.join_schedules([
            gradtx.piecewise_constant_schedule(LR * 0.5, {40: 2.0}), gradtx.cosine_decay_schedule(LR, TMAX),
            gradtx.lambda_schedule(LR, warmup_factor),
        ], [50, 300]),
    ),
    "SWALR(cos)": (
        lambda o: torch.optim.swa_utils.SWALR(o, swa_lr=0.02, anneal_epochs=20),
        lambda: gradtx.swa_schedule(LR, 0.02, 20),
    ),
    "SWALR(linear)": (
        lambda o: torch.optim.swa_utils.SWALR(o, swa_lr=0.3, anneal_epochs=37, anneal_strategy="linear"),
        lambda: gradtx.swa_schedule(LR, 0.3, 37, "linear"),
    ),
    "CosineAnnealingLR then SWALR(cos)": (
        lambda o: cosine_then_swa(o, 150, swa_lr=0.02, anneal_epochs=15),
        lambda: gradtx_cosine_then_swa(150, 0.02, 15),
    ),
    "CosineAnnealingLR then SWALR(linear, anneal_epochs=0)": (
        lambda o: cosine_then_swa(o, 222, swa_lr=0.04, anneal_epochs=0, anneal_strategy="linear", lazy=True),
        lambda: gradtx_cosine_then_swa(222, 0.04, 0, "linear"),
    ),
    # the rows for schedules gradtx had before
    "StepLR": (lambda o: L.StepLR(o, 30, 0.5), lambda: gradtx.exponential_decay(LR, 30, 0.5, staircase=True)),
    "MultiStepLR": (
        lambda o: L.MultiStepLR(o, [50, 120, 300], 0.2),
        lambda: gradtx.piecewise_constant_schedule(LR, {50: 0.2, 120: 0.2, 300: 0.2}),
    ),
    "ConstantLR": (
        lambda o: L.ConstantLR(o, 0.25, 60), lambda: gradtx.piecewise_constant_schedule(LR * 0.25, {60: 4.0})
    ),
    "LinearLR": (lambda o: L.LinearLR(o, 0.2, 0.9, 150), lambda: gradtx.linear_schedule(LR * 0.2, LR * 0.9, 150)),
    "ExponentialLR": (lambda o: L.ExponentialLR(o, 0.995), lambda: gradtx.exponential_decay(LR, 1, 0.995)),
    "PolynomialLR": (lambda o: L.PolynomialLR(o, 300, 2.0), lambda: gradtx.polynomial_schedule(LR, 0.0, 2.0, 300)),
    "CosineAnnealingLR": (
        lambda o: L.CosineAnnealingLR(o, T_max=N, eta_min=0.001),
        lambda: gradtx.cosine_decay_schedule(LR, N, alpha=0.01),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=100, eta_min=0.002),
        lambda: gradtx.sgdr_schedule(
            [dict(init_value=LR, peak_value=LR, warmup_steps=0, decay_steps=100, end_value=0.002)] * 4
        ),
    ),
}  # fmt: skip
# Differences that are torch's arithmetic, not the schedule's (the ratio of two cosines, recomputed
# from the last value, and SGDR's restarted cosines, whose end value is reached 1e-16 away from 0).
LOOSER = {"CosineAnnealingLR": 1e-11, "CosineAnnealingWarmRestarts": 1e-11}


@pytest.mark.parametrize("name", list(TABLE))
def test_the_readme_table_of_torch_schedulers(name):
    make_torch, make_gradtx = TABLE[name]
    lr, _ = torch_values(make_torch)
    np.testing.assert_allclose(gradtx_values(make_gradtx()), lr, rtol=LOOSER.get(name, RTOL))


def test_the_readme_table_names_every_torch_scheduler_it_maps():
    text = (Path(gradtx.schedules.__path__[0]) / "README.md").read_text()
    for name in TABLE:
        for scheduler in name.replace("(", " ").replace(")", " ").replace(",", " ").split():
            if scheduler.endswith("LR") or scheduler in ("ChainedScheduler", "CosineAnnealingWarmRestarts"):
                found = f"| `{scheduler}(" in text or f"| `swa_utils.{scheduler}(" in text
                assert found, f"gradtx/schedules/README.md's table has no row for {scheduler}"


# ---------------------------------------------------------------------------------------------------
# Whole trajectories: the momentum cycles plugged into sgd(momentum=...)

A = np.asarray([1.0, 4.0, 0.25, 9.0])
B = np.asarray([1.0, -2.0, 3.0, 0.5])
W0 = np.asarray([2.0, -1.0, 0.5, 1.5])


def loss(w):
    return 0.5 * (A * w * w).sum() - (B * w).sum() + 0.1 * (w**4).sum()


def torch_trajectory(make, steps):
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=LR, momentum=0.9)
    scheduler, out = make(opt), []
    a, b = torch.tensor(A), torch.tensor(B)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (a * w * w).sum() - (b * w).sum() + 0.1 * (w**4).sum()).backward()
        opt.step()
        scheduler.step()
        out.append(w.detach().numpy().copy())
    return np.asarray(out)


def gradtx_trajectory(tx, steps):
    def step(carry, _):
        w, state = carry
        u, state = tx.update(jax.grad(loss)(w), state, w)
        w = gradtx.apply_updates(w, u)
        return (w, state), w

    w = jnp.asarray(W0)
    _, ws = jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), None, length=steps))(w)
    return np.asarray(ws)


def test_sgd_with_the_cyclic_momentum_schedule_is_torchs_sgd_with_cycle_momentum():
    kw = dict(step_size_up=10, step_size_down=15, mode="triangular2")
    tx = gradtx.sgd(gradtx.cyclic_schedule(0.01, 0.1, **kw), momentum=gradtx.cyclic_momentum_schedule(0.8, 0.95, **kw))
    expected = torch_trajectory(lambda o: L.CyclicLR(o, 0.01, 0.1, base_momentum=0.8, max_momentum=0.95, **kw), 300)
    np.testing.assert_allclose(gradtx_trajectory(tx, 300), expected, rtol=1e-10, atol=1e-13)


def test_sgd_with_the_onecycle_momentum_schedule_is_torchs_sgd_with_onecyclelr():
    kw = dict(total_steps=300, three_phase=True, pct_start=0.2)
    tx = gradtx.sgd(gradtx.onecycle_schedule(0.1, **kw), momentum=gradtx.onecycle_momentum_schedule(**kw))
    expected = torch_trajectory(lambda o: L.OneCycleLR(o, 0.1, **kw), 300)
    np.testing.assert_allclose(gradtx_trajectory(tx, 300), expected, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------------------------------
# NumPy formulas from the docstrings, at any count (in integers, up to the saturated int32 counter)

BIG = np.asarray([0, 1, 6, 7, 13, 14, 10**6, 10**6 + 7, 2**24 + 1, 2**31 - 9, 2**31 - 2, 2**31 - 1], np.int64)


def cyclic_np(k, base, peak, up, down, mode="triangular", gamma=1.0, momentum=False):
    k = np.asarray(k, np.int64)
    cycle = k // (up + down) + 1
    r = k - (cycle - 1) * (up + down)
    s = np.where(r <= up, r / up, (up + down - r) / max(down, 1))
    scales = {"triangular": np.ones_like(s), "triangular2": 0.5 ** (cycle - 1.0), "exp_range": gamma ** k.astype(float)}
    h = scales[mode]
    return peak - (peak - base) * s * h if momentum else base + (peak - base) * s * h


@pytest.mark.parametrize(
    "kw",
    [dict(up=7, down=7), dict(up=3, down=11, mode="triangular2"), dict(up=5, down=2, mode="exp_range", gamma=0.999)],
)
def test_cyclic_values_at_large_counts_are_exact_in_integers(kw):
    up, down = kw.pop("up"), kw.pop("down")
    counts = jnp.asarray(BIG, jnp.int32)
    got = np.asarray(_values_at(counts, gradtx.cyclic_schedule(0.01, 0.1, up, down, **kw)))
    np.testing.assert_allclose(got, cyclic_np(BIG, 0.01, 0.1, up, down, **kw), rtol=1e-13, atol=1e-300)
    got = np.asarray(_values_at(counts, gradtx.cyclic_momentum_schedule(0.8, 0.9, up, down, **kw)))
    np.testing.assert_allclose(got, cyclic_np(BIG, 0.8, 0.9, up, down, **kw, momentum=True), rtol=1e-13)
    if kw.get("mode") is None:  # a cycle of 14: k = 7 is the peak, 14 the next bottom, exactly
        assert got[[0, 3, 5]].tolist() == [0.9, 0.8, 0.9]


def onecycle_np(k, peak, steps, pct, div, final_div, three_phase, linear):
    """The docstring's phases, written again in NumPy."""
    k = np.minimum(np.asarray(k, np.float64), steps - 1)
    lo = peak / div
    e1 = pct * steps - 1
    ends = [e1, 2 * pct * steps - 2, steps - 1] if three_phase else [e1, steps - 1]
    pts = [(lo, peak), (peak, lo), (lo, lo / final_div)] if three_phase else [(lo, peak), (peak, lo / final_div)]
    out, start = np.empty_like(k), 0.0
    done = np.zeros(k.shape, bool)
    for i, (end, (a, b)) in enumerate(zip(ends, pts, strict=True)):
        here = ~done & ((k <= end) | (i == len(ends) - 1))
        x = (k - start) / (end - start)
        out[here] = ((b - a) * x + a if linear else b + (a - b) / 2 * (np.cos(np.pi * x) + 1))[here]
        done |= here
        start = end
    return out


def test_onecycle_values_at_large_counts_hold_the_last_value():
    counts = jnp.asarray(BIG, jnp.int32)
    for three_phase, strategy in ((False, "cos"), (True, "linear")):
        sched = gradtx.onecycle_schedule(1.0, 50, pct_start=0.3, anneal_strategy=strategy, three_phase=three_phase)
        expected = onecycle_np(BIG, 1.0, 50, 0.3, 25.0, 1e4, three_phase, strategy == "linear")
        # 1e-12: XLA's cos(pi) is not exactly -1, NumPy's is (the last value is 1e-4 of the first)
        np.testing.assert_allclose(np.asarray(_values_at(counts, sched)), expected, rtol=1e-12)


def test_multiplicative_schedule_at_large_counts_and_under_vmap():
    sched = gradtx.multiplicative_schedule(2.0, bumpy_factor)
    counts = np.asarray([0, 1, 2, 3, 255, 256, 257, 1000, 40_000])
    expected = [2.0 * np.prod([0.97 if j % 3 == 0 else 1.005 for j in range(1, k + 1)]) for k in counts]
    got = np.asarray(_values_at(jnp.asarray(counts, jnp.int32), sched))  # one while loop, batched
    np.testing.assert_allclose(got, expected, rtol=1e-11)
    assert float(sched(0)) == 2.0 and float(sched(-5)) == 2.0  # torch never calls f(0); negative counts are 0
    np.testing.assert_allclose(np.asarray(sched(jnp.asarray([[3, 4]]))), [[*expected[3:4], expected[3] * 1.005]])


# ---------------------------------------------------------------------------------------------------
# Edges, dtypes, equality and the build-time checks


def test_step_size_down_none_is_step_size_up_and_the_schedules_are_values():
    assert gradtx.cyclic_schedule(0.1, 1.0, 5) == gradtx.cyclic_schedule(0.1, 1.0, 5, 5)
    assert gradtx.cyclic_schedule(0.1, 1.0, mode="exp_range") == gradtx.cyclic_schedule(
        0.1, 1.0, mode="exp_range", scale_mode="iterations"
    )
    one = gradtx.onecycle_schedule(0.1, epochs=3, steps_per_epoch=10)
    assert one == gradtx.onecycle_schedule(0.1, 30) and hash(one) == hash(gradtx.onecycle_schedule(0.1, 30))
    namespace = {**{n: getattr(gradtx, n) for n in gradtx.__all__}, "inverse_cycle": inverse_cycle}
    for sched in (
        gradtx.cyclic_schedule(0.01, 0.1, 4, 6, scale_fn=inverse_cycle),
        gradtx.cyclic_momentum_schedule(0.8, 0.9, 3, mode="triangular2"),
        one,
        gradtx.onecycle_momentum_schedule(40, three_phase=True, anneal_strategy="linear"),
        gradtx.swa_schedule(0.1, 0.05, 0),
    ):
        assert pickle.loads(pickle.dumps(sched)) == sched
        assert eval(repr(sched), namespace) == sched


def test_values_at_count_zero_and_the_canonical_dtype():
    at0 = {
        gradtx.cyclic_schedule(0.01, 0.1, 4): 0.01,
        gradtx.cyclic_momentum_schedule(0.8, 0.9, 4): 0.9,
        gradtx.onecycle_schedule(0.5, 100): 0.5 / 25,
        gradtx.onecycle_momentum_schedule(100): 0.95,
        gradtx.lambda_schedule(0.5, warmup_factor): 0.5 / 25,
        gradtx.multiplicative_schedule(0.5, bumpy_factor): 0.5,
        gradtx.swa_schedule(0.3, 0.05, 0): 0.3,
    }
    for sched, value in at0.items():
        got = sched(0)
        assert got.dtype == jnp.float64 and float(got) == pytest.approx(value, rel=1e-15), sched
        with jax.enable_x64(False):  # without x64 the canonical float is float32
            assert sched(jnp.asarray(0)).dtype == jnp.float32, sched
    # A float32 traced hyperparameter keeps float32 (a vmap over learning rates in float32).
    lrs = jnp.asarray([0.1, 0.2], jnp.float32)
    values = jax.vmap(lambda lr: gradtx.cyclic_schedule(lr / 10, lr, 4)(2))(lrs)
    assert values.dtype == jnp.float32
    np.testing.assert_allclose(values, [0.055, 0.11], rtol=1e-6)
    # A traced gamma (a sweep over it) is not checked at build time, and is used.
    gammas = jnp.asarray([0.9, 0.99])
    got = jax.vmap(lambda g: gradtx.cyclic_schedule(0.1, 1.0, 4, mode="exp_range", gamma=g)(7))(gammas)
    np.testing.assert_allclose(got, cyclic_np(7, 0.1, 1.0, 4, 4, "exp_range", np.asarray([0.9, 0.99])), rtol=1e-13)


def test_an_empty_onecycle_phase_holds_its_end_value():
    # pct_start * total_steps = 1: the rise ends at e_1 = 0, where torch divides 0 by 0.
    sched = gradtx.onecycle_schedule(1.0, 10, pct_start=0.1, anneal_strategy="linear")
    assert float(sched(0)) == 1.0
    np.testing.assert_allclose(float(sched(1)), 1.0 + (1 / 25 / 1e4 - 1.0) / 9, rtol=1e-14)
    assert bool(jnp.isfinite(gradtx.onecycle_momentum_schedule(10, pct_start=0.1)(0)))


def test_nan_hyperparameters_and_factors_give_nan():
    def nan_factor(k):
        return jnp.where(k == 3, jnp.nan, 1.0)

    assert math.isnan(float(gradtx.multiplicative_schedule(1.0, nan_factor)(5)))
    assert float(gradtx.multiplicative_schedule(1.0, nan_factor)(2)) == 1.0
    assert math.isnan(float(gradtx.lambda_schedule(1.0, nan_factor)(3)))
    nan = jnp.asarray(jnp.nan)  # a tracer is not checked at build time: NaN in, NaN out
    assert bool(jnp.isnan(jax.jit(lambda lr: gradtx.cyclic_schedule(0.1, lr, 4)(1))(nan)))
    assert bool(jnp.isnan(jax.jit(lambda lr: gradtx.onecycle_schedule(lr, 10)(3))(nan)))
    assert bool(jnp.isnan(jax.jit(lambda lr: gradtx.swa_schedule(1.0, lr, 4)(2))(nan)))


BAD = [
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, 0), "cyclic_schedule: step_size_up must be in [1, inf), got 0"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, 2.5), "cyclic_schedule: step_size_up must be an integer"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, 4, -1), "cyclic_schedule: step_size_down must be in [0, inf)"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, mode="tri"), "cyclic_schedule: mode must be one of"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, gamma=0.9), "cyclic_schedule: gamma is used by mode='exp_range' only"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, mode="exp_range", gamma=1.5), "cyclic_schedule: gamma must be in (0, 1]"),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, scale_mode="iterations"), "cyclic_schedule: scale_mode applies to"),
    (
        lambda: gradtx.cyclic_schedule(0.1, 1.0, scale_fn=inverse_cycle, mode="triangular2"),
        "cyclic_schedule: scale_fn replaces",
    ),
    (lambda: gradtx.cyclic_schedule(0.1, 1.0, scale_fn=3), "cyclic_schedule: scale_fn must be a function"),
    (lambda: gradtx.cyclic_schedule(0.1, float("nan")), "cyclic_schedule: max_lr must be in (-inf, inf), got nan"),
    (lambda: gradtx.cyclic_momentum_schedule(0.8, 1.2), "cyclic_momentum_schedule: max_momentum must be in [0, 1]"),
    (lambda: gradtx.onecycle_schedule(0.1), "onecycle_schedule: total_steps is needed, or both epochs and"),
    (lambda: gradtx.onecycle_schedule(0.1, 10, epochs=2), "onecycle_schedule: total_steps is given, so leave"),
    (
        lambda: gradtx.onecycle_schedule(0.1, epochs=2, steps_per_epoch=0),
        "onecycle_schedule: steps_per_epoch must be in",
    ),
    (lambda: gradtx.onecycle_schedule(0.1, 10, pct_start=1.5), "onecycle_schedule: pct_start must be in [0, 1]"),
    (
        lambda: gradtx.onecycle_schedule(0.1, 10, pct_start=0.6, three_phase=True),
        "onecycle_schedule: pct_start must be at most",
    ),
    (lambda: gradtx.onecycle_schedule(0.1, 10, anneal_strategy="cosine"), "onecycle_schedule: anneal_strategy must be"),
    (lambda: gradtx.onecycle_schedule(0.1, 10, div_factor=0), "onecycle_schedule: div_factor must be in (0, inf)"),
    (lambda: gradtx.onecycle_schedule(0.1, 10, three_phase=1), "onecycle_schedule: three_phase must be True or"),
    (lambda: gradtx.onecycle_momentum_schedule(10, base_momentum=-0.1), "onecycle_momentum_schedule: base_momentum"),
    (lambda: gradtx.lambda_schedule(0.1, 0.5), "lambda_schedule: lr_lambda must be a function count -> factor"),
    (lambda: gradtx.lambda_schedule(0.1, lambda k: jnp.ones(3)), "lambda_schedule: lr_lambda must be a schedule"),
    (lambda: gradtx.multiplicative_schedule(None, bumpy_factor), "multiplicative_schedule: init_value must be"),
    (lambda: gradtx.multiply_schedules([]), "multiply_schedules: schedules must hold at least one schedule"),
    (lambda: gradtx.multiply_schedules([gradtx.constant_schedule(1.0), 2.0]), "multiply_schedules: schedules[1]"),
    (lambda: gradtx.multiply_schedules(gradtx.constant_schedule(1.0)), "multiply_schedules: schedules must be a"),
    (lambda: gradtx.swa_schedule(0.1, 0.05, -1), "swa_schedule: anneal_steps must be in [0, inf), got -1"),
    (lambda: gradtx.swa_schedule(0.1, 0.05, 10, "cosine"), "swa_schedule: anneal_strategy must be 'cos' or"),
    (lambda: gradtx.swa_schedule(0.1, "0.05"), "swa_schedule: swa_lr must be a real number"),
]


@pytest.mark.parametrize("build, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_name_the_builder_and_the_argument(build, message):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert str(info.value).startswith(message.split(":")[0] + ":") and message in str(info.value), str(info.value)
