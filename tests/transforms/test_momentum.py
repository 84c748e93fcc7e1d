"""Momentum blocks against NumPy loops of their docstring equations, optax, torch.optim.SGD, and the
original Nesterov formulation; plus the Nesterov identities, validation, dtypes and None leaves.

mu_k is the decay at k = updates already applied, so the NumPy loops call mu(k) for update k.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 30
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def ramp(count: jax.Array) -> jax.Array:
    """A momentum schedule written here (gradtx.sutskever_momentum_schedule is tested elsewhere)."""
    return jnp.minimum(0.5 + 0.01 * count.astype(jnp.float64), 0.95)


def ramp_np(k: int) -> float:
    return min(0.5 + 0.01 * k, 0.95)


def const_np(value: float):
    return lambda k: value


def gradient_steps(dtype=np.float64, seed: int = 0) -> dict:
    """A dict model's gradients for STEPS steps, stacked on a leading step axis."""
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=(STEPS, *s)).astype(dtype) for k, s in SHAPES.items()}


def run(tx, grads: dict, standard: bool = False) -> dict:
    """tx's updates for each step of `grads` (stacked), one compiled scan."""
    params = jax.tree.map(lambda g: jnp.zeros_like(g[0]), grads)

    def scan(gs):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        return jax.lax.scan(step, tx.init(params), gs)[1]

    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))
    return jax.jit(scan)(jax.tree.map(jnp.asarray, grads))


def assert_close(ours: dict, reference: dict, rtol: float, atol: float = 0.0) -> None:
    for key in reference:
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol, atol, err_msg=key)


def per_leaf(loop, grads: dict) -> dict:
    """A NumPy loop (a list of step arrays -> a list of updates) applied to each leaf."""
    return {k: np.stack(loop(list(g))) for k, g in grads.items()}


# ---------------------------------------------------------------------------------------------------
# NumPy loops written from the docstrings' equations (float64)


def trace_np(mu, nesterov: bool):
    def loop(gs):
        t, out = 0.0, []
        for k, g in enumerate(gs):
            t = mu(k) * t + g  # t <- mu t + g
            out.append(g + mu(k + 1) * t if nesterov else t)
        return out

    return loop


def ema_np(a: float, debias: bool):
    def loop(gs):
        m, out = 0.0, []
        for k, g in enumerate(gs):
            m = a * m + (1 - a) * g  # m <- a m + (1 - a) g
            out.append(m / (1 - a ** (k + 1)) if debias else m)
        return out

    return loop


def momentum_np(a, nesterov: bool):
    def loop(gs):
        v, out = 0.0, []
        for k, g in enumerate(gs):
            v = a(k) * v + (1 - a(k)) * g  # v <- a v + (1 - a) g
            out.append(a(k + 1) * v + (1 - a(k)) * g if nesterov else v)
        return out

    return loop


def nesterov_np(mu):
    def loop(vs):
        prev, out = 0.0, []
        for k, v in enumerate(vs):
            out.append((1 + mu(k + 1)) * v - mu(k) * prev)  # u_k = (1 + mu_{k+1}) v_k - mu_k v_{k-1}
            prev = v
        return out

    return loop


def bias_correction_np(a: float):
    return lambda gs: [g / (1 - a ** (k + 1)) for k, g in enumerate(gs)]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
def test_trace_matches_numpy(nesterov, schedule):
    grads = gradient_steps()
    decay, mu = (ramp, ramp_np) if schedule else (0.9, const_np(0.9))
    ours = run(gradtx.trace(decay, nesterov=nesterov), grads)
    assert_close(ours, per_leaf(trace_np(mu, nesterov), grads), 1e-12)


@pytest.mark.parametrize("debias", [False, True])
def test_ema_matches_numpy(debias):
    grads = gradient_steps()
    assert_close(run(gradtx.ema(0.9, debias=debias), grads), per_leaf(ema_np(0.9, debias), grads), 1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
def test_scale_by_momentum_matches_numpy(nesterov, schedule):
    grads = gradient_steps()
    decay, a = (ramp, ramp_np) if schedule else (0.9, const_np(0.9))
    ours = run(gradtx.scale_by_momentum(decay, nesterov=nesterov), grads)
    assert_close(ours, per_leaf(momentum_np(a, nesterov), grads), 1e-12)


def test_nesterov_matches_numpy_on_any_input():
    """The look-ahead equation on its own, fed arbitrary updates (not a momentum's output)."""
    grads = gradient_steps()
    assert_close(run(gradtx.nesterov(ramp), grads), per_leaf(nesterov_np(ramp_np), grads), 1e-12)


def test_bias_correction_matches_numpy_and_completes_ema():
    grads = gradient_steps()
    assert_close(run(gradtx.bias_correction(0.9), grads), per_leaf(bias_correction_np(0.9), grads), 1e-12)
    chained = run(gradtx.chain(gradtx.ema(0.9, debias=False), gradtx.bias_correction(0.9)), grads)
    assert_close(chained, run(gradtx.ema(0.9), grads), 1e-12)


def test_trace_with_decay_one_is_a_running_sum():
    grads = gradient_steps()
    assert_close(run(gradtx.trace(1.0), grads), {k: np.cumsum(g, axis=0) for k, g in grads.items()}, 1e-12)


def test_scale_by_momentum_is_one_minus_a_times_trace():
    """For a constant a the EMA form is (1 - a) times the heavy-ball form, nesterov or not."""
    grads = gradient_steps()
    for nesterov in (False, True):
        ema_form = run(gradtx.scale_by_momentum(0.8, nesterov=nesterov), grads)
        heavy_ball = run(gradtx.trace(0.8, nesterov=nesterov), grads)
        assert_close(ema_form, {k: 0.2 * v for k, v in heavy_ball.items()}, 1e-12)


# ---------------------------------------------------------------------------------------------------
# The Nesterov identities: nesterov(mu) after a momentum equals that momentum's nesterov=True


@pytest.mark.parametrize("decay", [0.9, ramp], ids=["constant", "schedule"])
def test_nesterov_after_trace_is_trace_nesterov(decay):
    grads = gradient_steps()
    split = run(gradtx.chain(gradtx.trace(decay), gradtx.nesterov(decay)), grads)
    assert_close(split, run(gradtx.trace(decay, nesterov=True), grads), 1e-12, 1e-12)


@pytest.mark.parametrize("decay", [0.9, ramp], ids=["constant", "schedule"])
def test_nesterov_after_scale_by_momentum_is_its_nesterov(decay):
    grads = gradient_steps()
    split = run(gradtx.chain(gradtx.scale_by_momentum(decay), gradtx.nesterov(decay)), grads)
    assert_close(split, run(gradtx.scale_by_momentum(decay, nesterov=True), grads), 1e-12, 1e-12)


@pytest.mark.parametrize("schedule", [False, True])
def test_nesterov_tracks_phi_of_the_original_formulation(schedule):
    """Lecture/Sutskever et al. (2013): v <- mu v - eps grad f(W + mu v); W <- W + v.

    The reformulated iterate phi = W + mu v is what chain(trace(mu), nesterov(mu),
    scale_by_learning_rate(eps)) puts in params, with the gradient taken at params only.
    """
    eps, steps = 0.004, 40
    mu_np, decay = (ramp_np, ramp) if schedule else (const_np(0.9), 0.9)

    def grad_np(w):  # f(w) = (w1 - 1)^2 + 100 (w2 - 1)^2, the lecture's ill-conditioned quadratic
        return np.array([2 * (w[0] - 1), 200 * (w[1] - 1)])

    w, v, phis = np.array([-1.0, 2.0]), np.zeros(2), []
    for k in range(steps):  # original form, gradient at the look-ahead point
        v = mu_np(k) * v - eps * grad_np(w + mu_np(k) * v)
        w = w + v
        phis.append(w + mu_np(k + 1) * v)

    def loss(p):
        return (p[0] - 1) ** 2 + 100 * (p[1] - 1) ** 2

    for tx in (
        gradtx.chain(gradtx.trace(decay), gradtx.nesterov(decay), gradtx.scale_by_learning_rate(eps)),
        gradtx.chain(gradtx.trace(decay, nesterov=True), gradtx.scale_by_learning_rate(eps)),
    ):

        def step(carry, _, tx=tx):
            p, state = carry
            u, state = tx.update(jax.grad(loss)(p), state, p)
            p = gradtx.apply_updates(p, u)
            return (p, state), p

        p0 = jnp.array([-1.0, 2.0], jnp.float64)
        params = jax.jit(lambda p0, tx=tx: jax.lax.scan(step, (p0, tx.init(p0)), None, steps)[1])(p0)
        np.testing.assert_allclose(np.asarray(params), np.stack(phis), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# optax (float32, same arguments)


@pytest.mark.parametrize(
    "make", [lambda m: m.trace(0.9), lambda m: m.trace(0.9, nesterov=True), lambda m: m.ema(0.9),
             lambda m: m.ema(0.99, debias=False)],
    ids=["trace", "trace-nesterov", "ema", "ema-raw"],
)  # fmt: skip
def test_matches_optax(make):
    grads = gradient_steps(np.float32)
    ours = run(make(gradtx), grads)
    assert all(u.dtype == jnp.float32 for u in ours.values())
    assert_close(ours, run(make(optax), grads, standard=True), 1e-5, 1e-6)


def test_trace_state_keeps_optax_field():
    params = {"w": jnp.ones(3, jnp.float32)}
    state = gradtx.trace(0.9).init(params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.trace(0.9).init(params)
    assert state.trace.keys() == theirs.trace.keys() and state.count.dtype == jnp.int32
    assert gradtx.ema(0.9).init(params)._fields == optax.ema(0.9).init(params)._fields


# ---------------------------------------------------------------------------------------------------
# torch.optim.SGD (float64)


def _torch_sgd(make_optimizer, steps: int):
    """torch.optim.SGD on sum over leaves of 0.5 * sum(d * (p - c)^2), gradients by autograd.

    Returns the problem (p0, d, c) and, after each step, the params and the momentum buffers.
    """
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    d = {k: rng.uniform(0.5, 2.0, s) for k, s in SHAPES.items()}
    c = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    p0 = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p0.items()}
    opt = make_optimizer(torch, list(tp.values()))
    params, buffers = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(0.5 * (torch.tensor(d[k]) * (tp[k] - torch.tensor(c[k])) ** 2).sum() for k in tp)
        loss.backward()
        opt.step()
        params.append({k: v.detach().numpy().copy() for k, v in tp.items()})
        buffers.append({k: opt.state[v]["momentum_buffer"].numpy().copy() for k, v in tp.items()})
    return (p0, d, c), params, buffers


def _gradtx_params(tx, problem: tuple, steps: int, state=None) -> list:
    """The params after each of `steps` steps of tx on the same problem, from p0 (or a given state)."""
    p0, d, c = problem
    params = {k: jnp.asarray(v, jnp.float64) for k, v in p0.items()}
    state = tx.init(params) if state is None else state
    update = jax.jit(tx.update)
    out = []
    for _ in range(steps):
        grads = {k: jnp.asarray(d[k]) * (params[k] - jnp.asarray(c[k])) for k in params}
        u, state = update(grads, state, params)
        params = gradtx.apply_updates(params, u)
        out.append({k: np.asarray(v) for k, v in params.items()})
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_trace_matches_torch_sgd(nesterov):
    """torch's first step sets buf = g, which is trace's mu * 0 + g: equal from the first step."""
    lr, mu = 0.05, 0.9
    make = lambda torch, ps: torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=nesterov)
    problem, theirs, _ = _torch_sgd(make, STEPS)
    tx = gradtx.chain(gradtx.trace(mu, nesterov=nesterov), gradtx.scale_by_learning_rate(lr))
    for ours, ref in zip(_gradtx_params(tx, problem, STEPS), theirs, strict=True):
        assert_close(ours, ref, 1e-12, 1e-12)


def test_scale_by_momentum_matches_torch_sgd_with_dampening_from_step_two():
    """torch.optim.SGD(momentum=a, dampening=a) runs  buf <- a buf + (1 - a) g  from its second step
    on; its first step sets buf = g (no dampening). So gradtx starts from torch's params and buffer
    after torch's first step, and the remaining STEPS - 1 steps must agree exactly."""
    lr, a = 0.05, 0.8
    make = lambda torch, ps: torch.optim.SGD(ps, lr=lr, momentum=a, dampening=a)
    problem, theirs, buffers = _torch_sgd(make, STEPS)
    tx = gradtx.chain(gradtx.scale_by_momentum(a), gradtx.scale_by_learning_rate(lr))
    mu = {k: jnp.asarray(v) for k, v in buffers[0].items()}
    state = (gradtx.ScaleByMomentumState(count=jnp.asarray(1, jnp.int32), mu=mu), gradtx.EmptyState())
    rest = _gradtx_params(tx, (theirs[0], *problem[1:]), STEPS - 1, state)
    for ours, ref in zip(rest, theirs[1:], strict=True):
        assert_close(ours, ref, 1e-12, 1e-12)
    # From zero, the first steps differ: torch's first update is -lr g, ours -lr (1 - a) g.
    p0 = problem[0]
    ours = {k: v - p0[k] for k, v in _gradtx_params(tx, problem, 1)[0].items()}
    assert_close(ours, {k: (1 - a) * (v - p0[k]) for k, v in theirs[0].items()}, 1e-12, 1e-14)


# ---------------------------------------------------------------------------------------------------
# Validation, dtypes, None leaves, vmap


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gradtx.trace(-0.1), "trace: decay must be in [0, 1], got -0.1"),
        (lambda: gradtx.trace(1.5), "trace: decay must be in [0, 1], got 1.5"),
        (lambda: gradtx.ema(1.0), "ema: decay must be in [0, 1), got 1.0"),
        (lambda: gradtx.scale_by_momentum(1.0), "scale_by_momentum: decay must be in [0, 1), got 1.0"),
        (lambda: gradtx.nesterov(-1.0), "nesterov: decay must be in [0, 1], got -1.0"),
        (lambda: gradtx.bias_correction(1.0), "bias_correction: decay must be in [0, 1), got 1.0"),
    ],
)
def test_validation_messages(build, message):
    with pytest.raises(ValueError) as e:
        build()
    assert str(e.value) == message


def test_type_errors():
    with pytest.raises(TypeError, match="trace: accumulator_dtype must be a floating or complex dtype"):
        gradtx.trace(0.9, accumulator_dtype=jnp.int32)
    with pytest.raises(
        TypeError, match=r"ema: decay must be a number: the bias correction 1 - decay\^t assumes a constant decay"
    ):
        gradtx.ema(ramp)
    with pytest.raises(TypeError, match=r"bias_correction: decay must be a number in \[0, 1\), not a schedule"):
        gradtx.bias_correction(ramp)
    gradtx.ema(ramp, debias=False)  # a schedule without debiasing is fine


def test_bf16_params_keep_dtype_and_accumulator_dtype_is_used():
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    for tx, field in [
        (gradtx.trace(0.9, nesterov=True, accumulator_dtype=jnp.float32), "trace"),
        (gradtx.ema(0.999, accumulator_dtype="float32"), "ema"),
        (gradtx.scale_by_momentum(ramp, nesterov=True, accumulator_dtype=jnp.float32), "mu"),
        (gradtx.nesterov(0.9), "prev"),
        (gradtx.bias_correction(0.9), None),
    ]:
        state = tx.init(params)
        u, new_state = jax.jit(tx.update)(grads, state, params)
        assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u)), tx
        assert jax.tree.structure(new_state) == jax.tree.structure(state), tx
        assert [x.dtype for x in jax.tree.leaves(new_state)] == [x.dtype for x in jax.tree.leaves(state)], tx
        if field in ("trace", "ema", "mu"):
            assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(getattr(new_state, field))), tx
        assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(u)), tx


def test_none_leaves_pass_through():
    params = {"w": jnp.ones(3, jnp.float32), "frozen": None}
    grads = {"w": jnp.full(3, 2.0, jnp.float32), "frozen": None}
    for tx in [gradtx.trace(0.9, nesterov=True), gradtx.ema(0.9), gradtx.scale_by_momentum(0.9),
               gradtx.nesterov(0.9), gradtx.bias_correction(0.9)]:  # fmt: skip
        u, _ = tx.update(grads, tx.init(params), params)
        assert u["frozen"] is None and u["w"].shape == (3,), tx


def test_decay_may_be_a_traced_value_under_vmap():
    g = jnp.ones(2, jnp.float32)

    def two_steps(mu):
        tx = gradtx.trace(mu, nesterov=True)
        state = tx.init(g)
        _, state = tx.update(g, state)
        return tx.update(g, state)[0]

    out = jax.vmap(two_steps)(jnp.array([0.5, 0.9], jnp.float32))
    # t = 1 + mu, u = g + mu t = 1 + mu + mu^2
    np.testing.assert_allclose(out[:, 0], [1.75, 2.71], rtol=1e-6)


def test_equal_by_value():
    assert gradtx.trace(0.9) == gradtx.trace(0.9) and hash(gradtx.trace(0.9)) == hash(gradtx.trace(0.9))
    assert gradtx.trace(0.9) != gradtx.trace(0.9, nesterov=True)
    assert gradtx.nesterov(ramp) == gradtx.nesterov(ramp)
