"""Differential privacy: per-example gradients clipped, summed and noised (DP-SGD; Abadi et al., 2016).

    differentially_private_aggregate(C, sigma)   g_i <- g_i min(1, C / ||g_i||)   (each example's global norm)
                                                 u = (sum_i g_i + N(0, (sigma C)^2)) / B
    dpsgd(lr, C, sigma, seed, momentum)          aggregate, then trace(momentum) if given, then -lr

Unlike every other transformation, these take per-example gradients: each leaf has a leading
batch axis of B examples (`jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)`), and the
updates come out without it, in the params' shapes. The random key lives in the state as a raw
key (uint32 key data), as in `add_noise`; given the same seed the noise is optax's, number for
number.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    GradientTransformation,
    Hyperparams,
    InitFn,
    OptState,
    Params,
    ScalarOrSchedule,
    UpdateFn,
    Updates,
    identity,
)
from gradtx.checks import (
    LEARNING_RATE,
    MOMENTUM,
    NONNEG,
    OR_NONE,
    ArgumentTypeError,
    arguments_of,
    check,
    check_flag,
    check_matching_trees,
)
from gradtx.transforms.momentum import trace
from gradtx.transforms.scaling import scale_by_learning_rate


class DifferentiallyPrivateAggregateState(NamedTuple):
    """rng_key: the raw PRNG key of the next step's noise (uint32)."""

    rng_key: jax.Array


def _seed_or_key(builder: str, key: Any, name: str = "key") -> Any:
    """None -> 0; a concrete key or seed array -> ints (hashable, picklable, shown by repr); a tracer as is."""
    if key is None:
        if name == "seed":  # dpsgd's seed is required (optax's): None means nothing there
            raise ArgumentTypeError(builder, name, "must be an int seed or a PRNG key, got None")
        return 0
    if isinstance(key, jax.Array | np.ndarray | np.generic) and not isinstance(key, jax.core.Tracer):
        if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        array = np.asarray(key)
        if not jnp.issubdtype(array.dtype, jnp.integer):
            raise ArgumentTypeError(builder, name, f"must be an int seed or a PRNG key, got an array of {array.dtype}")
        return int(array) if array.ndim == 0 else tuple(int(k) for k in array.ravel())
    if isinstance(key, bool) or not isinstance(key, int | tuple | jax.core.Tracer):
        raise ArgumentTypeError(builder, name, f"must be an int seed or a PRNG key, got {key!r}")
    return key


def _raw_key(key: Any) -> jax.Array:
    if isinstance(key, tuple):
        return jnp.asarray(key, jnp.uint32)
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if isinstance(key, jax.Array) and key.ndim > 0:
        return key
    return jax.random.PRNGKey(key)


def _one_example(builder: str, updates: Updates) -> Updates:
    """The shapes of one example's gradients, after checking that every leaf has one batch axis of one size."""
    sizes = {}
    for path, x in jax.tree_util.tree_flatten_with_path(tree.trainable(updates))[0]:
        if jnp.ndim(x) == 0:
            raise ValueError(
                f"{builder}: expects per-example gradients, each leaf with a leading batch axis"
                f" (jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)); {jax.tree_util.keystr(path)}"
                " is a scalar"
            )
        sizes[jax.tree_util.keystr(path)] = jnp.shape(x)[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{builder}: the per-example gradients' batch axes differ in size: {sizes}")
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x)[1:], jnp.result_type(x)) if tree.is_inexact(x) else x, updates
    )


class _PerExampleUpdateFn(UpdateFn):
    """An update whose gradients carry a leading batch axis of examples and whose updates do not."""

    __slots__ = ()

    def _traced(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        example = _one_example(self.hp.builder, updates)
        check_matching_trees(self.hp.builder, example, tree.trainable(example), None, params)
        params = None if params is None else tree.trainable(params)
        new, state = self.fn(self.hp, tree.trainable(updates), state, params)
        return jax.tree.map(
            lambda x, y: y if tree.is_inexact(x) else x, updates, new, is_leaf=lambda x: x is None
        ), state


def _init_aggregate(hp: Hyperparams, params) -> DifferentiallyPrivateAggregateState:
    return DifferentiallyPrivateAggregateState(rng_key=_raw_key(hp.key))


def _update_aggregate(hp: Hyperparams, g, state: DifferentiallyPrivateAggregateState, params=None):
    leaves, structure = jax.tree.flatten(g)
    rng_key, *keys = jax.random.split(state.rng_key, len(leaves) + 1)  # optax's splits: the same noise
    if not leaves:
        return g, DifferentiallyPrivateAggregateState(rng_key=rng_key)
    dtypes = [tree.real_dtype(tree.compute_dtype(x.dtype)) for x in leaves]
    dtype = np.result_type(*dtypes)
    sq = sum(jnp.sum(tree.abs_sq(x), axis=tuple(range(1, x.ndim))).astype(dtype) for x in leaves)  # ||g_i||^2
    over = sq > hp.l2_norm_clip**2  # ||g_i|| > C (NaN is not: a NaN example stays NaN)
    factor = jnp.where(over, hp.l2_norm_clip / jnp.sqrt(jnp.where(over, sq, jnp.ones_like(sq))), jnp.ones_like(sq))
    batch = leaves[0].shape[0]
    std = hp.l2_norm_clip * hp.noise_multiplier  # sigma C

    def aggregate(x: jax.Array, key: jax.Array) -> jax.Array:
        x32 = x.astype(tree.compute_dtype(x.dtype))
        total = jnp.einsum("i,i...->...", factor.astype(tree.real_dtype(x32.dtype)).astype(x32.dtype), x32)
        noise = jax.random.normal(key, x.shape[1:], x.dtype).astype(x32.dtype)  # drawn in g's dtype, as optax
        return ((total + std * noise) / batch).astype(x.dtype)  # u = (sum_i g_i + sigma C N(0, 1)) / B

    u = jax.tree.unflatten(structure, [aggregate(x, k) for x, k in zip(leaves, keys, strict=True)])
    return u, DifferentiallyPrivateAggregateState(rng_key=rng_key)


def differentially_private_aggregate(
    l2_norm_clip: float, noise_multiplier: float, key: Any = None, *, seed: Any = None
) -> GradientTransformation:
    """DP-SGD's aggregation (Abadi et al., 2016): clip each example's gradient, sum, add noise, average.

        g_i <- g_i min(1, C / ||g_i||)             (C = l2_norm_clip; ||.|| over all leaves of example i)
        u   = (sum_i g_i + sigma C N(0, 1)) / B    (sigma = noise_multiplier; B examples)

    Takes per-example gradients (a leading batch axis on every leaf) and returns updates in the
    params' shapes. `key`: an int seed or a PRNG key (None: 0); `seed` is optax's older name for it.
    Same numbers as optax.contrib.differentially_private_aggregate for the same key. MultiSteps
    and other accumulators do not compose with it (the point is the per-example clip). gradtx's
    `chain` checks its gradients against the params, so this cannot be a chain's first member:
    use `dpsgd`, or apply it first and the optimizer to its result:
    `u, s1 = dp.update(per_example_grads, s1, params); u, s2 = opt.update(u, s2, params)`.

    >>> import gradtx, jax.numpy as jnp
    >>> dp = gradtx.differentially_private_aggregate(l2_norm_clip=1.0, noise_multiplier=0.0)
    >>> per_example = {"w": jnp.asarray([[3.0, 4.0], [0.3, 0.4]])}   # two examples, norms 5 and 0.5
    >>> u, _ = dp.update(per_example, dp.init({"w": jnp.zeros(2)}))
    >>> u["w"].tolist()   # ([0.6, 0.8] + [0.3, 0.4]) / 2
    [0.45, 0.6]
    """
    if seed is not None:
        if key is not None:
            raise ArgumentTypeError(
                "differentially_private_aggregate", None, "pass key or its older name seed, not both"
            )
        key = seed
    check(
        "differentially_private_aggregate",
        l2_norm_clip=(l2_norm_clip, NONNEG),
        noise_multiplier=(noise_multiplier, NONNEG),
    )
    hp = Hyperparams(
        "differentially_private_aggregate", (),
        {"l2_norm_clip": l2_norm_clip, "noise_multiplier": noise_multiplier,
         "key": _seed_or_key("differentially_private_aggregate", key)},
    )  # fmt: skip
    return GradientTransformation(InitFn(_init_aggregate, hp), _PerExampleUpdateFn(_update_aggregate, hp))


# ---------------------------------------------------------------------------------------------------
# DP-SGD


def _members(hp: Hyperparams) -> tuple[GradientTransformation, ...]:
    with arguments_of("dpsgd", {"trace.decay": "momentum"}):
        return (
            differentially_private_aggregate(hp.l2_norm_clip, hp.noise_multiplier, key=hp.seed),
            identity() if hp.momentum is None else trace(hp.momentum, hp.nesterov),
            scale_by_learning_rate(hp.learning_rate),
        )


def _init_dpsgd(hp: Hyperparams, params) -> tuple:
    return tuple(t.init(params) for t in _members(hp))


def _update_dpsgd(hp: Hyperparams, g, state: tuple, params=None):
    aggregate, *rest = _members(hp)
    aggregate_hp = aggregate.hyperparams
    assert aggregate_hp is not None  # built by gradtx
    u, first = _update_aggregate(aggregate_hp, g, state[0], params)  # per-example in, params' shapes out
    new_state = [first]
    for t, s in zip(rest, state[1:], strict=True):
        u, s = t.update(u, s, params)
        new_state.append(s)
    return u, tuple(new_state)


def dpsgd(
    learning_rate: ScalarOrSchedule,
    l2_norm_clip: float,
    noise_multiplier: float,
    seed: int,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD (Abadi et al., 2016): optax's `chain(differentially_private_aggregate(l2_norm_clip,
    noise_multiplier, seed), trace(momentum, nesterov) or identity(), scale_by_learning_rate(lr))`.

        u = (sum_i clip_C(g_i) + sigma C N(0, 1)) / B;   m <- momentum m + u;   x <- x - lr m

    Takes per-example gradients, as `differentially_private_aggregate`; `momentum` None (the
    default) uses none. The state is the chain's tuple of the three states, as optax's; the
    transformation is one block (`dpsgd(...)` in its repr), since gradtx's chain checks gradients
    against the params. Same numbers as optax.contrib.dpsgd for the same seed.

    >>> import gradtx
    >>> gradtx.dpsgd(0.1, l2_norm_clip=1.0, noise_multiplier=1.1, seed=0, momentum=0.9)
    dpsgd(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.1, seed=0, momentum=0.9, nesterov=False)
    """
    check(
        "dpsgd",
        learning_rate=(learning_rate, LEARNING_RATE), l2_norm_clip=(l2_norm_clip, NONNEG),
        noise_multiplier=(noise_multiplier, NONNEG), momentum=(momentum, MOMENTUM + OR_NONE),
    )  # fmt: skip
    hp = Hyperparams(
        "dpsgd", (),
        {"learning_rate": learning_rate, "l2_norm_clip": l2_norm_clip, "noise_multiplier": noise_multiplier,
         "seed": _seed_or_key("dpsgd", seed, "seed"), "momentum": momentum,
         "nesterov": check_flag("dpsgd", "nesterov", nesterov)},
    )  # fmt: skip
    _members(hp)  # the members' own checks, reported as dpsgd's
    return GradientTransformation(InitFn(_init_dpsgd, hp), _PerExampleUpdateFn(_update_dpsgd, hp))


__all__ = ["DifferentiallyPrivateAggregateState", "differentially_private_aggregate", "dpsgd"]
