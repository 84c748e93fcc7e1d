"""Combinators and wrappers: masked, partition/multi_transform, set_to_zero, apply_if_finite,
MultiSteps, inject_hyperparams, lookahead.

References: optax's same-named functions (same numbers over 24 steps, on nested models with mixed
labels and None leaves), and NumPy loops where optax is silent: MultiSteps on a quadratic (the
params move only every k-th step, by the inner optimizer's step on the mean of the k gradients),
apply_if_finite on a gradient sequence with NaNs, inject_hyperparams against a builder given the
new value, lookahead against the paper's two loops (Zhang et al., 2019, Algorithm 1). Then state
bytes (masked-out leaves hold none), the errors, and the contract checks for lookahead, whose
params (a fast/slow pair) the registry-driven tests cannot pass.
"""

from __future__ import annotations

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close, assert_trees_same_structure_and_dtypes, pseudo_gradients

STEPS = 24


def model() -> dict:
    """A nested model with a None leaf (a frozen part, as equinox's filtered trees have)."""
    return {
        "dense": {
            "w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
            "b": jnp.full(4, 0.1, jnp.float32),
        },
        "norm": {"scale": jnp.ones(5, jnp.float32)},
        "head": [jnp.linspace(0.5, -0.5, 6, dtype=jnp.float32).reshape(2, 3), jnp.asarray(0.3, jnp.float32)],
        "frozen": None,
    }


def small() -> dict:
    """Two leaves, for the tests that do not need the nested model: each compilation is shorter."""
    return {"w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4), "b": jnp.full(4, 0.1, jnp.float32)}


def run(tx, params, grads: list, standard: bool = False):
    """(updates at each step, params at each step, final state): one compiled scan, params <- params + u."""

    def scan(p0, gs):
        def step(carry, g):
            p, state = carry
            u, state = tx.update(g, state, p)
            p = gradtx.apply_updates(p, u)
            return (p, state), (u, p)

        (_, state), (us, ps) = jax.lax.scan(step, (p0, tx.init(p0)), gs)
        return us, ps, state

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
    if standard:  # optax relies on implicit dtype promotion
        with jax.numpy_dtype_promotion("standard"):
            return jax.jit(scan)(params, stacked)
    return jax.jit(scan)(params, stacked)


def grads_for(params, steps: int = STEPS) -> list:
    return [pseudo_gradients(params, k) for k in range(steps)]


def nbytes(state) -> int:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(state))


def path_ends(*names: str):
    """A label or mask function: True where a leaf's key path ends with one of `names`."""
    return lambda path: jax.tree_util.keystr(path).endswith(tuple(f"['{n}']" for n in names))


def matrices(params):
    """A mask function: weight decay on matrices only."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def by_layer(params):
    """A label function: Adam for 'dense', AdaGrad for 'head', frozen 'norm'."""
    return {k: ("freeze" if k == "norm" else "adam" if k == "dense" else "adagrad") for k in params}


# ---------------------------------------------------------------------------------------------------
# masked, partition, set_to_zero against optax


def cases(m):
    return {
        "masked-tree": m.masked(m.adam(1e-2), {"dense": True, "norm": False, "head": [True, False], "frozen": False}),
        "masked-fn-weight-decay": m.chain(
            m.scale_by_adam(), m.masked(m.add_decayed_weights(0.1), matrices), m.scale_by_learning_rate(1e-2)
        ),
        "partition-fn": m.partition(
            {"adam": m.adam(1e-2), "adagrad": m.adagrad(0.1), "freeze": m.set_to_zero()}, by_layer
        ),
        "multi_transform-prefix-tree": m.multi_transform(
            {"a": m.adamw(1e-2, weight_decay=0.1), "b": m.sgd(0.1)},
            {"dense": {"w": "a", "b": "b"}, "norm": "b", "head": "a", "frozen": "b"},
        ),
    }


@pytest.mark.parametrize("name", list(cases(gradtx)))
def test_masked_and_partition_match_optax(name):
    params = model()
    grads = grads_for(params)
    ours = run(cases(gradtx)[name], params, grads)
    theirs = run(cases(optax)[name], params, grads, standard=True)
    assert_trees_all_close(ours[:2], theirs[:2], rtol=2e-5, atol=2e-6, what=name)
    # The states hold the same arrays, in the same order (optax's layout: MaskedState, PartitionState).
    assert_trees_all_close(jax.tree.leaves(ours[2]), jax.tree.leaves(theirs[2]), rtol=2e-5, atol=2e-6)
    assert jax.tree.leaves(ours[1]["frozen"]) == [] and ours[0]["frozen"] is None


def test_set_to_zero_freezes_a_subtree_and_the_rest_trains_as_alone():
    """Frozen leaves do not move at all; the others follow optax's Adam run on them alone."""
    params = model()
    grads = grads_for(params)
    tx = gradtx.multi_transform({"train": gradtx.adam(1e-2), "freeze": gradtx.set_to_zero()}, by_layer_two)
    _, ps, _ = run(tx, params, grads)
    for k in range(STEPS):
        np.testing.assert_array_equal(ps["norm"]["scale"][k], params["norm"]["scale"])
        np.testing.assert_array_equal(ps["head"][0][k], params["head"][0])
    trained = {"dense": params["dense"]}
    _, alone, _ = run(optax.adam(1e-2), trained, [{"dense": g["dense"]} for g in grads], standard=True)
    assert_trees_all_close(ps["dense"], alone["dense"], rtol=2e-5, atol=2e-6)


def by_layer_two(params):
    return {k: "train" if k == "dense" else "freeze" for k in params}


# ---------------------------------------------------------------------------------------------------
# State bytes


def test_masked_out_leaves_hold_no_state():
    """masked(adam)'s state holds exactly adam's state for the masked-in leaves: not a byte more."""
    params = {"big": jnp.ones((64, 64), jnp.float32), "small": jnp.ones(3, jnp.float32)}
    state = gradtx.masked(gradtx.adam(1e-3), {"big": False, "small": True}).init(params)
    assert nbytes(state) == nbytes(optax.adam(1e-3).init({"small": params["small"]}))
    assert not any(leaf.shape == (64, 64) for leaf in jax.tree.leaves(state))
    assert isinstance(state.inner_state[0].mu["big"], gradtx.MaskedNode)
    # partition: each label's state holds its own leaves only.
    tx = gradtx.partition({"a": gradtx.adam(1e-3), "b": gradtx.sgd(0.1, momentum=0.9)}, {"big": "b", "small": "a"})
    state = tx.init(params)
    assert nbytes(state.inner_states["a"]) == nbytes(optax.adam(1e-3).init({"small": params["small"]}))
    assert nbytes(state.inner_states["b"]) == nbytes(gradtx.sgd(0.1, momentum=0.9).init({"big": params["big"]}))
    # add_decayed_weights(mask=...) is masked(add_decayed_weights(...)): a schedule's count, nothing per leaf.
    tx = gradtx.add_decayed_weights(gradtx.constant_schedule(0.1), mask={"big": False, "small": True})
    assert isinstance(tx.init(params), gradtx.MaskedState)


# ---------------------------------------------------------------------------------------------------
# MultiSteps against NumPy


def quadratic_grad(w: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The gradient of 0.5 sum(a w^2) plus noise: it depends on where the params are."""
    return np.arange(1.0, w.size + 1.0) * w + noise


def multi_steps_np(k_of, steps: int, lr: float, momentum: float, mean: bool, skip=()) -> tuple[list, list, np.ndarray]:
    """Heavy-ball SGD (v <- momentum v + g, w <- w - lr v) on the mean (or sum) of each k gradients;
    a gradient at a step in `skip` is dropped. Returns the params after each step, the steps at which
    the inner optimizer stepped, and the gradient noise."""
    noise = np.random.default_rng(0).normal(size=(steps, 4))
    w, v, acc, n, taken = np.linspace(1.0, -1.0, 4), np.zeros(4), np.zeros(4), 0, 0
    ws, stepped = [], []
    for t in range(steps):
        g = quadratic_grad(w, noise[t])
        if t not in skip:
            acc, n = acc + g, n + 1
            if n == k_of(taken):
                v = momentum * v + (acc / n if mean else acc)
                w, acc, n, taken = w - lr * v, np.zeros(4), 0, taken + 1
                stepped.append(t)
        ws.append(w)
    return ws, stepped, noise


def multi_steps_run(ms, noise: np.ndarray, skip=()) -> tuple[list, list]:
    """The params after each jitted step of `ms`, and the steps at which `ms.has_updated`; the
    gradients at the steps in `skip` are NaN."""
    w = jnp.linspace(1.0, -1.0, 4, dtype=jnp.float64)
    state, ws, updated = ms.init(w), [], []
    step = jax.jit(ms.update)
    for t in range(len(noise)):
        g = np.full(4, np.nan) if t in skip else quadratic_grad(np.asarray(w), noise[t])
        u, state = step(jnp.asarray(g), state, w)
        w = gradtx.apply_updates(w, u)
        ws.append(np.asarray(w))
        if ms.has_updated(state):
            updated.append(t)
    return ws, updated


def every_other(count: jax.Array) -> jax.Array:
    """A schedule of k: 2 for the first two steps of the inner optimizer, then 3."""
    return jnp.where(count < 2, 2, 3)


@pytest.mark.parametrize(
    "k, k_np, mean",
    [(3, lambda _: 3, True), (2, lambda _: 2, False), (every_other, lambda taken: 2 if taken < 2 else 3, True)],
    ids=["k=3-mean", "k=2-sum", "k-schedule"],
)
def test_multi_steps_steps_every_k_with_the_mean_of_k_gradients(k, k_np, mean):
    ms = gradtx.MultiSteps(gradtx.sgd(0.05, momentum=0.9), k, use_grad_mean=mean)
    want, stepped, noise = multi_steps_np(k_np, 13, 0.05, 0.9, mean)
    got, updated = multi_steps_run(ms, noise)
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-12, atol=1e-14)
    assert updated == stepped and len(stepped) >= 4  # has_updated says when the params moved


def test_multi_steps_skips_non_finite_gradients_as_if_they_never_came():
    ms = gradtx.MultiSteps(gradtx.sgd(0.05, momentum=0.9), 3, should_skip_update_fn=gradtx.skip_not_finite)
    want, stepped, noise = multi_steps_np(lambda _: 3, 13, 0.05, 0.9, True, skip=(1, 5, 6))
    got, updated = multi_steps_run(ms, noise, skip=(1, 5, 6))
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-12, atol=1e-14)
    assert updated == stepped == [3, 8, 11]


def test_multi_steps_state_matches_optax_and_counts_saturate():
    params = small()
    grads = grads_for(params, 9)
    large = functools.partial(gradtx.skip_large_updates, max_squared_norm=16.0)
    ours = gradtx.MultiSteps(gradtx.adam(1e-2), 3, should_skip_update_fn=large)
    theirs = optax.MultiSteps(
        optax.adam(1e-2), 3, should_skip_update_fn=functools.partial(optax.skip_large_updates, max_squared_norm=16.0)
    )
    us, ps, state = run(ours.gradient_transformation(), params, grads)
    t_us, t_ps, t_state = run(theirs.gradient_transformation(), params, grads, standard=True)
    assert_trees_all_close((us, ps), (t_us, t_ps), rtol=2e-5, atol=2e-6)
    assert state._fields == t_state._fields
    assert_trees_all_close(jax.tree.leaves(state), jax.tree.leaves(t_state), rtol=2e-5, atol=2e-6)
    skipped = [float(gradtx.tree.sum_sq(g)) >= 16.0 for g in grads]
    assert 0 < sum(skipped) < len(grads) - 3, "the threshold must skip some steps and keep enough to step"
    # gradient_step saturates at the int32 maximum instead of wrapping.
    every = gradtx.MultiSteps(gradtx.sgd(0.1), 1)
    w = jnp.ones(2, jnp.float32)
    s = every.init(w)._replace(gradient_step=jnp.asarray(np.iinfo(np.int32).max - 1, jnp.int32))
    step = jax.jit(every.update)
    for _ in range(3):
        _, s = step(w, s, w)
    assert int(s.gradient_step) == np.iinfo(np.int32).max


def test_multi_steps_is_a_value():
    ms = gradtx.MultiSteps(gradtx.adam(1e-3), 4)
    assert ms == gradtx.MultiSteps(gradtx.adam(1e-3), 4) and hash(ms) == hash(gradtx.MultiSteps(gradtx.adam(1e-3), 4))
    assert ms != gradtx.MultiSteps(gradtx.adam(1e-3), 5) and ms.inner_opt == gradtx.adam(1e-3)
    assert pickle.loads(pickle.dumps(ms)) == ms
    assert repr(ms) + ".gradient_transformation()" == repr(ms.gradient_transformation())
    # It chains as a transformation, as optax's does.
    tx = gradtx.chain(gradtx.clip(1.0), ms)
    w = {"w": jnp.ones(3, jnp.float32)}
    tx.update(w, tx.init(w), w)


# ---------------------------------------------------------------------------------------------------
# apply_if_finite


def test_apply_if_finite_skips_keeps_counts_and_gives_up():
    """Heavy-ball SGD; gradients NaN at steps 2, 5, 6, 7 (three in a row, one more than allowed)."""
    bad = {2, 5, 6, 7}
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1, momentum=0.5), max_consecutive_errors=2)
    w = jnp.ones(3, jnp.float64)
    state, step = tx.init(w), jax.jit(tx.update)
    v, in_a_row, total = np.zeros(3), 0, 0
    for t in range(9):
        g = np.full(3, np.nan) if t in bad else np.full(3, t + 1.0)
        in_a_row, total = (in_a_row + 1, total + 1) if t in bad else (0, total)
        u, state = step(jnp.asarray(g), state, w)
        if t not in bad or in_a_row > 2:  # applied: v <- 0.5 v + g, u = -0.1 v (NaN once it gives up)
            v = 0.5 * v + g
            np.testing.assert_array_equal(np.asarray(u), -0.1 * v)
        else:  # skipped: zero updates, the momentum as it was
            np.testing.assert_array_equal(np.asarray(u), np.zeros(3))
        np.testing.assert_array_equal(np.asarray(state.inner_state[0].trace), v)
        assert (bool(state.last_finite), int(state.notfinite_count)) == (t not in bad, in_a_row)
        assert int(state.total_notfinite) == total
    assert np.isnan(v).all()  # the third NaN in a row went through


def test_apply_if_finite_matches_optax_with_nan_steps():
    params = small()
    grads = grads_for(params)
    for k in (3, 9, 10, 11):  # one NaN, then three in a row
        grads[k] = jax.tree.map(lambda g: g.at[..., 0].set(jnp.nan) if g.ndim else g * jnp.nan, grads[k])
    ours = run(gradtx.apply_if_finite(gradtx.adam(1e-2), 2), params, grads)
    theirs = run(optax.apply_if_finite(optax.adam(1e-2), 2), params, grads, standard=True)
    assert_trees_all_close(ours[:2], theirs[:2], rtol=2e-5, atol=2e-6)  # NaN where both have NaN
    assert ours[2]._fields == theirs[2]._fields
    assert_trees_all_close(jax.tree.leaves(ours[2]), jax.tree.leaves(theirs[2]), rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------------------
# inject_hyperparams


@pytest.mark.parametrize(
    "builder, kwargs, rtol, atol",
    # sgd: exact. adam: b1 and b2 are float32 arrays in the state and Python numbers in the reference
    # (b1 = 0.5 and b2 = 0.75 are exact in both, and so are 1 - b1 and 1 - b2), and its bias
    # corrections 1 - b^t are formed in float32 from an array and in float64 from a number.
    [("sgd", {"momentum": 0.9}, 0.0, 0.0), ("adam", {"b1": 0.5, "b2": 0.75}, 1e-6, 1e-9)],
    ids=["sgd", "adam"],
)
def test_changing_the_learning_rate_in_the_state_is_building_with_it(builder, kwargs, rtol, atol):
    params = small()
    grads = grads_for(params, 6)
    make = getattr(gradtx, builder)
    tx = gradtx.inject_hyperparams(make)(learning_rate=0.1, **kwargs)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for g in grads[:5]:
        _, state = step(g, state, params)
    unchanged, _ = step(grads[5], state, params)
    state.hyperparams["learning_rate"] = 0.03  # a Python float, as users write it
    # The reference compiled too: XLA fuses a * b + c where eager rounds twice.
    want, want_inner = jax.jit(make(0.03, **kwargs).update)(grads[5], state.inner_state, params)
    for update in (tx.update, step):
        u, new_state = update(grads[5], state, params)
        assert_trees_all_close((u, new_state.inner_state), (want, want_inner), rtol=rtol, atol=atol)
        assert new_state.hyperparams["learning_rate"].dtype == jnp.float32
        np.testing.assert_array_equal(new_state.hyperparams["learning_rate"], np.float32(0.03))
    assert_trees_all_close(u, jax.tree.map(lambda x: 0.3 * x, unchanged), rtol=1e-6)  # 0.03 / 0.1 of the step


def test_the_state_holds_optaxs_hyperparameters():
    params = small()
    ours = gradtx.inject_hyperparams(gradtx.adam)(0.1).init(params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.inject_hyperparams(optax.adam)(0.1).init(params)
    assert ours._fields == ("count", "hyperparams", "inner_state")
    assert_trees_all_close(ours.hyperparams, theirs.hyperparams, rtol=0)


def test_schedules_are_evaluated_at_each_step_and_match_optax():
    params = small()
    grads = grads_for(params)

    def make(m):
        return m.inject_hyperparams(m.adam)(learning_rate=m.exponential_decay(0.1, 5, 0.5), b1=0.8)

    us, ps, state = run(make(gradtx), params, grads)
    t_us, t_ps, t_state = run(make(optax), params, grads, standard=True)
    assert_trees_all_close((us, ps), (t_us, t_ps), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.1 * 0.5 ** ((STEPS - 1) / 5), rtol=1e-6)
    assert_trees_all_close(state.hyperparams, t_state.hyperparams, rtol=1e-6)
    # Under sgd, the step is -schedule(k) g exactly, and the state holds the value used.
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=lambda count: 1.0 / (1.0 + count.astype(jnp.float64)))
    w = jnp.ones(2, jnp.float64)
    state = tx.init(w)
    for k in range(4):
        u, state = tx.update(w, state, w)
        np.testing.assert_allclose(u, -w / (1.0 + k), rtol=1e-15)
        assert float(state.hyperparams["learning_rate"]) == 1.0 / (1.0 + k)


def test_hyperparameters_are_stored_in_at_least_float32_and_structures_do_not_depend_on_values():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1, b2=0.999)
    state = tx.init(params)
    assert state.hyperparams["b2"].dtype == jnp.float32 and float(state.hyperparams["b2"]) != 1.0
    u, state2 = jax.jit(tx.update)(params, state, params)
    assert u["w"].dtype == jnp.bfloat16
    assert_trees_same_structure_and_dtypes(state2, state, "state")
    tx = gradtx.inject_hyperparams(gradtx.adam, hyperparam_dtype=jnp.float64)(0.1)
    assert tx.init(params).hyperparams["learning_rate"].dtype == jnp.float64
    # adadelta leaves out weight decay when it is a concrete 0: built from traced values always, the
    # inner state has one structure whether init and update run eagerly or jitted.
    tx = gradtx.inject_hyperparams(gradtx.adadelta)(learning_rate=1.0)
    w = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(w)
    jax.jit(tx.update)(w, state, w)
    tx.update(w, state, w)


def test_inject_hyperparams_is_a_value():
    make = gradtx.inject_hyperparams(gradtx.adam)
    assert make == gradtx.inject_hyperparams(gradtx.adam) and make(0.1) == make(learning_rate=0.1)
    assert hash(make(0.1)) == hash(gradtx.inject_hyperparams(gradtx.adam)(np.float64(0.1)))
    assert make(0.1) != make(0.2) and make(0.1) != gradtx.inject_hyperparams(gradtx.nadam)(0.1)
    assert make(0.1) != gradtx.inject_hyperparams(optax.adam)(0.1)  # the same name, another builder
    assert pickle.loads(pickle.dumps(make(0.1))) == make(0.1)
    tx = gradtx.inject_hyperparams(gradtx.adamw, static_args="mask", hyperparam_dtype=jnp.float32)(0.1, mask=matrices)
    assert repr(tx).startswith("inject_hyperparams(adamw, static_args=('mask',), hyperparam_dtype=jnp.float32)(")
    assert eval(repr(tx), {**vars(gradtx), "jnp": jnp, "matrices": matrices}) == tx


# ---------------------------------------------------------------------------------------------------
# lookahead


def lookahead_np(w0: np.ndarray, grads: np.ndarray, lr: float, k: int, alpha: float) -> tuple[list, list]:
    """Zhang et al. (2019), Algorithm 1 with SGD as the inner optimizer, as two loops."""
    slow, fast, out = w0.copy(), w0.copy(), []
    t = 0
    while t < len(grads):
        fast = slow.copy()  # phi_{t,0} <- theta_{t-1}
        for _ in range(k):  # k steps of the inner optimizer A
            fast = fast - lr * quadratic_grad(fast, grads[t])
            t += 1
            out.append((fast.copy(), slow.copy()))
            if t == len(grads):
                return out
        slow = slow + alpha * (fast - slow)  # theta_t <- theta_{t-1} + alpha (phi_{t,k} - theta_{t-1})
        out[-1] = (slow.copy(), slow.copy())  # the fast weights restart at the slow ones
    return out


def test_lookahead_follows_the_papers_two_loops():
    noise = np.random.default_rng(1).normal(size=(14, 4))
    want = lookahead_np(np.linspace(1.0, -1.0, 4), noise, 0.1, 3, 0.5)
    tx = gradtx.lookahead(gradtx.sgd(0.1), sync_period=3, slow_step_size=0.5)
    params = gradtx.LookaheadParams.init_synced(jnp.linspace(1.0, -1.0, 4, dtype=jnp.float64))
    state, step = tx.init(params), jax.jit(tx.update)
    for t in range(14):
        g = quadratic_grad(np.asarray(params.fast), noise[t])
        u, state = step(jnp.asarray(g), state, params)
        params = gradtx.apply_updates(params, u)
        np.testing.assert_allclose(params.fast, want[t][0], rtol=1e-13, atol=1e-15, err_msg=f"fast, step {t}")
        np.testing.assert_allclose(params.slow, want[t][1], rtol=1e-13, atol=1e-15, err_msg=f"slow, step {t}")


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_matches_optax(reset_state):
    fast = small()
    grads = grads_for(fast)

    def trajectory(m, standard):
        tx = m.lookahead(m.adam(1e-2), 4, 0.6, reset_state=reset_state)
        params = m.LookaheadParams.init_synced(fast)

        def scan(params, gs):
            def step(carry, g):
                p, state = carry
                u, state = tx.update(g, state, p)
                p = m.apply_updates(p, u)
                return (p, state), p

            return jax.lax.scan(step, (params, tx.init(params)), gs)

        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
        if standard:
            with jax.numpy_dtype_promotion("standard"):
                return jax.jit(scan)(params, stacked)
        return jax.jit(scan)(params, stacked)

    (_, ours_state), ours = trajectory(gradtx, False)
    (_, theirs_state), theirs = trajectory(optax, True)
    assert_trees_all_close(tuple(ours), tuple(theirs), rtol=2e-5, atol=2e-6)
    assert_trees_all_close(jax.tree.leaves(ours_state), jax.tree.leaves(theirs_state), rtol=2e-5, atol=2e-6)


def test_lookahead_keeps_the_contract():
    """What the registry-driven tests check, for lookahead's (fast, slow) params: jit equals eager, no
    retrace, fixed state structure and dtypes, bfloat16 kept, None and integer leaves passed through,
    vmap over params equals a loop, and a value (equal, hashable, picklable, repr rebuilds it)."""
    tx = gradtx.lookahead(gradtx.adam(1e-2), sync_period=2, slow_step_size=0.5, reset_state=True)
    base = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.bfloat16).reshape(2, 3), "n": jnp.arange(2), "z": None}
    params = gradtx.LookaheadParams.init_synced(base)
    state = tx.init(params)
    assert_trees_same_structure_and_dtypes(jax.eval_shape(tx.init, params), state, "eval_shape(init)")
    traces = []

    def step(g, state, params):
        traces.append(None)
        return tx.update(g, state, params)

    jstep = jax.jit(step)
    for k in range(2):  # the second step synchronizes (and resets the fast state)
        g = {"w": pseudo_gradients(base, k)["w"], "n": None, "z": None}
        u, state_eager = tx.update(g, state, params)
        u_jit, state = jstep(g, state, params)
        assert_trees_all_close((u_jit, state), (u, state_eager), rtol=2e-2, atol=2e-2)
        assert_trees_same_structure_and_dtypes(state, tx.init(params), f"state at step {k}")
        assert u.fast["w"].dtype == u.slow["w"].dtype == jnp.bfloat16 and u.fast["z"] is None
        params = gradtx.apply_updates(params, u_jit)
        assert params.fast["n"] is base["n"]
    assert len(traces) == 1
    # vmap over two models equals a loop over them.
    models = [gradtx.LookaheadParams.init_synced({"w": jnp.full(3, c, jnp.float32)}) for c in (1.0, -2.0)]
    gs = [{"w": jnp.full(3, c, jnp.float32)} for c in (0.5, 3.0)]

    def two_steps(params, g):
        state = tx.init(params)
        for _ in range(2):
            u, state = tx.update(g, state, params)
            params = gradtx.apply_updates(params, u)
        return params

    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    looped = stack([jax.jit(two_steps)(*a) for a in zip(models, gs, strict=True)])
    assert_trees_all_close(jax.jit(jax.vmap(two_steps))(stack(models), stack(gs)), looped, rtol=1e-6)
    other = gradtx.lookahead(gradtx.adam(1e-2), sync_period=2, slow_step_size=0.5, reset_state=True)
    assert tx == other and hash(tx) == hash(other) and pickle.loads(pickle.dumps(tx)) == tx
    assert eval(repr(tx), vars(gradtx)) == tx


# ---------------------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_builder_and_what_is_wrong():
    params = {"w": jnp.ones(3, jnp.float32), "b": jnp.ones(2, jnp.float32)}
    with pytest.raises(
        ValueError,
        match=r"partition: label 'c' \(at \['b'\]\) has no transformation; the labels with one are \['a', 'b'\]",
    ):
        gradtx.partition({"a": gradtx.sgd(0.1), "b": gradtx.sgd(0.2)}, {"w": "a", "b": "c"})
    tx = gradtx.multi_transform({"a": gradtx.sgd(0.1)}, lambda p: {k: k for k in p})
    with pytest.raises(ValueError, match=r"label 'b' \(at \['b'\]\) has no transformation"):
        tx.init(params)
    with pytest.raises(TypeError, match="masked: mask leaves must be Python bools"):
        gradtx.masked(gradtx.sgd(0.1), {"w": jnp.asarray(True), "b": False})
    tx = gradtx.masked(gradtx.sgd(0.1), {"w": True, "extra": False})
    with pytest.raises(
        ValueError, match=r"mask must be a tree of bools .*: \['extra'\] is in the mask, not in the params"
    ):
        tx.init(params)
    tx = gradtx.masked(gradtx.sgd(0.1), {"w": True})
    with pytest.raises(ValueError, match=r"\['b'\] is in the params, not in the mask"):
        tx.update(params, gradtx.masked(gradtx.sgd(0.1), True).init(params), params)
    tx = gradtx.lookahead(gradtx.sgd(0.1), 2, 0.5)
    with pytest.raises(ValueError, match=r"lookahead: update needs params, got None"):
        tx.update(params, tx.init(params))
    with pytest.raises(TypeError, match=r"lookahead: params must be LookaheadParams\(fast, slow\), got dict"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match=r"^MultiSteps: every_k_schedule must be in \[1, inf\), got 0$"):
        gradtx.MultiSteps(gradtx.sgd(0.1), 0)
    with pytest.raises(TypeError, match=r"MultiSteps: every_k_schedule must be an integer in \[1, inf\), got 2\.5"):
        gradtx.MultiSteps(gradtx.sgd(0.1), 2.5)
    with pytest.raises(ValueError, match=r"^apply_if_finite: max_consecutive_errors must be in \[0, inf\), got -1$"):
        gradtx.apply_if_finite(gradtx.sgd(0.1), -1)
    with pytest.raises(ValueError, match=r"^lookahead: slow_step_size must be in \[0, 1\], got 1.5$"):
        gradtx.lookahead(gradtx.sgd(0.1), 2, 1.5)
    with pytest.raises(ValueError, match=r"^lookahead: sync_period must be in \[1, inf\), got 0$"):
        gradtx.lookahead(gradtx.sgd(0.1), 0, 0.5)
    with pytest.raises(ValueError, match=r"^inject_hyperparams\(adam\): b1 must be in \[0, 1\), got 1.5$"):
        gradtx.inject_hyperparams(gradtx.adam)(0.1, b1=1.5)  # checked when built
    with pytest.raises(ValueError, match=r"inject_hyperparams: static_args must name arguments of adam, got \['lr'\]"):
        gradtx.inject_hyperparams(gradtx.adam, static_args="lr")
    with pytest.raises(TypeError, match="masked: argument 0 must be a gradient transformation"):
        gradtx.masked(None, True)
