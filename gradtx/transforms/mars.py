"""MARS (Yuan et al., 2024): Adam fed a variance-reduced gradient, the scaled difference of two
successive gradients added to the gradient and the sum clipped to norm 1 (MARS-AdamW).

    scale_by_mars   c = g + gamma b1 / (1 - b1) (g - g_prev);  c <- c / max(1, ||c|| / max_norm);  Adam on c
    mars            scale_by_mars for the matrices, AdamW for the other leaves (the authors' split)

The paper's Lion and Shampoo variants (sign(m), or m orthogonalized, in place of Adam's division)
are not here: each would be a second preconditioner after the same correction, not a flag on this one.
pytorch_optimizer's MARS(mars_type="adamw") is `mars(..., eps_hat=True)` (tests/test_mars.py).
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
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE,
    SCHEDULE,
    UNIT,
    arguments_of,
    check,
    first_moment_dtype,
)
from gradtx.combine import chain, partition
from gradtx.packing import require_leaves
from gradtx.transforms.adam import eps_of, flag_or_none, scale_by_adam
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


class ScaleByMarsState(NamedTuple):
    """count: updates applied (int32); mu: first moment m of c; nu: second moment v of c (real);
    last_grad: the previous gradient g_prev (zero before the first update)."""

    count: Count
    mu: Updates
    nu: Updates
    last_grad: Updates


def _init_mars(hp: Hyperparams, params) -> ScaleByMarsState:
    return ScaleByMarsState(
        count=zero_count(),
        mu=tree.first_moment_like(params, hp.accumulator_dtype),
        nu=tree.second_moment_like(params),
        last_grad=tree.zeros_like(params),
    )


def _clip_leaf(c: jax.Array, max_norm: Any) -> jax.Array:
    """c / max(1, ||c|| / max_norm), ||.|| the Frobenius norm of the leaf (the authors clip per tensor)."""
    sq = jnp.sum(tree.abs_sq(c))  # ||c||^2 of this leaf
    over = jnp.sqrt(sq) > max_norm
    # the inner `where` keeps jax.grad through update finite at c = 0 (d sqrt(x) / dx is infinite at 0);
    # c / (||c|| / max_norm) rather than c * (max_norm / ||c||): with max_norm 1, torch's c / ||c|| exactly
    scale = jnp.sqrt(jnp.where(over, sq, 1)) / max_norm
    return jnp.where(over, c / scale.astype(c.dtype), c)


def _update_mars(hp: Hyperparams, g, state: ScaleByMarsState, params=None):
    require_leaves("scale_by_mars", g)  # a norm per leaf: packing would merge the leaves
    t = next_count(state.count)
    g32 = tree.compute_like(g, g)
    c = tree.add_scale(g32, hp.gamma * hp.b1 / (1 - hp.b1), tree.sub(g32, state.last_grad))  # c = g + ... (g - g_prev)
    if hp.max_norm is not None:
        c = jax.tree.map(lambda x: _clip_leaf(x, hp.max_norm), c)  # c <- c / max(1, ||c|| / max_norm)
    mu = tree.ema(state.mu, c, hp.b1)  # m <- b1 m + (1 - b1) c
    nu = tree.ema(state.nu, tree.abs_sq(c), hp.b2)  # v <- b2 v + (1 - b2) c^2
    m_hat = tree.bias_correction(tree.compute_like(mu, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_hat, v_hat, eps_of(hp, t), hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByMarsState(count=t, mu=mu, nu=nu, last_grad=tree.cast_like(g, state.last_grad))


def scale_by_mars(
    b1: float = 0.95,
    b2: float = 0.99,
    gamma: float = 0.025,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    max_norm: float | None = 1.0,
    eps_hat: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """MARS-AdamW's preconditioner (Yuan et al., 2024, Alg. 2): Adam on a clipped, variance-reduced gradient.

        c  = g + gamma b1 / (1 - b1) (g - g_prev)
        c <- c / max(1, ||c|| / max_norm)
        m <- b1 m + (1 - b1) c
        v <- b2 v + (1 - b2) c^2
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    m^, v^ are Adam's bias-corrected moments, t counts updates from 1, g_prev is the previous
    update's gradient (zero at t = 1, as in the authors' code and pytorch_optimizer, so c_1 =
    (1 + gamma b1 / (1 - b1)) g). The norm is each leaf's Frobenius norm (the authors clip per
    tensor); `max_norm=None` skips the clip. The paper's approximate form evaluates g and g_prev
    on successive minibatches, as here (its exact form needs a second gradient per step).
    `eps_hat=True` adds eps to sqrt(v) before v's bias correction, eps / sqrt(1 - b2^t) in place
    of eps above: pytorch_optimizer's placement (see `scale_by_adam`). Defaults are the authors'.

    Reference: Yuan, Liu, Wu, Zhou, Gu, "MARS: Unleashing the Power of Variance Reduction for
    Training Large Models", 2024 (arXiv:2411.10438).

    >>> import gradtx
    >>> gradtx.scale_by_mars()
    scale_by_mars(b1=0.95, b2=0.99, gamma=0.025, eps=1e-08, eps_root=0.0, max_norm=1.0)
    """
    check(
        "scale_by_mars", b1=(b1, UNIT), b2=(b2, UNIT), gamma=(gamma, NONNEG), eps=(eps, NONNEG),
        eps_root=(eps_root, NONNEG),
    )  # fmt: skip
    if max_norm is not None:
        check("scale_by_mars", max_norm=(max_norm, POSITIVE))
    dtype = first_moment_dtype("scale_by_mars", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_mars", _init_mars, _update_mars,
        b1=b1, b2=b2, gamma=gamma, eps=eps, eps_root=eps_root, accumulator_dtype=dtype, max_norm=max_norm,
        eps_hat=flag_or_none("scale_by_mars", "eps_hat", eps_hat),
    )  # fmt: skip


def _mars_label(hp: Hyperparams, params: Any) -> Any:
    """'mars' or 'adam' for each leaf: the leaves of 2 or more dimensions, or those `hp.mask` marks True."""
    mask = hp.mask
    if mask is None:
        return jax.tree.map(lambda x: "mars" if jnp.ndim(x) >= 2 else "adam", params)
    if callable(mask):
        mask = mask(params)
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: "mars" if m else "adam", sub), mask, params)


def mars_labels(mask: Any = None) -> Bound:
    """The labels `mars` partitions the params by: "mars" or "adam" for each leaf.

    `mask` None gives "mars" to the leaves of 2 or more dimensions (the authors' `optimize_1d=False`);
    a tree of bools (a prefix of the params), or a function of the params giving one, gives it the
    leaves marked True (`lambda p: jax.tree.map(lambda _: True, p)` is `optimize_1d=True`).

    >>> import gradtx, jax.numpy as jnp
    >>> gradtx.mars_labels()({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    {'b': 'adam', 'w': 'mars'}
    """
    return Bound(_mars_label, Hyperparams("mars_labels", (), {"mask": mask}))


# A member's argument named as mars names it, for errors raised while the partition is built.
_RENAMES = {
    "scale_by_adam.b1": "adam_b1", "scale_by_adam.b2": "adam_b2",
    "add_decayed_weights.mask": "weight_decay_mask",
}  # fmt: skip


def mars(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.95,
    b2: float = 0.99,
    gamma: float = 0.025,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    max_norm: float | None = 1.0,
    eps_root: float = 0.0,
    eps_hat: bool = False,
    mars_mask: Any = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.95,
    adam_weight_decay: ScalarOrSchedule = 0.1,
    adam_learning_rate: ScalarOrSchedule | None = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """MARS-AdamW (Yuan et al., 2024) for the matrices, AdamW for the other leaves, as the authors' code.

        mars leaves:  chain(scale_by_mars(b1, b2, gamma, eps, ...), add_decayed_weights(weight_decay,
                            weight_decay_mask), scale_by_learning_rate(lr))
        the rest:     chain(scale_by_adam(adam_b1, adam_b2, eps, ...), add_decayed_weights(adam_weight_decay),
                            scale_by_learning_rate(adam_learning_rate or lr))

    W <- W - lr (u + weight_decay W) with u MARS's update (`scale_by_mars`) on the leaves
    `mars_labels(mars_mask)` marks (default: 2 or more dimensions, the authors' optimize_1d=False;
    all leaves is their optimize_1d=True), plain AdamW on the others. Defaults are the authors'
    (betas (0.95, 0.99), betas_1d (0.9, 0.95), weight_decay_1d 0.1, gamma 0.025) except
    `adam_learning_rate`: None uses `learning_rate` (their lr_1d is its own number, 3e-3 as lr).
    eps, eps_root and eps_hat are shared. The state is a `PartitionState` with 'mars' and 'adam'.
    pytorch_optimizer's MARS(mars_type="adamw") is this with eps_hat=True (see tests/test_mars.py).

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.mars(3e-3)
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> updates["w"].shape, updates["b"].shape
    ((3, 4), (4,))
    """
    check(
        "mars", learning_rate=(learning_rate, LEARNING_RATE),
        adam_learning_rate=(adam_learning_rate, LEARNING_RATE + OR_NONE),
        adam_weight_decay=(adam_weight_decay, NONNEG + SCHEDULE),
    )  # fmt: skip
    with arguments_of("mars", _RENAMES):
        adam_rate = learning_rate if adam_learning_rate is None else adam_learning_rate
        matrices = chain(
            scale_by_mars(
                b1, b2, gamma, eps, eps_root, mu_dtype, max_norm=max_norm, eps_hat=eps_hat,
                accumulator_dtype=accumulator_dtype,
            ),
            add_decayed_weights(weight_decay, weight_decay_mask),
            scale_by_learning_rate(learning_rate),
        )  # fmt: skip
        adam = chain(
            scale_by_adam(
                adam_b1, adam_b2, eps, eps_root, mu_dtype, eps_hat=eps_hat, accumulator_dtype=accumulator_dtype
            ),
            add_decayed_weights(adam_weight_decay),
            scale_by_learning_rate(adam_rate),
        )
        return partition({"mars": matrices, "adam": adam}, mars_labels(mars_mask))


__all__ = ["ScaleByMarsState", "mars", "mars_labels", "scale_by_mars"]
