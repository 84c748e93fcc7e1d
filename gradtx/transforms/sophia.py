"""Sophia: momentum over a clipped diagonal-Hessian preconditioner (Liu et al., 2023), optax.contrib's.

    scale_by_sophia                    u = clip(m^ / max(gamma h, eps), -rho, rho);  h <- EMA of a Hessian
                                       diagonal estimate every k-th step
    hutchinson_estimator_diag_hessian  h_est = z * (H z), z Rademacher (Sophia-H), H z by forward-over-reverse
    sophia                             chain(scale_by_sophia, add_decayed_weights, scale_by_learning_rate)

The Hessian estimate is a transformation of its own (`hessian_diagonal_fn`), called every
`update_interval` steps with the caller's keyword arguments: the default one, Hutchinson's, needs the
objective as `obj_fn=` (params -> scalar loss) in every `update`, as optax.contrib's does. Its random
key lives in the state (`HutchinsonState.key`, a raw uint32 key as `jax.random.PRNGKey` makes), so a
step is a pure function and a checkpoint resumes the same probes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    ExtraArgsUpdateFn,
    GradientTransformation,
    GradientTransformationExtraArgs,
    Hyperparams,
    InitFn,
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE,
    POSITIVE_COUNT,
    SCHEDULE,
    UNIT,
    ArgumentTypeError,
    arguments_of,
    check,
    check_flag,
    first_moment_dtype,
)
from gradtx.combine import chain, check_members
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate
from gradtx.wrappers.extra_args import with_extra_args_support

# ---------------------------------------------------------------------------------------------------
# Hutchinson's estimator of the Hessian diagonal


class HutchinsonState(NamedTuple):
    """key: the raw PRNG key (uint32 key data) the next estimate splits its probe from."""

    key: jax.Array


def _seed_argument(builder: str, seed: Any) -> Any:
    """A concrete key or seed array -> ints (hashable, picklable, shown by repr); None, ints and tracers as is."""
    if isinstance(seed, jax.Array | np.ndarray | np.generic) and not isinstance(seed, jax.core.Tracer):
        if isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
            seed = jax.random.key_data(seed)
        array = np.asarray(seed)
        if not jnp.issubdtype(array.dtype, jnp.integer):
            raise ArgumentTypeError(builder, "random_seed", f"must be an int seed or a PRNG key, got {array.dtype}")
        return int(array) if array.ndim == 0 else tuple(int(k) for k in array.ravel())
    if isinstance(seed, bool) or not (seed is None or isinstance(seed, int | tuple | jax.core.Tracer)):
        raise ArgumentTypeError(builder, "random_seed", f"must be an int seed or a PRNG key, got {seed!r}")
    return seed


def _raw_key(seed: Any) -> jax.Array:
    """None -> PRNGKey(0) (optax's default); key data (a tuple, or an array of it) as uint32; a seed as a key."""
    if seed is None:
        return jax.random.PRNGKey(0)
    if isinstance(seed, tuple):
        return jnp.asarray(seed, jnp.uint32)
    if isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(seed)
    if isinstance(seed, jax.Array) and seed.ndim > 0:
        return seed
    return jax.random.PRNGKey(seed)


def _init_hutchinson(hp: Hyperparams, params) -> HutchinsonState:
    return HutchinsonState(key=_raw_key(hp.random_seed))


def _update_hutchinson(hp: Hyperparams, g, state: HutchinsonState, params=None, obj_fn=None, **extra_args):
    if params is None:
        raise ValueError("hutchinson_estimator_diag_hessian: update needs params, got None")
    if obj_fn is None:
        raise ValueError(
            "hutchinson_estimator_diag_hessian: update needs the objective, obj_fn= (params -> scalar loss);"
            " pass it to the optimizer's update: tx.update(grads, state, params, obj_fn=loss_of_params)"
        )
    key, probe_key = jax.random.split(state.key)  # the next state's key, and this estimate's
    # The probe z as optax draws it (float32 Rademacher signs, one key a leaf), then in each param's
    # own dtype (optax casts every leaf to the tree's lowest dtype; +-1 is exact in each).
    z = tree.random_like(probe_key, params, jax.random.rademacher, dtype=jnp.float32)
    z = tree.cast_like(z, params)
    hz = jax.jvp(jax.grad(obj_fn), (params,), (z,))[1]  # H z, forward over reverse
    h_est = jax.tree.map(lambda a, b: a * b.astype(a.dtype), hz, z)  # h_est = z * (H z),  E[h_est] = diag(H)
    return h_est, HutchinsonState(key=key)


def hutchinson_estimator_diag_hessian(random_seed: Any = None) -> GradientTransformation:
    """Hutchinson's unbiased estimate of the Hessian diagonal (Sophia-H's estimator; optax.contrib's).

        z ~ Rademacher (each entry +-1 with probability 1/2)
        h_est = z * (H z)                      (E[z * (H z)] = diag(H); H z by jax.jvp of jax.grad)

    Its `update(updates, state, params, obj_fn=...)` ignores the updates and needs the params and
    the objective `obj_fn` (params -> scalar). `random_seed`: an int seed, key data or a PRNG key
    (typed or raw); None is `jax.random.PRNGKey(0)`, as in optax. Given the same key, the probes are
    optax's, bit for bit (the same splits and draws); optax casts every probe to the tree's lowest
    dtype, gradtx each to its param's (a jvp needs tangents in the primals' dtypes).

    >>> import gradtx
    >>> gradtx.hutchinson_estimator_diag_hessian(random_seed=3)
    hutchinson_estimator_diag_hessian(random_seed=3)
    """
    seed = _seed_argument("hutchinson_estimator_diag_hessian", random_seed)
    return transformation(
        "hutchinson_estimator_diag_hessian", _init_hutchinson, _update_hutchinson, extra_args=True, random_seed=seed
    )


HUTCHINSON = hutchinson_estimator_diag_hessian()  # optax's default estimator, built once

# ---------------------------------------------------------------------------------------------------
# Sophia


class SophiaState(NamedTuple):
    """count: updates applied (int32); mu: momentum m; nu: EMA h of the Hessian diagonal estimates (real);
    hessian_fn_state: the estimator's state (optax's field names)."""

    count: Count
    mu: Updates
    nu: Updates
    hessian_fn_state: Any


def _init_sophia(hp: Hyperparams, params) -> SophiaState:
    return SophiaState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
        hessian_fn_state=hp.hessian_diagonal_fn.init(params),
    )


def _preconditioned(hp: Hyperparams, m: jax.Array, h: jax.Array) -> jax.Array:
    h = h.astype(tree.real_dtype(m.dtype))
    u = m / jnp.maximum(jnp.asarray(hp.gamma).astype(h.dtype) * h, jnp.asarray(hp.eps).astype(h.dtype))
    if hp.clip_threshold is None:
        return u
    rho = jnp.asarray(hp.clip_threshold).astype(h.dtype)
    return jnp.clip(u, -rho, rho)


def _print_win_rate(hp: Hyperparams, t: Count, u: Updates) -> None:
    """Sophia's diagnostic: the fraction of coordinates not clipped (the authors advise 0.1-0.5)."""
    rho = hp.clip_threshold
    kept = sum(jnp.sum(jnp.abs(x) < rho) for x in jax.tree.leaves(u))
    rate = kept / max(1, sum(x.size for x in jax.tree.leaves(u)))
    every = hp.print_win_rate_every_n_steps
    jax.lax.cond(t % every == 0, lambda: jax.debug.print("Sophia optimizer win rate: {}", rate), lambda: None)


def _update_sophia(hp: Hyperparams, g, state: SophiaState, params=None, **extra_args):
    if params is None:
        raise ValueError("scale_by_sophia: update needs params, got None. Call tx.update(grads, state, params).")
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    m = tree.compute_like(mu, g)
    m_hat = tree.bias_correction(m, hp.b1, t) if hp.bias_correction else m  # m^ = m / (1 - b1^t)
    u = jax.tree.map(lambda x, h: _preconditioned(hp, x, h), m_hat, state.nu)  # clip(m^ / max(gamma h, eps))
    if hp.verbose and hp.clip_threshold is not None:
        _print_win_rate(hp, t, u)

    def refresh(hessian_fn_state: Any, nu: Updates) -> tuple:
        h_est, hessian_fn_state = hp.hessian_diagonal_fn.update(g, hessian_fn_state, params, **extra_args)
        return hessian_fn_state, tree.ema(nu, tree.real(h_est), hp.b2)  # h <- b2 h + (1 - b2) h_est

    # Every k-th step from the first (count = 0, k, 2k, ...), after u: the new h serves the next steps.
    hessian_fn_state, nu = jax.lax.cond(
        state.count % hp.update_interval == 0, refresh, lambda s, n: (s, n), state.hessian_fn_state, state.nu
    )
    return tree.cast_like(u, g), SophiaState(count=t, mu=mu, nu=nu, hessian_fn_state=hessian_fn_state)


class _SophiaHyperparams(Hyperparams):
    """Its repr spells clip_threshold=None (no clipping), which a plain repr would leave out (the default is 1.0)."""

    __slots__ = ()

    def __repr__(self) -> str:
        text = super().__repr__()
        return text[:-1] + ", clip_threshold=None)" if self.kwargs["clip_threshold"] is None else text


def scale_by_sophia(
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: Any = HUTCHINSON,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
    *,
    bias_correction: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Sophia's preconditioner (Liu et al., 2023): momentum over a clipped, floored Hessian diagonal.

        m <- b1 m + (1 - b1) g
        m^ = m / (1 - b1^t)
        u  = clip(m^ / max(gamma h, eps), -rho, rho)
        h <- b2 h + (1 - b2) h_est                    (when (t - 1) mod k = 0, after u)

    t counts updates from 1; rho = `clip_threshold` (None: no clipping), k = `update_interval`;
    h_est comes from `hessian_diagonal_fn`, a transformation whose update gets (g, its state,
    params, and this update's keyword arguments): Hutchinson's by default, which needs `obj_fn=`.
    The effective decay of h is 1 - (1 - b2) / k. `update` needs params. Same as optax.contrib's
    `scale_by_sophia` (names, defaults, state fields, the estimate at counts 0, k, 2k, ... after the
    step). Differences, each reachable by an argument:

    - `bias_correction=False` gives the paper's Algorithm 3 and the authors' SophiaG, which divide
      the raw m (optax, following Levanter, divides m^).
    - the authors' SophiaG divides by gamma h + 1e-15 where optax and gradtx take max(gamma h, eps):
      equal for gamma h >> eps (set eps=1e-15); for h < 0, possible with Hutchinson's estimate,
      theirs flips the step's sign and max() does not. Their gamma is rho * bs (the batch size
      times their rho), their h the EMA of the squared gradients of sampled labels (Sophia-G's
      estimator), and their training loop refreshes h after steps k - 1, 2k - 1, ... (a loop's
      choice): with an estimator that returns that square, gamma = rho bs, eps = 1e-15 and
      bias_correction=False give SophiaG's steps (tests/transforms/test_sophia.py).
    - h is stored real and at least float32 (the dtype policy); optax keeps the params' dtype.

    `verbose=True` prints the fraction of unclipped coordinates every `print_win_rate_every_n_steps`
    steps (the authors advise 0.1 to 0.5; raise gamma if lower). `accumulator_dtype` (alias
    `mu_dtype`) sets m's dtype.

    >>> import gradtx
    >>> gradtx.scale_by_sophia(clip_threshold=None)  # doctest: +ELLIPSIS
    scale_by_sophia(b1=0.965, ..., clip_threshold=None)
    """
    builder = "scale_by_sophia"
    check(
        builder, b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, POSITIVE), gamma=(gamma, NONNEG),
        clip_threshold=(clip_threshold, NONNEG + OR_NONE), update_interval=(update_interval, POSITIVE_COUNT),
    )  # fmt: skip
    verbose = check_flag(builder, "verbose", verbose)
    if verbose:
        check(builder, print_win_rate_every_n_steps=(print_win_rate_every_n_steps, POSITIVE_COUNT))
    check_members(builder, (hessian_diagonal_fn,))
    dtype = first_moment_dtype(builder, mu_dtype, accumulator_dtype)
    hp = _SophiaHyperparams(
        builder, (),
        dict(
            b1=b1, b2=b2, eps=eps, gamma=gamma, clip_threshold=clip_threshold, update_interval=update_interval,
            hessian_diagonal_fn=with_extra_args_support(hessian_diagonal_fn), accumulator_dtype=dtype,
            verbose=verbose, print_win_rate_every_n_steps=print_win_rate_every_n_steps,
            bias_correction=check_flag(builder, "bias_correction", bias_correction),
        ),
    )  # fmt: skip
    return GradientTransformationExtraArgs(
        InitFn(_init_sophia, hp), ExtraArgsUpdateFn(_update_sophia, hp, _init_sophia)
    )


# ---------------------------------------------------------------------------------------------------
# Optimizer


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    weight_decay_mask: Any = None,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: Any = HUTCHINSON,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
    *,
    bias_correction: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Sophia (Liu et al., 2023): `chain(scale_by_sophia(...), add_decayed_weights(weight_decay,
    weight_decay_mask), scale_by_learning_rate(learning_rate))`, optax.contrib's.

    W <- W - eta (clip(m^ / max(gamma h, eps), -rho, rho) + lambda W): decoupled weight decay, as the
    paper's Algorithm 3 and the authors' SophiaG (W <- (1 - eta lambda) W first). See
    `scale_by_sophia` for the arguments, the estimator (Hutchinson's needs `obj_fn=` in every
    update: `tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))`) and the differences
    from the authors' code. optax's defaults; the authors' SophiaG uses weight_decay=0.1.

    >>> import gradtx
    >>> gradtx.sophia(1e-3)  # doctest: +ELLIPSIS
    chain(scale_by_sophia(b1=0.965, b2=0.99, eps=1e-08, gamma=0.01, ...), add_decayed_weights(weight_decay=0.0001), ...)
    """
    check("sophia", learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + SCHEDULE))
    with arguments_of("sophia"):
        return chain(
            scale_by_sophia(
                b1, b2, eps, gamma, clip_threshold, update_interval, hessian_diagonal_fn, mu_dtype, verbose,
                print_win_rate_every_n_steps, bias_correction=bias_correction, accumulator_dtype=accumulator_dtype,
            ),
            add_decayed_weights(weight_decay, weight_decay_mask),
            scale_by_learning_rate(learning_rate),
        )  # fmt: skip


__all__ = [
    "HutchinsonState", "SophiaState", "hutchinson_estimator_diag_hessian", "scale_by_sophia", "sophia",
]  # fmt: skip
