"""Noise: Gaussian noise added to the updates, annealed over the steps.

    add_noise(eta, gamma):   u = g + N(0, sigma_t^2),   sigma_t^2 = eta / t^gamma   (Neelakantan et al., 2015)

The random key lives in the state, so a step is a pure function and a checkpoint resumes the same
noise. It is a raw key (uint32 key data, `jax.random.PRNGKey`'s form), which every checkpoint
format stores as it stores any array; optax keeps a typed `jax.random.key` there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, check
from gradtx.combine import chain
from gradtx.transforms.scaling import scale_by_learning_rate


class AddNoiseState(NamedTuple):
    """count: updates applied (int32); rng_key: the raw PRNG key of the next step (uint32)."""

    count: Count
    rng_key: jax.Array


def _raw_key(key: Any) -> jax.Array:
    """A seed (int), key data (a tuple of ints) or a key (typed or raw, maybe traced) as a raw key."""
    if isinstance(key, tuple):
        return jnp.asarray(key, jnp.uint32)
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if isinstance(key, jax.Array) and key.ndim > 0:
        return key
    return jax.random.PRNGKey(key)


def _init_noise(hp: Hyperparams, params) -> AddNoiseState:
    return AddNoiseState(count=zero_count(), rng_key=_raw_key(hp.key))


def _noisy(hp: Hyperparams, t: Count, g: jax.Array, key: jax.Array) -> jax.Array:
    # The noise is drawn in g's dtype (as optax does, so the same key gives the same numbers) and
    # added in its compute dtype; sigma_t in the real compute dtype.
    dtype = tree.real_dtype(tree.compute_dtype(g.dtype))
    sigma = jnp.sqrt(jnp.asarray(hp.eta).astype(dtype) / t.astype(dtype) ** jnp.asarray(hp.gamma).astype(dtype))
    return tree.add_scale(g, sigma, jax.random.normal(key, g.shape, g.dtype))


def _update_noise(hp: Hyperparams, g, state: AddNoiseState, params=None):
    t = next_count(state.count)
    rng_key, sample_key = jax.random.split(state.rng_key)  # the next state's key, and this step's
    leaves, structure = jax.tree.flatten(g)
    keys = jax.tree.unflatten(structure, list(jax.random.split(sample_key, len(leaves))))  # one per leaf
    u = jax.tree.map(lambda x, k: _noisy(hp, t, x, k), g, keys)  # u = g + sigma_t N(0, 1)
    return u, AddNoiseState(count=t, rng_key=rng_key)


def _key_argument(key: Any) -> Any:
    """None -> 0; a concrete key or seed array -> ints (hashable, picklable, shown by repr); a tracer as is."""
    if key is None:
        return 0
    if isinstance(key, jax.Array | np.ndarray | np.generic) and not isinstance(key, jax.core.Tracer):
        if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        array = np.asarray(key)
        if not jnp.issubdtype(array.dtype, jnp.integer):
            raise TypeError(f"add_noise: key must be an int seed or a PRNG key, got an array of {array.dtype}")
        return int(array) if array.ndim == 0 else tuple(int(k) for k in array.ravel())
    if isinstance(key, bool) or not isinstance(key, int | tuple | jax.core.Tracer):
        raise TypeError(f"add_noise: key must be an int seed or a PRNG key, got {key!r}")
    return key


def add_noise(eta: float, gamma: float, key: Any = None, *, seed: Any = None) -> GradientTransformation:
    """Adds annealed Gaussian noise to the updates (Neelakantan et al., 2015).

        sigma_t^2 = eta / t^gamma             (t counts updates from 1)
        u = g + sigma_t N(0, 1)               (a fresh draw per coordinate and step)

    The paper's settings: eta in {0.01, 0.3, 1.0}, gamma = 0.55. `key` is a seed (an int, also
    traced: `jax.vmap` over seeds) or a PRNG key, typed or raw; `seed` is optax's older name for it.
    No key means 0 (optax then warns and uses 0). Given the same key, the noise is optax's, number
    for number (the same splits and draws). Complex params get complex noise, real and imaginary
    parts each of variance sigma_t^2 / 2.

    >>> import gradtx
    >>> gradtx.add_noise(0.01, 0.55, key=42)
    add_noise(eta=0.01, gamma=0.55, key=42)
    """
    if seed is not None:
        if key is not None:
            raise TypeError("add_noise: pass key or its older name seed, not both")
        key = seed
    check("add_noise", eta=(eta, NONNEG), gamma=(gamma, NONNEG))
    return transformation("add_noise", _init_noise, _update_noise, eta=eta, gamma=gamma, key=_key_argument(key))


# ---------------------------------------------------------------------------------------------------
# Optimizer


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: Any = None,
    *,
    seed: Any = None,
) -> GradientTransformation:
    """SGD with annealed gradient noise (Neelakantan et al., 2015): `chain(add_noise, scale_by_learning_rate)`.

    W <- W - eta_t (g + N(0, sigma_t^2)), sigma_t^2 = eta / t^gamma. See `add_noise` for `key`
    (None: 0) and `seed` (its older name).

    >>> import gradtx
    >>> gradtx.noisy_sgd(0.01, key=1)
    chain(add_noise(eta=0.01, gamma=0.55, key=1), scale_by_learning_rate(learning_rate=0.01, flip_sign=True))
    """
    check("noisy_sgd", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))


__all__ = ["AddNoiseState", "add_noise", "noisy_sgd"]
