"""gradtx in real training loops: flax linen's TrainState, flax's nnx.Optimizer, equinox's filtered loop.

No mocks. Each test trains a tiny model for STEPS full-batch steps with a gradtx optimizer, or a chain
that mixes gradtx and optax in either direction, exactly as that framework's documentation trains
with an optax one. It checks that the loss decreases, and compares the loss at every step and the
final model with the same loop run with optax's same-named optimizer (under
`jax.numpy_dtype_promotion("standard")`, which optax needs; pure-gradtx runs keep the suite's strict
promotion). The models also hold what an optimizer must leave alone: nnx BatchNorm statistics and
an `nnx.Variable` call counter outside `wrt=nnx.Param`; an equinox int32 array, a Python int and an
activation function, whose gradients are None.

Tolerance: float32 models. gradtx rounds `1 - b^t` and `1 - decay` differently from optax (README,
"Differences from optax": optax's float32 `1 - b2^t` is off by 1.3e-5 relative at t = 1), so an
Adam step may differ by about 1e-5 of the learning rate: losses agree to tests/registry.py's rtol
of 2e-5, parameters to that rtol plus an absolute 1e-5 * LR per step. A real difference (a leaf
decayed or skipped, a step's sign or scale) is orders of magnitude larger.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

# All in the test extras (pyproject.toml); the module is skipped where one is missing.
optax = pytest.importorskip("optax")
eqx = pytest.importorskip("equinox")
nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")
train_state = pytest.importorskip("flax.training.train_state")

STEPS = 12
LR = 3e-2
CLIP = 0.1  # below the first gradients' global norm in every loop (checked), so clipping acts
RTOL, ATOL = 2e-5, 1e-5 * LR * STEPS

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(32, 4)), jnp.float32)
Y = jnp.tanh(X @ jnp.asarray(_rng.normal(size=(4, 2)), jnp.float32))


def mse(pred: jax.Array) -> jax.Array:
    return jnp.mean((pred - Y) ** 2)


@dataclass(frozen=True)
class Pair:
    """A gradtx optimizer (possibly with optax members) and the same optimizer written with optax."""

    id: str
    ours: Callable[[], Any]
    theirs: Callable[[], Any]
    mixed: bool = False  # has optax members, which need standard dtype promotion
    clips: bool = False  # clips by global norm: the first gradients must be above CLIP
    # False where an optax member gets the params' integer leaves: optax's stateful transformations
    # fail on an integer leaf with a None gradient (gradtx.chain filters them out before its members).
    integer_leaves: bool = True

    def promotion(self, ours: bool) -> Any:
        strict = ours and not self.mixed
        return contextlib.nullcontext() if strict else jax.numpy_dtype_promotion("standard")


def matrices(params: Any) -> Any:
    """A mask: True on the leaves with two or more dimensions (weight decay on matrices only)."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def by_rank(params: Any) -> Any:
    """multi_transform's labels: Adam for matrices, SGD for biases and norm scales."""
    return jax.tree.map(lambda p: "adam" if jnp.ndim(p) >= 2 else "sgd", params)


def freeze_vectors(params: Any) -> Any:
    return jax.tree.map(lambda p: "train" if jnp.ndim(p) >= 2 else "freeze", params)


PAIRS = [
    Pair(
        "masked(adamw,mask=matrices)",
        lambda: gradtx.adamw(LR, weight_decay=0.1, mask=matrices),
        lambda: optax.adamw(LR, weight_decay=0.1, mask=matrices),
    ),
    Pair(
        "multi_transform(adam,sgd)",
        lambda: gradtx.multi_transform({"adam": gradtx.adam(LR), "sgd": gradtx.sgd(0.1, momentum=0.9)}, by_rank),
        lambda: optax.multi_transform({"adam": optax.adam(LR), "sgd": optax.sgd(0.1, momentum=0.9)}, by_rank),
    ),
    Pair(
        "multi_transform(freeze)",
        lambda: gradtx.multi_transform({"train": gradtx.adam(LR), "freeze": gradtx.set_to_zero()}, freeze_vectors),
        lambda: optax.multi_transform({"train": optax.adam(LR), "freeze": optax.set_to_zero()}, freeze_vectors),
    ),
    Pair(
        "adamw(schedule)",
        lambda: gradtx.adamw(gradtx.warmup_cosine_decay_schedule(0.0, LR, 3, STEPS), weight_decay=0.1),
        lambda: optax.adamw(optax.warmup_cosine_decay_schedule(0.0, LR, 3, STEPS), weight_decay=0.1),
    ),
    Pair(
        "chain(clip_by_global_norm,adam)",
        lambda: gradtx.chain(gradtx.clip_by_global_norm(CLIP), gradtx.adam(LR)),
        lambda: optax.chain(optax.clip_by_global_norm(CLIP), optax.adam(LR)),
        clips=True,
    ),
    Pair(
        "sgd(nesterov)",
        lambda: gradtx.sgd(0.1, momentum=0.9, nesterov=True),
        lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    Pair(
        "optax.chain(gradtx,optax)",
        lambda: optax.chain(gradtx.clip_by_global_norm(CLIP), optax.scale_by_adam(), gradtx.scale_by_learning_rate(LR)),
        lambda: optax.chain(optax.clip_by_global_norm(CLIP), optax.scale_by_adam(), optax.scale_by_learning_rate(LR)),
        mixed=True,
        clips=True,
        integer_leaves=False,
    ),
    Pair(
        "gradtx.chain(optax,gradtx)",
        lambda: gradtx.chain(optax.clip_by_global_norm(CLIP), gradtx.adamw(LR, weight_decay=0.1)),
        lambda: optax.chain(optax.clip_by_global_norm(CLIP), optax.adamw(LR, weight_decay=0.1)),
        mixed=True,
        clips=True,
    ),
]
PARAMS = [pytest.param(p, id=p.id) for p in PAIRS]


@dataclass
class Run:
    losses: np.ndarray  # the loss before each step
    first_grad_norm: float
    model: Any  # the float leaves of the trained model, as NumPy arrays


def check_against_optax(pair: Pair, train: Callable[..., Run]) -> tuple[Run, Run]:
    """Trains with `pair.ours` and `pair.theirs`; checks the loss decreases and the two agree.

    `train(tx, ours)`: `ours` says whether `tx` is the gradtx side.
    """
    with pair.promotion(ours=True):
        ours = train(pair.ours(), ours=True)
    with pair.promotion(ours=False):
        theirs = train(pair.theirs(), ours=False)
    assert np.all(np.isfinite(ours.losses)), ours.losses
    assert ours.losses[-1] < 0.5 * ours.losses[0], ours.losses
    if pair.clips:
        assert ours.first_grad_norm > 2 * CLIP, ours.first_grad_norm
    np.testing.assert_allclose(ours.losses, theirs.losses, rtol=RTOL, err_msg="loss at each step")
    assert jax.tree.structure(ours.model) == jax.tree.structure(theirs.model)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(ours.model), jax.tree.leaves(theirs.model), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=jax.tree_util.keystr(path))
    return ours, theirs


def float_leaves(tree: Any) -> Any:
    """The floating arrays of a model as NumPy arrays; every other leaf None."""

    def leaf(x: Any) -> Any:
        return np.asarray(x) if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact) else None

    return jax.tree.map(leaf, tree)


# ---------------------------------------------------------------------------------------------------
# flax linen: TrainState.apply_gradients under jax.jit


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(2)(nn.tanh(nn.Dense(8)(x)))


@functools.cache
def linen_params() -> Any:
    """The initial params, made once (jitted: eager init compiles dozens of small programs)."""
    return jax.jit(LinenMLP().init)(jax.random.key(0), X)["params"]


def train_linen(tx: Any, ours: bool) -> Run:
    state = train_state.TrainState.create(apply_fn=LinenMLP().apply, params=linen_params(), tx=tx)

    @jax.jit
    def step(state: Any) -> tuple[Any, jax.Array, jax.Array]:
        loss, grads = jax.value_and_grad(lambda p: mse(state.apply_fn({"params": p}, X)))(state.params)
        return state.apply_gradients(grads=grads), loss, gradtx.tree.norm(grads)

    losses, norms = [], []
    for _ in range(STEPS):
        state, loss, norm = step(state)
        losses.append(loss)
        norms.append(norm)
    assert int(state.step) == STEPS
    return Run(np.asarray(losses), float(norms[0]), float_leaves(state.params))


@pytest.mark.parametrize("pair", PARAMS)
def test_flax_linen_train_state(pair):
    ours, _ = check_against_optax(pair, train_linen)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(ours.model))


# ---------------------------------------------------------------------------------------------------
# flax nnx: nnx.Optimizer(model, tx, wrt=nnx.Param) under nnx.jit


LABELS = ("adam", "sgd", "train", "freeze")  # multi_transform's labels (keys of its inner states)


def dict_keys(path: tuple) -> tuple:
    """A state leaf's path in the model (its dict keys, less multi_transform's labels), () for a count."""
    return tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey) and k.key not in LABELS)


class NnxModel(nnx.Module):
    """An MLP with BatchNorm (its statistics are nnx.BatchStat, not nnx.Param) and a call counter."""

    def __init__(self, rngs: Any) -> None:
        self.linear1 = nnx.Linear(4, 8, use_bias=False, rngs=rngs)  # BatchNorm makes a bias here a no-op
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.linear2 = nnx.Linear(8, 2, rngs=rngs)
        self.calls = nnx.Variable(jnp.zeros((), jnp.int32))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.calls[...] += 1
        return self.linear2(nnx.tanh(self.norm(self.linear1(x))))


@functools.cache
def nnx_initial() -> tuple[Any, Any]:
    """The initial model as (graphdef, arrays), made once; `nnx.merge` gives a fresh copy to train."""
    graphdef, state = nnx.split(nnx.jit(lambda: NnxModel(nnx.Rngs(0)))())
    return graphdef, nnx.as_pure(state)


def train_nnx(tx: Any, ours: bool) -> Run:
    model = nnx.merge(*nnx_initial())
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    batch_stats_before = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))

    @nnx.jit
    def step(model: NnxModel, optimizer: Any) -> tuple[jax.Array, jax.Array]:
        loss, grads = nnx.value_and_grad(lambda m: mse(m(X)))(model)
        optimizer.update(model, grads, value=loss)  # nnx forwards keyword arguments to tx.update
        return loss, gradtx.tree.norm(grads)

    losses, norms = [], []
    for _ in range(STEPS):
        loss, norm = step(model, optimizer)
        losses.append(loss)
        norms.append(norm)

    # The optimizer's state covers the Params only; the counter and statistics moved by forward passes.
    params = nnx.state(model, nnx.Param)
    param_paths = {dict_keys(path) for path, _ in jax.tree_util.tree_leaves_with_path(nnx.as_pure(params))}
    state_paths = {dict_keys(path) for path, _ in jax.tree_util.tree_leaves_with_path(nnx.as_pure(optimizer.opt_state))}
    assert state_paths - {()}, state_paths  # every optimizer here has moments
    assert state_paths - {()} <= param_paths, state_paths - param_paths
    assert int(optimizer.step[...]) == STEPS
    assert int(model.calls[...]) == STEPS and model.calls[...].dtype == jnp.int32
    batch_stats = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
    moved = [
        not np.allclose(a, b) for a, b in zip(*map(jax.tree.leaves, (batch_stats, batch_stats_before)), strict=True)
    ]
    assert moved and all(moved), moved
    trained = {"params": nnx.as_pure(params), "batch_stats": nnx.as_pure(batch_stats)}
    return Run(np.asarray(losses), float(norms[0]), float_leaves(trained))


@pytest.mark.parametrize("pair", PARAMS)
def test_flax_nnx_optimizer(pair):
    check_against_optax(pair, train_nnx)


# ---------------------------------------------------------------------------------------------------
# equinox: eqx.filter_value_and_grad, tx.update(grads, state, eqx.filter(model, eqx.is_array)), apply_updates


class EqxModel(eqx.Module):
    """An MLP with leaves the optimizer must pass through: an int32 array, a Python int, a function."""

    linear1: Any
    linear2: Any
    activation: Callable
    seen: jax.Array  # int32: batches seen, advanced by the training loop
    width: int

    def __init__(self, key: jax.Array) -> None:
        k1, k2 = jax.random.split(key)
        self.width = 8
        self.linear1 = eqx.nn.Linear(4, self.width, key=k1, dtype=jnp.float32)
        self.linear2 = eqx.nn.Linear(self.width, 2, key=k2, dtype=jnp.float32)
        self.activation = jax.nn.tanh
        self.seen = jnp.zeros((), jnp.int32)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.vmap(lambda row: self.linear2(self.activation(self.linear1(row))))(x)


@functools.cache
def equinox_initial() -> EqxModel:
    return eqx.filter_jit(EqxModel)(jax.random.key(0))


def train_equinox(tx: Any, params_filter: Callable[[Any], bool]) -> Run:
    model = equinox_initial()
    opt_state = tx.init(eqx.filter(model, params_filter))

    @eqx.filter_jit
    def step(model: EqxModel, opt_state: Any) -> tuple[EqxModel, Any, jax.Array, jax.Array, Any]:
        loss, grads = eqx.filter_value_and_grad(lambda m: mse(m(X)))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, params_filter))
        model = eqx.apply_updates(model, updates)
        model = eqx.tree_at(lambda m: m.seen, model, model.seen + 1)
        return model, opt_state, loss, gradtx.tree.norm(grads), grads

    losses, norms = [], []
    for _ in range(STEPS):
        model, opt_state, loss, norm, grads = step(model, opt_state)
        losses.append(loss)
        norms.append(norm)
    # None gradients for every leaf that is not a float array, and the loop's own int32 counter intact.
    assert grads.seen is None and grads.width is None and grads.activation is None
    assert model.seen.dtype == jnp.int32 and int(model.seen) == STEPS
    assert model.width == 8 and model.activation is jax.nn.tanh
    return Run(np.asarray(losses), float(norms[0]), float_leaves(model))


@pytest.mark.parametrize("pair", PARAMS)
def test_equinox_filtered_loop(pair):
    # equinox's documented loop passes eqx.filter(model, eqx.is_array), the int32 array included,
    # which gradtx passes through. optax's stateful transformations fail on an integer leaf with a
    # None gradient (a tree structure error), so the optax run, and a gradtx run whose optax members
    # would see that leaf, pass the float arrays only.
    def train(tx: Any, ours: bool) -> Run:
        keep_integers = ours and pair.integer_leaves
        return train_equinox(tx, eqx.is_array if keep_integers else eqx.is_inexact_array)

    check_against_optax(pair, train)
