"""gradtx.convert: optax runs continued in gradtx and back, and states remapped to params that changed.

- For each transformation whose state layout differs from optax's (a trace without a count, RMSProp
  without one, chains with stateless members that the other library leaves out, a typed key,
  inject_hyperparams' schedule states), an optax run is continued in gradtx from its converted state,
  and a gradtx run in optax: the continued trajectories equal the uninterrupted run's (float64,
  rtol 1e-9).
- remap_state on a model that gains a layer, loses one and reshapes its head: kept leaves carry
  their state, new ones start fresh, and the continued trajectory of a separable loss equals, leaf
  by leaf, the uninterrupted run (kept leaves) and a separate run from init at the old count (new).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

RTOL = 1e-9
_rng = np.random.default_rng(2)
X = _rng.normal(size=(6, 3))
Y = _rng.normal(size=(6, 2))
PARAMS = {"w": jnp.asarray(_rng.normal(size=(3, 2))), "b": jnp.full(2, 0.1), "s": jnp.asarray(1.2)}


def loss(p):
    return jnp.mean((p["s"] * jnp.tanh(jnp.asarray(X) @ p["w"] + p["b"]) - jnp.asarray(Y)) ** 2)


_grad = jax.jit(jax.grad(loss))


def run(tx, params, state, steps, standard=False):
    """`steps` updates from (params, state): the params after each, and the final params and state."""
    update = jax.jit(tx.update)
    path = []
    for _ in range(steps):
        if standard:
            with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
                u, state = update(_grad(params), state, params)
                params = optax.apply_updates(params, u)
        else:
            u, state = update(_grad(params), state, params)
            params = gradtx.apply_updates(params, u)
        path.append(params)
    return path, params, state


def labels(params):
    return {"w": "adam", "b": "sgd", "s": "adam"}


# (id, builder from a module m, count to pass from optax or None when the state holds one)
CASES = [
    ("sgd-momentum", lambda m: m.sgd(0.1, momentum=0.9), 6),  # optax's TraceState has no count
    # Schedules whose values are exact in float32 (optax's are float32): the count comes from the schedule's state.
    (
        "sgd-schedule",
        lambda m: m.sgd(m.piecewise_constant_schedule(0.125, {3: 0.5}), momentum=0.9, nesterov=True),
        None,
    ),
    ("rmsprop-momentum", lambda m: m.rmsprop(0.01, momentum=0.9, nesterov=True), 6),
    ("rmsprop-centered", lambda m: m.rmsprop(0.01, centered=True, eps_in_sqrt=False), 6),
    ("adadelta", lambda m: m.adadelta(0.5), None),  # optax chains a zero weight decay, gradtx leaves it out
    ("noisy_sgd", lambda m: m.noisy_sgd(0.01, key=0), None),  # typed key in optax, raw in gradtx
    (
        "inject-schedule",
        lambda m: m.inject_hyperparams(m.adam)(learning_rate=m.piecewise_constant_schedule(1 / 64, {4: 0.5})),
        None,
    ),
    ("partition", lambda m: m.partition({"adam": m.adam(1e-2), "sgd": m.sgd(0.1)}, labels), None),
]
N = 6


@pytest.mark.parametrize(("name", "make", "count"), CASES, ids=[c[0] for c in CASES])
def test_optax_run_continued_in_gradtx_and_back(name, make, count):
    with jax.numpy_dtype_promotion("standard"):
        theirs = make(optax)
        their_init = theirs.init(PARAMS)
    ours = make(gradtx)
    whole, _, _ = run(theirs, PARAMS, their_init, 2 * N, standard=True)
    # optax, then gradtx
    _, params, state = run(theirs, PARAMS, their_init, N, standard=True)
    converted = gradtx.state_from_optax(state, ours, PARAMS, count=count)
    assert jax.tree.structure(converted) == jax.tree.structure(ours.init(PARAMS))
    path, _, _ = run(ours, params, converted, N)
    for a, b in zip(path, whole[N:], strict=True):
        for k in PARAMS:
            np.testing.assert_allclose(a[k], b[k], rtol=RTOL, err_msg=f"{name}: gradtx after optax, {k}")
    # gradtx, then optax
    _, params, state = run(ours, PARAMS, ours.init(PARAMS), N)
    converted = gradtx.state_to_optax(state, theirs, PARAMS)
    assert jax.tree.structure(converted) == jax.tree.structure(their_init)
    path, _, _ = run(theirs, params, converted, N, standard=True)
    for a, b in zip(path, whole[N:], strict=True):
        for k in PARAMS:
            np.testing.assert_allclose(a[k], b[k], rtol=RTOL, err_msg=f"{name}: optax after gradtx, {k}")


def test_a_count_the_source_does_not_keep_must_be_given():
    with jax.numpy_dtype_promotion("standard"):
        state = optax.sgd(0.1, momentum=0.9).init(PARAMS)
    with pytest.raises(ValueError, match=r"state\[0\]\.count is a step count the source does not have.*pass count="):
        gradtx.state_from_optax(state, gradtx.sgd(0.1, momentum=0.9), PARAMS)
    with pytest.raises(ValueError, match=r"state has 1 members with state in the source, 2 in the target"):
        gradtx.state_from_optax(state, gradtx.chain(gradtx.trace(0.9), gradtx.scale_by_adam()), PARAMS, count=0)
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(3, 2\) in the source, \(2,\)"):
        small = {"w": jnp.zeros(2), "b": jnp.zeros(2), "s": jnp.zeros(())}
        gradtx.state_from_optax(state, gradtx.sgd(0.1, momentum=0.9), small, count=0)


# ---------------------------------------------------------------------------------------------------
# remap_state

OLD = {
    "l1": {"w": jnp.asarray(_rng.normal(size=(3, 4))), "b": jnp.zeros(4)},
    "l2": {"w": jnp.asarray(_rng.normal(size=(4, 4))), "b": jnp.zeros(4)},
    "head": {"w": jnp.asarray(_rng.normal(size=(4, 2)))},
}
NEW = {  # l2 dropped, l3 added, the head reshaped
    "l1": OLD["l1"],
    "l3": {"w": jnp.asarray(_rng.normal(size=(4, 4))), "b": jnp.zeros(4)},
    "head": {"w": jnp.asarray(_rng.normal(size=(4, 3)))},
}
TARGETS = {"l1": 1.0, "l2": -1.0, "l3": 0.5, "head": 2.0}


def separable_loss(p):
    """Each leaf pulled toward its layer's target: per-leaf optimizers on it are independent per leaf."""
    weights = lambda x: 1 + jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)  # a conditioning per coordinate
    return sum(jnp.sum((x - TARGETS[layer]) ** 2 * weights(x)) for layer, sub in p.items() for x in sub.values())


_separable_grad = jax.jit(jax.grad(separable_loss))


def train(tx, params, state, steps):
    update = jax.jit(tx.update)
    for _ in range(steps):
        u, state = update(_separable_grad(params), state, params)
        params = gradtx.apply_updates(params, u)
    return params, state


def test_report_names_the_leaves_kept_added_dropped_and_reshaped():
    tx = gradtx.adam(1e-2)
    _, report = gradtx.remap_state(tx, tx.init(OLD), OLD, NEW)
    assert report.kept == ("['l1']['b']", "['l1']['w']")
    assert report.added == ("['l3']['b']", "['l3']['w']")
    assert report.dropped == ("['l2']['b']", "['l2']['w']")
    assert report.reshaped == ("['head']['w']",)
    assert str(report) == (
        "2 kept; added: ['l3']['b'], ['l3']['w']; dropped: ['l2']['b'], ['l2']['w']; reshaped: ['head']['w']"
    )


def test_kept_leaves_continue_their_run_and_new_leaves_start_as_a_separate_run_at_the_old_count():
    tx = gradtx.adam(5e-2)
    steps = 10
    params, state = train(tx, OLD, tx.init(OLD), steps)
    uninterrupted, _ = train(tx, params, state, steps)
    new = {**NEW, "l1": params["l1"]}
    remapped, _ = gradtx.remap_state(tx, state, params, new)
    assert int(remapped[0].count) == steps
    continued, _ = train(tx, new, remapped, steps)
    np.testing.assert_allclose(continued["l1"]["w"], uninterrupted["l1"]["w"], rtol=1e-12)
    np.testing.assert_allclose(continued["l1"]["b"], uninterrupted["l1"]["b"], rtol=1e-12)
    # the new leaves: a separate Adam on them alone, from zero moments at count 10
    fresh = {"l3": NEW["l3"], "head": NEW["head"]}
    start = tx.init(fresh)
    start = (start[0]._replace(count=jnp.asarray(steps, jnp.int32)), *start[1:])
    separate, _ = train(tx, fresh, start, steps)
    for layer in fresh:
        for k in fresh[layer]:
            np.testing.assert_allclose(continued[layer][k], separate[layer][k], rtol=1e-12, err_msg=f"{layer} {k}")


def _not_bias(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: not jax.tree_util.keystr(path).endswith("['b']"), params)


@pytest.mark.parametrize(
    "tx",
    [
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2, mask=_not_bias)),
        gradtx.MultiSteps(gradtx.adafactor(1e-2, min_dim_size_to_factor=2), 2).gradient_transformation(),
        gradtx.inject_hyperparams(gradtx.rmsprop)(learning_rate=1e-2, momentum=0.9),
    ],
    ids=["masked", "multisteps-factored", "inject"],
)
def test_nested_states_are_remapped_leaf_by_leaf(tx):
    params, state = train(tx, OLD, tx.init(OLD), 3)
    new = {**NEW, "l1": params["l1"]}
    remapped, _ = gradtx.remap_state(tx, state, params, new)
    fresh = tx.init(new)
    assert jax.tree.structure(remapped) == jax.tree.structure(fresh)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(remapped)[0], jax.tree.leaves(fresh), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, jax.tree_util.keystr(path)
        where = jax.tree_util.keystr(path)
        if "['l3']" in where or "['head']" in where:  # fresh state, whatever the step
            np.testing.assert_array_equal(a, b, err_msg=where)
    # the kept leaves' state is the old state's, found by its path
    old_by_path = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}
    for path, a in jax.tree_util.tree_flatten_with_path(remapped)[0]:
        where = jax.tree_util.keystr(path)
        if "['l1']" in where or ("['l3']" not in where and "['head']" not in where and where in old_by_path):
            np.testing.assert_array_equal(a, old_by_path[where], err_msg=where)
    train(tx, new, remapped, 2)  # and it runs


def test_a_state_of_another_transformation_is_refused():
    with pytest.raises(ValueError, match=r"remap_state: state.* was it built by tx"):
        gradtx.remap_state(gradtx.adam(1e-2), gradtx.sgd(0.1, momentum=0.9).init(OLD), OLD, NEW)
