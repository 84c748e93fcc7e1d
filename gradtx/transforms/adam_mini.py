"""Adam-mini (Zhang et al., 2024): Adam with one second-moment value per block of each leaf.

    scale_by_adam_mini   v_b <- b2 v_b + (1 - b2) mean(g_b^2);  u_b = m_b^ / (sqrt(v_b^) + eps)
    adam_mini            chain(scale_by_adam_mini, add_decayed_weights, scale_by_learning_rate)
    adam_mini_blocks     the authors' partition, from the params' key-path names

A leaf's blocks are `k` equal, contiguous pieces of the leaf flattened in row-major order: k = 1
is one value for the leaf (the authors' norms), k = the leading dimension one value per output
neuron of an (out, in) weight, k = n_heads one per attention head of a query or key weight
(its rows are the heads' rows, head after head), k = size Adam itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Bound,
    Count,
    GradientTransformation,
    Hyperparams,
    ScalarOrSchedule,
    Updates,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import LEARNING_RATE, NONNEG, UNIT, arguments_of, check, first_moment_dtype
from gradtx.combine import chain
from gradtx.packing import require_leaves
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


class ScaleByAdamMiniState(NamedTuple):
    """count: updates applied (int32); mu: first moment m (as the params); nu: one second moment per
    block, each leaf's a vector of its k blocks (real)."""

    count: Count
    mu: Updates
    nu: Updates


def _blocks_of(hp: Hyperparams, params: Any) -> Any:
    """The number of blocks of each leaf: `hp.blocks` (a tree or a function of the params), or 1."""
    blocks = hp.blocks
    if blocks is None:
        return jax.tree.map(lambda _: 1, params)
    if callable(blocks):
        blocks = blocks(params)
    return jax.tree.map(lambda k, sub: jax.tree.map(lambda _: k, sub), blocks, params)


def _check_blocks(blocks: Any, params: Any) -> None:
    for (path, x), k in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(blocks), strict=True):
        if not (isinstance(k, int) and k >= 1 and jnp.size(x) % k == 0):
            raise ValueError(
                f"scale_by_adam_mini: blocks{jax.tree_util.keystr(path)} must be a positive integer that divides the"
                f" leaf's size {jnp.size(x)} (shape {jnp.shape(x)}), got {k!r}"
            )


def _block_mean_sq(g: jax.Array, k: int) -> jax.Array:
    """mean of |g|^2 over each of the k contiguous blocks of g flattened (real, in g's compute dtype)."""
    g32 = g.astype(tree.compute_dtype(g.dtype))
    sq = tree.abs_sq(g32).reshape(k, -1)
    return jnp.sum(sq, axis=1) / max(sq.shape[1], 1)  # an empty leaf's blocks hold 0, not 0 / 0


def _per_element(v: jax.Array, like: jax.Array) -> jax.Array:
    """Each block's value repeated over the block's elements, in the shape of `like`."""
    k = v.shape[0]
    return jnp.broadcast_to(v[:, None], (k, jnp.size(like) // k)).reshape(jnp.shape(like))


def _init_adam_mini(hp: Hyperparams, params) -> ScaleByAdamMiniState:
    blocks = _blocks_of(hp, params)
    _check_blocks(blocks, params)
    real = lambda x: tree.second_moment_like(x)  # real, at least float32
    nu = jax.tree.map(lambda x, k: jnp.zeros((k,), real(x).dtype), params, blocks)
    return ScaleByAdamMiniState(count=zero_count(), mu=tree.first_moment_like(params, hp.accumulator_dtype), nu=nu)


def _update_adam_mini(hp: Hyperparams, g, state: ScaleByAdamMiniState, params=None):
    require_leaves("scale_by_adam_mini", g)  # blocks of a leaf: packing would merge the leaves
    t = next_count(state.count)
    ks = jax.tree.map(lambda v: v.shape[0], state.nu)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, jax.tree.map(_block_mean_sq, g, ks), hp.b2)  # v_b <- b2 v_b + (1 - b2) mean_b g^2
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^_b = v_b / (1 - b2^t)

    # u = m^ / (sqrt(v^_b) + eps), v^_b over its block (div_sqrt: finite derivatives at v = 0)
    u = tree.div_sqrt(m_hat, jax.tree.map(_per_element, v_hat, m_hat), hp.eps)
    return tree.cast_like(u, g), ScaleByAdamMiniState(count=t, mu=mu, nu=nu)


def scale_by_adam_mini(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    *,
    blocks: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam-mini's preconditioner (Zhang et al., 2024, Alg. 1): one second moment per block.

        m   <- b1 m + (1 - b1) g
        v_b <- b2 v_b + (1 - b2) mean(g_b^2)
        u_b  = m_b^ / (sqrt(v_b^) + eps)

    g_b, m_b, u_b are block b's entries of g, m, u (v_b is one number); m^, v^ are Adam's bias
    corrections, t counts updates from 1. `blocks`: for each leaf the number k
    of blocks (contiguous, of the leaf flattened row-major), a tree of ints (a prefix of the params),
    or a function of the params giving one; None is k = 1 for every leaf. `adam_mini_blocks` gives
    the authors' partition. k equal to the leaf's size is Adam on that leaf.

    Reference: Zhang, Chen, Li, Ding, Chen, Luo, Sun, Ye, "Adam-mini: Use Fewer Learning Rates To Gain
    More", 2024 (arXiv:2406.16793).

    >>> import gradtx
    >>> gradtx.scale_by_adam_mini()
    scale_by_adam_mini(b1=0.9, b2=0.999, eps=1e-08)
    """
    check("scale_by_adam_mini", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG))
    dtype = first_moment_dtype("scale_by_adam_mini", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adam_mini", _init_adam_mini, _update_adam_mini,
        b1=b1, b2=b2, eps=eps, accumulator_dtype=dtype, blocks=blocks,
    )  # fmt: skip


# The authors' name patterns (adam-mini 1.1.1), matched as substrings of the lower-cased key path.
ELEMENTWISE_NAMES = ("bias",)
HEAD_NAMES = ("k_proj", "q_proj", "wq", "wk", "query", "key")
NEURON_NAMES = ("embed", "embd", "wte", "lm_head", "output", "final_layer", "v_proj", "wv", "value",
                "o_proj", "wo", "attn.proj", "feed_forward", "linear", "mlp")  # fmt: skip


def _path_name(path: Any) -> str:
    """A key path as the dotted name torch's named_parameters gives: ('layers', 0, 'q_proj', 'weight')."""
    keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    return ".".join(keys).lower()


def _authors_blocks(hp: Hyperparams, params: Any) -> Any:
    def leaf(path: Any, x: Any) -> int:
        name = _path_name(path)
        if any(n in name for n in hp.elementwise):
            return int(jnp.size(x))
        if any(n in name for n in hp.heads):
            return hp.n_heads
        if any(n in name for n in hp.neurons):
            return int(jnp.shape(x)[0]) if jnp.ndim(x) else 1
        return 1

    return jax.tree_util.tree_map_with_path(leaf, params)


def adam_mini_blocks(
    n_heads: int,
    *,
    elementwise: tuple[str, ...] = ELEMENTWISE_NAMES,
    heads: tuple[str, ...] = HEAD_NAMES,
    neurons: tuple[str, ...] = NEURON_NAMES,
) -> Bound:
    """Adam-mini 1.1.1's partition, by key-path names (lower-cased, dotted, matched as substrings).

    "bias": per element (Adam); query and key weights ("q_proj", "k_proj", "wq", "wk", "query",
    "key"): `n_heads` blocks; embedding, output, value, attention-output and MLP weights ("embed",
    "embd", "wte", "lm_head", "output", "final_layer", "v_proj", "wv", "value", "o_proj", "wo",
    "attn.proj", "feed_forward", "linear", "mlp"): one block per row, i.e. per output neuron in
    torch's (out, in) layout (per token for an embedding); anything else (norms): one block.
    `elementwise`, `heads` and `neurons` replace those patterns (checked in that order; the authors
    extend theirs by adding to `optimizer.embd_names` etc.). Note that 1.1.1 gives embeddings and
    outputs one value per row, not per element (per element is `elementwise=("bias", "embed", ...)`).

    >>> import gradtx, jax.numpy as jnp
    >>> gradtx.adam_mini_blocks(2)({"wq": jnp.ones((4, 4)), "mlp": jnp.ones((3, 4)), "norm": jnp.ones(4)})
    {'mlp': 3, 'norm': 1, 'wq': 2}
    """
    check("adam_mini_blocks", n_heads=(n_heads, "integer [1, inf)"))
    names = {"elementwise": tuple(elementwise), "heads": tuple(heads), "neurons": tuple(neurons)}
    return Bound(_authors_blocks, Hyperparams("adam_mini_blocks", (), {"n_heads": n_heads, **names}))


def adam_mini(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    mu_dtype: Any = None,
    *,
    blocks: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam-mini (Zhang et al., 2024) with decoupled weight decay.

    `chain(scale_by_adam_mini(b1, b2, eps, blocks=blocks), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`: W <- W - lr (u + weight_decay W). `blocks=adam_mini_blocks(n_heads)`
    is the authors' partition; their code does not decay leaves whose name holds "norm", "ln" or
    "bias", a `mask` here.

    >>> import gradtx
    >>> gradtx.adam_mini(1e-3)
    chain(scale_by_adam_mini(b1=0.9, b2=0.999, eps=1e-08), add_decayed_weights(weight_decay=0.0),
          scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adam_mini", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adam_mini"):
        return chain(
            scale_by_adam_mini(b1, b2, eps, mu_dtype, blocks=blocks, accumulator_dtype=accumulator_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ELEMENTWISE_NAMES", "HEAD_NAMES", "NEURON_NAMES", "ScaleByAdamMiniState", "adam_mini",
           "adam_mini_blocks", "scale_by_adam_mini"]  # fmt: skip
