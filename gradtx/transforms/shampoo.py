"""Shampoo: Kronecker-factored preconditioning of each matrix (Gupta et al., 2018; Anil et al., 2020).

    scale_by_shampoo   per block G of a matrix:  L <- b2 L + w G G^T,  R <- b2 R + w G^T G  (w = 1 - b2, 1 if b2 = 1)
                       L^ = (L + eps lambda_max(L) I)^(-1/e),  R^ = (R + eps lambda_max(R) I)^(-1/e)
                       P = L^ G R^;  grafting: P <- (||D|| / ||P||) P      (D: the grafting direction)
                       m <- b1 m + u,  u = P     (u = D before start_preconditioning_step)
                       Nesterov: u + b1 m
    shampoo            chain(scale_by_shampoo, add_decayed_weights, scale_by_learning_rate)

Each leaf of two or more axes is a matrix (its leading axes merged: (prod(shape[:-1]), shape[-1])),
cut into blocks of at most `block_size` rows and columns, each with its own factors L and R; 1-D and
scalar leaves take the grafting direction alone. The blocks are zero-padded to equal sizes so that one
vmapped `eigh` computes every root of a leaf: a padded row or column of G adds nothing to the real
block's factors (L stays block-diagonal) and its part of P is zero.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import (
    LEARNING_RATE,
    MOMENTUM,
    NONNEG,
    POSITIVE_COUNT,
    UNIT,
    ArgumentValueError,
    arguments_of,
    check,
    check_flag,
)
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.muon import _explicit_sharding
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate

GRAFTINGS = ("adam", "adagrad", "sgd", None)


class ShampooState(NamedTuple):
    """count: steps taken (int32); mu: the momentum m; nu: the grafting optimizer's second moment
    (Adam's EMA, Adagrad's sum; zeros for "sgd" and None); stats: (L, R) per leaf, each
    (blocks, size, size), None for 1-D and scalar leaves; roots: (L^, R^), likewise."""

    count: Count
    mu: Updates
    nu: Updates
    stats: Any
    roots: Any


# ---------------------------------------------------------------------------------------------------
# Blocks


def layout(shape: tuple[int, ...], block_size: int) -> tuple[int, int, int, int] | None:
    """(row blocks, rows a block, column blocks, columns a block) of a leaf, or None for 1-D and scalars."""
    if len(shape) < 2:
        return None
    m, n = math.prod(shape[:-1]), shape[-1]
    if m == 0 or n == 0:
        return None
    bm, bn = min(m, block_size), min(n, block_size)
    return -(-m // bm), bm, -(-n // bn), bn


def to_blocks(x: jax.Array, lay: tuple[int, int, int, int]) -> jax.Array:
    """The leaf as (blocks, rows, columns), zero-padded to whole blocks, row blocks major."""
    km, bm, kn, bn = lay
    x = x.reshape(-1, x.shape[-1])
    x = jnp.pad(x, ((0, km * bm - x.shape[0]), (0, kn * bn - x.shape[1])))
    return x.reshape(km, bm, kn, bn).transpose(0, 2, 1, 3).reshape(km * kn, bm, bn)


def from_blocks(b: jax.Array, lay: tuple[int, int, int, int], shape: tuple[int, ...]) -> jax.Array:
    km, bm, kn, bn = lay
    x = b.reshape(km, kn, bm, bn).transpose(0, 2, 1, 3).reshape(km * bm, kn * bn)
    return x[: math.prod(shape[:-1]), : shape[-1]].reshape(shape)


def inverse_root(a: jax.Array, exponent: float, eps: float) -> jax.Array:
    """(A + eps max(eig A) I)^(-1/exponent) for a symmetric positive semidefinite A, by eigh."""
    w, v = jnp.linalg.eigh(a)  # a Hermitian factor of complex params: real w, unitary v
    w = jnp.maximum(w, 0.0)  # rounding can make a zero eigenvalue slightly negative
    w = w + eps * jnp.max(w)  # epsilon relative to the largest eigenvalue (Distributed Shampoo's matrix_epsilon)
    inv = jnp.where(w > 0, w, 1.0) ** (-1.0 / exponent)
    inv = jnp.where(w > 0, inv, 0.0)  # an all-zero factor (no gradient yet): a zero root, a zero update
    return (v * inv.astype(v.dtype)) @ jnp.conj(v).T


# ---------------------------------------------------------------------------------------------------
# The transformation


def _init(hp: Hyperparams, params) -> ShampooState:
    def factors(x):
        lay = layout(jnp.shape(x), hp.block_size)
        dt = tree.compute_dtype(jnp.result_type(x))
        if lay is None:
            return None
        km, bm, kn, bn = lay
        return jnp.zeros((km * kn, bm, bm), dt), jnp.zeros((km * kn, bn, bn), dt)

    stats = jax.tree.map(factors, params)
    return ShampooState(zero_count(), tree.zeros_like(params), tree.second_moment_like(params), stats, stats)


def _graft(hp: Hyperparams, g: jax.Array, nu: jax.Array, t: Count) -> tuple[jax.Array, jax.Array]:
    """(the grafting direction D, the new second moment)."""
    sq = tree.abs_sq(g)  # |g|^2, real for complex g
    if hp.grafting == "adam":  # nu <- b2 nu + (1 - b2) g^2;  D = g / (sqrt(nu / (1 - b2^t)) + graft_eps)
        nu = tree.ema(nu, sq, hp.b2)
        return tree.div_sqrt(g, tree.bias_correction(nu, hp.b2, t), hp.graft_eps), nu
    if hp.grafting == "adagrad":  # nu <- nu + g^2;  D = g / (sqrt(nu) + graft_eps)
        nu = nu + sq
        return tree.div_sqrt(g, nu, hp.graft_eps), nu
    return g, nu  # "sgd" and None: D = g


def _norm(b: jax.Array) -> jax.Array:
    """The Frobenius norm of each block, with a zero (not NaN) derivative at a zero block."""
    n2 = jnp.sum(tree.abs_sq(b), axis=(1, 2))
    return jnp.where(n2 > 0, jnp.sqrt(jnp.where(n2 > 0, n2, 1.0)), 0.0)


def _precondition(hp: Hyperparams, g, d, stats, roots, t: Count, lay: tuple[int, int, int, int]):
    """(the update of a matrix leaf, its new (L, R), its new roots)."""
    blocks = to_blocks(g, lay)
    w = 1.0 if hp.b2 == 1.0 else 1 - hp.b2
    cb = jnp.conj(blocks)  # complex params: Hermitian factors G G^H and G^H G
    left = hp.b2 * stats[0] + w * jnp.einsum("bij,bkj->bik", blocks, cb)  # L <- b2 L + w G G^T
    right = hp.b2 * stats[1] + w * jnp.einsum("bji,bjk->bik", cb, blocks)  # R <- b2 R + w G^T G
    e = hp.inverse_exponent_override or 4.0  # two factors: L^(-1/4) G R^(-1/4)

    def recompute(_):
        root = jax.vmap(lambda a: inverse_root(a, e, hp.eps))
        return root(left), root(right)

    due = (t % hp.precondition_frequency == 0) | (t == 1)  # the first step too: no root is kept yet
    # The roots are constants of the update, as in Distributed Shampoo: no derivative flows through
    # eigh, whose derivative at repeated eigenvalues (a zero or rank-deficient factor) is infinite.
    roots = jax.lax.stop_gradient(jax.lax.cond(due, recompute, lambda _: roots, None))
    p = roots[0] @ blocks @ roots[1]  # P = L^ G R^
    if hp.grafting is not None:  # P <- (||D|| / ||P||) P, block by block
        db = to_blocks(d, lay)
        dn, pn = _norm(db), _norm(p)
        p = p * jnp.where(pn > 0, dn / jnp.where(pn > 0, pn, 1.0), 0.0)[:, None, None].astype(p.dtype)
    u = jnp.where(t >= hp.start_preconditioning_step, from_blocks(p, lay, g.shape), d)
    return u, (left, right), roots


def _update(hp: Hyperparams, updates, state: ShampooState, params=None):
    require_leaves("scale_by_shampoo", updates)  # each matrix is a leaf: a packed buffer is none
    t = next_count(state.count)
    g = tree.compute_like(updates, updates)
    flat, treedef_ = jax.tree_util.tree_flatten(g)
    treedef: Any = treedef_  # PyTreeDef's stubs lack flatten_up_to
    nus, mus = treedef.flatten_up_to(state.nu), treedef.flatten_up_to(state.mu)
    stats, roots = treedef.flatten_up_to(state.stats), treedef.flatten_up_to(state.roots)
    out = []
    for x, nu, mu, s, r in zip(flat, nus, mus, stats, roots, strict=True):
        d, nu = _graft(hp, x, nu, t)
        lay = layout(x.shape, hp.block_size)
        if lay is None:
            u = d
        else:  # on an Explicit mesh, gathered (every device holds the matrix, as for Muon) and resharded
            sharding = _explicit_sharding(x)
            if sharding is not None:
                whole = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
                x, d = jax.sharding.reshard(x, whole), jax.sharding.reshard(d, whole)
            u, s, r = _precondition(hp, x, d, s, r, t, lay)
            u = u if sharding is None else jax.sharding.reshard(u, sharding)
        mu = hp.b1 * mu.astype(x.dtype) + u  # m <- b1 m + u
        u = u + hp.b1 * mu if hp.nesterov else mu  # Nesterov: u + b1 m
        out.append((u, nu, mu, s, r))
    if not out:
        return updates, state._replace(count=t)
    u, nu, mu, s, r = (jax.tree_util.tree_unflatten(treedef, list(c)) for c in zip(*out, strict=True))
    state = ShampooState(t, tree.cast_like(mu, state.mu), tree.cast_like(nu, state.nu), s, r)
    return tree.cast_like(u, updates), state


def _shampoo_arguments(builder: str, kwargs: dict) -> None:
    check(
        builder, b1=(kwargs["b1"], UNIT), b2=(kwargs["b2"], MOMENTUM), eps=(kwargs["eps"], NONNEG),
        graft_eps=(kwargs["graft_eps"], NONNEG), block_size=(kwargs["block_size"], POSITIVE_COUNT),
        precondition_frequency=(kwargs["precondition_frequency"], POSITIVE_COUNT),
        start_preconditioning_step=(kwargs["start_preconditioning_step"], POSITIVE_COUNT),
        inverse_exponent_override=(kwargs["inverse_exponent_override"], NONNEG),
    )  # fmt: skip
    check_flag(builder, "nesterov", kwargs["nesterov"])
    if kwargs["grafting"] not in GRAFTINGS:
        raise ArgumentValueError(builder, "grafting", f"must be one of {GRAFTINGS}, got {kwargs['grafting']!r}")
    if kwargs["grafting"] == "adam" and kwargs["b2"] == 1.0:
        raise ArgumentValueError(builder, "b2", "must be in [0, 1) with grafting='adam' (its bias correction), got 1.0")


def scale_by_shampoo(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    *,
    block_size: int = 128,
    precondition_frequency: int = 1,
    start_preconditioning_step: int = 1,
    inverse_exponent_override: float = 0.0,
    grafting: str | None = "adam",
    graft_eps: float = 1e-8,
    nesterov: bool = True,
) -> GradientTransformation:
    """Shampoo's direction, blocked and grafted as Distributed Shampoo (Anil et al., 2020).

        G = a block of a leaf (at most block_size x block_size)
        L <- b2 L + w G G^T,  R <- b2 R + w G^T G              (w = 1 - b2; b2 = 1: w = 1, sums)
        L^ = (L + eps lambda_max(L) I)^(-1/e),  R^ likewise     (eigh; e = 4, or inverse_exponent_override)
        P = L^ G R^
        D = g / (sqrt(nu / (1 - b2^t)) + graft_eps)  (adam),  g / (sqrt(sum g^2) + graft_eps)  (adagrad),  g  (sgd)
        P <- (||D|| / ||P||) P                                  (per block; grafting=None: P as is)
        u = P once t >= start_preconditioning_step, else D
        m <- b1 m + u;  out = u + b1 m (Nesterov) or m

    The roots are recomputed every `precondition_frequency` steps (and at step 1) under `lax.cond`;
    the state keeps them between. 1-D and scalar leaves, which have no Kronecker factors, take D.

    Differences from Distributed Shampoo (google-research/scalable_shampoo, the AlgoPerf v0.5
    baseline), and why: the inverse roots come from `jnp.linalg.eigh` in place of the coupled
    Newton iteration (exact to rounding, and the same on every backend); the blocks are
    zero-padded to equal sizes (one vmapped eigh a leaf; the padding adds nothing); leaves are
    merged to (prod(shape[:-1]), shape[-1]) in place of the "best effort" merge of small axes;
    Adam grafting is bias-corrected (its RMSProp graft is not); the second moment is not
    shared between the roots and the graft; weight decay is decoupled (`shampoo` adds it after
    the momentum; Distributed Shampoo's default adds it to the update before the momentum).

    References: Gupta, Koren & Singer (2018), "Shampoo: Preconditioned Stochastic Tensor
    Optimization", arXiv:1802.09568; Anil, Gupta, Koren, Regan & Singer (2020), "Scalable Second
    Order Optimization for Deep Learning", arXiv:2002.09018.

    >>> import gradtx
    >>> gradtx.scale_by_shampoo(block_size=64)
    scale_by_shampoo(b1=0.9, b2=0.999, eps=1e-06, block_size=64, precondition_frequency=1, start_preconditioning_step=1,
                     inverse_exponent_override=0.0, grafting='adam', graft_eps=1e-08, nesterov=True)
    """
    kwargs = dict(locals())
    _shampoo_arguments("scale_by_shampoo", kwargs)
    return transformation("scale_by_shampoo", _init, _update, **kwargs)


def shampoo(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    block_size: int = 128,
    precondition_frequency: int = 1,
    start_preconditioning_step: int = 1,
    inverse_exponent_override: float = 0.0,
    grafting: str | None = "adam",
    graft_eps: float = 1e-8,
    nesterov: bool = True,
) -> GradientTransformation:
    """Shampoo (Gupta et al., 2018) as Distributed Shampoo (Anil et al., 2020), with decoupled weight decay.

        chain(scale_by_shampoo(b1, b2, eps, ...), add_decayed_weights(weight_decay), scale_by_learning_rate(lr))

    W <- W - lr (out + weight_decay W); see `scale_by_shampoo` for `out`.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.shampoo(1e-2)
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> updates["w"].shape, updates["b"].shape
    ((3, 4), (4,))
    """
    check("shampoo", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("shampoo", {}):
        return chain(
            scale_by_shampoo(
                b1, b2, eps, block_size=block_size, precondition_frequency=precondition_frequency,
                start_preconditioning_step=start_preconditioning_step,
                inverse_exponent_override=inverse_exponent_override, grafting=grafting, graft_eps=graft_eps,
                nesterov=nesterov,
            ),
            add_decayed_weights(weight_decay),
            scale_by_learning_rate(learning_rate),
        )  # fmt: skip
