"""DoG and DoWG: SGD whose step is the distance travelled over the root of the gradients' sum of squares.

    scale_by_dog    r_bar <- max(r_bar, ||x - x_0||);  G <- G + ||g||^2;  u = r_bar / sqrt(G + eps) g
    scale_by_dowg   r^2 <- max(r^2, ||x - x_0||^2);   v <- v + r^2 ||g||^2;  u = r^2 / (sqrt(v) + eps) g

    dog, dowg       chain(add_decayed_weights or identity, scale_by_dog / scale_by_dowg, scale_by_learning_rate)

Both are parameter-free: the step grows with the distance from the initial params (the state
keeps them) and shrinks with the accumulated gradient norms. Norms are global, over all leaves.
The scalars of the state are in the params' widest compute dtype (float32 for bfloat16 params,
float64 for float64 ones); optax keeps them in the params' narrowest dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    GradientTransformation,
    Hyperparams,
    Params,
    ScalarOrSchedule,
    identity,
    transformation,
)
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE,
    ArgumentTypeError,
    arguments_of,
    check,
    require_params,
)
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

INIT_STEPS = ("distance", "learning_rate", "heuristic")


def scalar_dtype(params: Params) -> np.dtype:
    """The dtype of a state's scalars: the params' widest real compute dtype (float32 for none)."""
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(params)]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def sqrt0(x: jax.Array) -> jax.Array:
    """sqrt(x) for x >= 0 whose derivative at 0 is 0, not inf (so jax.grad through an update at zero
    gradients stays finite); NaN stays NaN."""
    zero = x == 0
    return jnp.where(zero, jnp.zeros_like(x), jnp.sqrt(jnp.where(zero, jnp.ones_like(x), x)))


# ---------------------------------------------------------------------------------------------------
# DoG


class DoGState(NamedTuple):
    """is_init_step: whether no update was made yet (bool); init_params: x_0; max_dist: r_bar, the
    largest ||x - x_0|| so far (r_eps before the first step); sum_sq_norm_grads: G, the sum of ||g||^2."""

    is_init_step: jax.Array
    init_params: Params
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


def _init_dog(hp: Hyperparams, params) -> DoGState:
    kind, value = hp.init_step
    dtype = scalar_dtype(params)
    if kind == "distance":
        r_eps = jnp.asarray(value, dtype)  # r_eps given
    elif kind == "heuristic":
        r_eps = jnp.asarray(value, dtype) * (1 + tree.norm(params).astype(dtype))  # r_eps = alpha (1 + ||x_0||)
    else:
        r_eps = jnp.zeros([], dtype)  # the first step is eta_0 = value instead
    return DoGState(
        is_init_step=jnp.asarray(True),
        init_params=jax.tree.map(jnp.copy, params),
        max_dist=r_eps,
        sum_sq_norm_grads=jnp.zeros([], dtype),
    )


def _update_dog(hp: Hyperparams, g, state: DoGState, params=None):
    params = require_params("scale_by_dog", params)
    dtype = state.max_dist.dtype
    dist = sqrt0(tree.sum_sq(tree.sub(params, state.init_params)).astype(dtype))  # ||x - x_0||
    max_dist = jnp.maximum(state.max_dist, dist)  # r_bar <- max(r_bar, ||x - x_0||)
    sum_sq = state.sum_sq_norm_grads + tree.sum_sq(g).astype(dtype)  # G <- G + ||g||^2
    eta = max_dist / jnp.sqrt(sum_sq + hp.eps)  # eta = r_bar / sqrt(G + eps)
    if hp.init_step[0] == "learning_rate":
        eta = jnp.where(state.is_init_step, jnp.asarray(hp.init_step[1], dtype), eta)  # eta_0 given
    return tree.scale(eta, g), DoGState(
        is_init_step=jnp.asarray(False), init_params=state.init_params, max_dist=max_dist, sum_sq_norm_grads=sum_sq
    )


def _check_init_step(builder: str, init_step: Any) -> tuple[str, Any]:
    if not (isinstance(init_step, tuple | list) and len(init_step) == 2 and init_step[0] in INIT_STEPS):
        raise ArgumentTypeError(
            builder, "init_step", f"must be a pair (kind, value) with kind one of {INIT_STEPS}, got {init_step!r}"
        )
    check(builder, init_step=(init_step[1], POSITIVE))  # r_eps = 0 or eta_0 = 0 never moves
    return (init_step[0], init_step[1])


def scale_by_dog(init_step: tuple[str, float] = ("heuristic", 1e-6), eps: float = 1e-8) -> GradientTransformation:
    """DoG's step size (Ivgi et al., 2023, "DoG is SGD's Best Friend"): distance over gradients.

        r_bar <- max(r_bar, ||x - x_0||)        (r_bar starts at r_eps)
        G     <- G + ||g||^2
        eta   = r_bar / sqrt(G + eps)
        u     = eta g

    `init_step` = (kind, value): ("distance", r_eps) sets r_eps; ("heuristic", alpha) sets
    r_eps = alpha (1 + ||x_0||), the paper's choice (alpha = 1e-6, or 1e-4 with batch norm), so
    `init` must see the real params; ("learning_rate", eta_0) makes the first step eta_0 g and r_eps
    = 0. `eps` > 0 (G + eps is 0 at a zero first gradient otherwise). `update` needs params.
    Same as optax.contrib's (which requires init_step; the default here is dog's) and, with
    `scale_by_learning_rate(1)` after it, the authors' `dog.DoG(reps_rel=alpha)`.

    >>> import gradtx
    >>> gradtx.scale_by_dog()
    scale_by_dog(init_step=('heuristic', 1e-06), eps=1e-08)
    """
    init_step = _check_init_step("scale_by_dog", init_step)
    check("scale_by_dog", eps=(eps, POSITIVE))  # G = 0 at a zero first gradient
    return transformation("scale_by_dog", _init_dog, _update_dog, init_step=init_step, eps=eps)


# ---------------------------------------------------------------------------------------------------
# DoWG


class DoWGState(NamedTuple):
    """init_params: x_0; weighted_sq_norm_grads: v, the sum of r^2 ||g||^2; estim_sq_dist: r^2, the
    largest ||x - x_0||^2 so far (its initial guess before the first step)."""

    init_params: Params
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


def _init_dowg(hp: Hyperparams, params) -> DoWGState:
    dtype = scalar_dtype(params)
    guess = hp.eps if hp.init_estim_sq_dist is None else hp.init_estim_sq_dist
    return DoWGState(
        init_params=jax.tree.map(jnp.copy, params),
        weighted_sq_norm_grads=jnp.zeros([], dtype),
        estim_sq_dist=jnp.asarray(guess, dtype),
    )


def _update_dowg(hp: Hyperparams, g, state: DoWGState, params=None):
    params = require_params("scale_by_dowg", params)
    dtype = state.estim_sq_dist.dtype
    sq_dist = tree.sum_sq(tree.sub(params, state.init_params)).astype(dtype)  # ||x - x_0||^2
    estim = jnp.maximum(state.estim_sq_dist, sq_dist)  # r^2 <- max(r^2, ||x - x_0||^2)
    v = state.weighted_sq_norm_grads + estim * tree.sum_sq(g).astype(dtype)  # v <- v + r^2 ||g||^2
    eta = estim / (sqrt0(v) + hp.eps)  # eta = r^2 / (sqrt(v) + eps)
    return tree.scale(eta, g), DoWGState(init_params=state.init_params, weighted_sq_norm_grads=v, estim_sq_dist=estim)


def scale_by_dowg(init_estim_sq_dist: float | None = None, eps: float = 1e-4) -> GradientTransformation:
    """DoWG's step size (Khaled et al., 2023, "DoWG Unleashed"): distance over weighted gradients.

        r^2 <- max(r^2, ||x - x_0||^2)          (r^2 starts at init_estim_sq_dist)
        v   <- v + r^2 ||g||^2
        eta = r^2 / (sqrt(v) + eps)
        u   = eta g

    `init_estim_sq_dist`: the initial guess of the squared distance to the solution; None means
    `eps`. `update` needs params. Same as optax.contrib's `scale_by_dowg`.

    >>> import gradtx
    >>> gradtx.scale_by_dowg()
    scale_by_dowg(eps=0.0001)
    """
    check("scale_by_dowg", init_estim_sq_dist=(init_estim_sq_dist, "(0, inf)" + OR_NONE), eps=(eps, POSITIVE))
    return transformation("scale_by_dowg", _init_dowg, _update_dowg, init_estim_sq_dist=init_estim_sq_dist, eps=eps)


# ---------------------------------------------------------------------------------------------------
# Optimizers


def _decay(weight_decay: float | None, mask: Any) -> GradientTransformation:
    return identity() if weight_decay is None else add_decayed_weights(weight_decay, mask)


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, float] = ("heuristic", 1e-6),
    eps: float = 1e-8,
    weight_decay: float | None = None,
    mask: Any | Callable[[Params], Any] | None = None,
) -> GradientTransformation:
    """DoG (Ivgi et al., 2023): `chain(add_decayed_weights(weight_decay, mask), scale_by_dog(init_step, eps),
    scale_by_learning_rate(learning_rate))`.

        x <- x - c eta g,   eta = r_bar / sqrt(G + eps)        (see `scale_by_dog`; c = learning_rate)

    `weight_decay` None (the default) adds no decay: the chain starts with `identity()`. The
    authors recommend iterate averaging with it and keeping c = 1. Same as optax.contrib.dog and
    the authors' `dog.DoG(lr=c, reps_rel=alpha, weight_decay=weight_decay)`.

    >>> import gradtx
    >>> gradtx.dog()
    chain(identity(), scale_by_dog(init_step=('heuristic', 1e-06), eps=1e-08),
          scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    check("dog", learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE))
    with arguments_of("dog"):
        return chain(_decay(weight_decay, mask), scale_by_dog(init_step, eps), scale_by_learning_rate(learning_rate))


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: float | None = None,
    eps: float = 1e-4,
    weight_decay: float | None = None,
    mask: Any | Callable[[Params], Any] | None = None,
) -> GradientTransformation:
    """DoWG (Khaled et al., 2023): `chain(add_decayed_weights(weight_decay, mask),
    scale_by_dowg(init_estim_sq_dist, eps), scale_by_learning_rate(learning_rate))`.

        x <- x - c eta g,   eta = r^2 / (sqrt(v) + eps)        (see `scale_by_dowg`; c = learning_rate)

    `weight_decay` None (the default) adds no decay. Same as optax.contrib.dowg.

    >>> import gradtx
    >>> gradtx.dowg()
    chain(identity(), scale_by_dowg(eps=0.0001), scale_by_learning_rate(learning_rate=1.0, flip_sign=True))
    """
    check("dowg", learning_rate=(learning_rate, LEARNING_RATE), weight_decay=(weight_decay, NONNEG + OR_NONE))
    with arguments_of("dowg"):
        return chain(
            _decay(weight_decay, mask),
            scale_by_dowg(init_estim_sq_dist, eps),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["DoGState", "DoWGState", "dog", "dowg", "scale_by_dog", "scale_by_dowg"]
