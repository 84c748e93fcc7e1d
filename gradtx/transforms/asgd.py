"""ASGD: SGD with a step size that decays as a power of the step count, and a running average of
the iterates (Polyak & Juditsky, 1992), exactly as torch.optim.ASGD computes it.

    eta_k = lr / (1 + lambd lr k)^alpha          mu_k = 1 / max(1, k - t0)        (k = steps taken)
    W_{k+1} = W_k - eta_k (g + (lambd + weight_decay) W_k)
    ax <- ax + mu_k (W_{k+1} - ax)               (ax = W_{k+1} while mu_k = 1, i.e. while k <= t0 + 1)

`ax`, the averaged parameters, lives in the state: `asgd_averaged_params(state)` returns it for
evaluation, and a checkpoint of the optimizer state keeps it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    OptState,
    Params,
    Updates,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import NONNEG, check, require_params


class AsgdState(NamedTuple):
    """count: updates applied, k (int32); ax: the averaged parameters (torch's name), in the params'
    compute dtype (at least float32: an average over many steps moves by less than bfloat16 resolves)."""

    count: Count
    ax: Updates


def _init_asgd(hp: Hyperparams, params) -> AsgdState:
    # Before any step the average is W_0 itself (torch starts ax at 0 and overwrites it at step 1).
    ax = jax.tree.map(lambda p: p.astype(tree.compute_dtype(p.dtype)), params)
    return AsgdState(count=zero_count(), ax=ax)


def _schedules(hp: Hyperparams, k: jax.Array, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """(eta_k, mu_k) in `dtype`, as torch computes them after step k."""
    k = k.astype(dtype)
    lr, lambd = jnp.asarray(hp.learning_rate).astype(dtype), jnp.asarray(hp.lambd).astype(dtype)
    eta = lr / (1 + lambd * lr * k) ** jnp.asarray(hp.alpha).astype(dtype)  # eta_k = lr / (1 + lambd lr k)^alpha
    mu = 1 / jnp.maximum(1, k - jnp.asarray(hp.t0).astype(dtype))  # mu_k = 1 / max(1, k - t0)
    return eta, mu


def _update_leaf(hp: Hyperparams, k: jax.Array, g: jax.Array, w: jax.Array, ax: jax.Array) -> tuple:
    dtype = tree.real_dtype(tree.compute_dtype(g.dtype))
    eta, mu = _schedules(hp, k, dtype)
    w32 = tree.compute_like(w, g)
    d = tree.add_scale(tree.compute_like(g, g), hp.lambd + hp.weight_decay, w32)  # g + (lambd + wd) W
    u = -eta.astype(d.dtype) * d  # u = -eta_k (g + (lambd + wd) W)
    w_next = (w32 + u).astype(ax.dtype)  # W_{k+1} = W_k + u
    ax = jnp.where(mu == 1, w_next, ax + mu.astype(ax.dtype) * (w_next - ax))  # ax <- ax + mu_k (W_{k+1} - ax)
    return u.astype(g.dtype), ax


def _update_asgd(hp: Hyperparams, g, state: AsgdState, params=None):
    params = require_params("asgd", params)
    out = jax.tree.map(lambda g_, w, ax: _update_leaf(hp, state.count, g_, w, ax), g, params, state.ax)
    u = jax.tree.map(lambda _, o: o[0], g, out)
    ax = jax.tree.map(lambda _, o: o[1], g, out)
    return u, AsgdState(count=next_count(state.count), ax=ax)


def asgd(
    learning_rate: float, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0
) -> GradientTransformation:
    """Averaged SGD, torch.optim.ASGD(lr=learning_rate, lambd, alpha, t0, weight_decay) exactly.

        eta_k = lr / (1 + lambd lr k)^alpha,   mu_k = 1 / max(1, k - t0)     (k = updates already applied)
        u     = -eta_k (g + (lambd + weight_decay) W)                       (torch: W (1 - lambd eta) - eta (g + wd W))
        ax   <- ax + mu_k (W + u - ax)                                       (ax = W + u while mu_k = 1)

    For an integer t0, ax after k > t0 + 1 updates is the mean of the iterates W_{t0+2}, ..., W_k
    (W_j: the params after j updates; Polyak & Juditsky, 1992); before, it is the last iterate.
    Read it with `asgd_averaged_params(state)` to evaluate the model (the parameters themselves
    follow the SGD iterates), and keep it by checkpointing the state. asgd is one transformation,
    not a chain: the average needs the parameters after the update, so it must come last in a
    chain (clipping may precede it). `update` needs params. Before the first step the average is
    the initial parameters (torch holds zeros there). torch's default learning rate is 1e-2; the
    learning rate is a number (it shapes the schedule eta_k), not a schedule. Not in optax.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.asgd(0.1, t0=0)
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> for _ in range(3):
    ...     updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    ...     params = gradtx.apply_updates(params, updates)
    >>> gradtx.asgd_averaged_params(state)["w"].shape
    (2,)
    """
    check(
        "asgd",
        learning_rate=(learning_rate, NONNEG), lambd=(lambd, NONNEG), alpha=(alpha, NONNEG), t0=(t0, NONNEG),
        weight_decay=(weight_decay, NONNEG),
    )  # fmt: skip
    return transformation(
        "asgd", _init_asgd, _update_asgd,
        learning_rate=learning_rate, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
    )  # fmt: skip


def _is_asgd_state(x: Any) -> bool:
    return isinstance(x, AsgdState)


def asgd_averaged_params(state: OptState) -> Params:
    """The averaged parameters ax of the one `asgd` inside an optimizer state (chain, MultiSteps,
    inject_hyperparams, masked, ... states are searched): the model to evaluate and to export.

    Inside `masked`, the leaves the mask leaves out are `MaskedNode` nodes (they were not averaged).

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.asgd(0.1))
    >>> gradtx.asgd_averaged_params(tx.init({"w": jnp.ones(2, jnp.float32)}))
    {'w': Array([1., 1.], dtype=float32)}
    """
    found = [s for s in jax.tree.leaves(state, is_leaf=_is_asgd_state) if isinstance(s, AsgdState)]
    if len(found) != 1:
        raise ValueError(
            f"asgd_averaged_params: the state holds {len(found)} asgd states, expected one. Pass the state"
            " of an optimizer with one gradtx.asgd in it (or that asgd's own AsgdState)."
        )
    return found[0].ax


__all__ = ["AsgdState", "asgd", "asgd_averaged_params"]
