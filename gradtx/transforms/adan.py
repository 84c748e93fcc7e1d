"""Adan: Adam with a Nesterov look-ahead estimated from the change of the gradient (Xie et al., 2022).

    scale_by_adan   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) (g - g_prev)
                    n <- b3 n + (1 - b3) (g + b2 (g - g_prev))^2
                    u = (m^ + b2 v^) / (sqrt(n^ + eps_root) + eps)
    adan            chain(scale_by_adan, add_decayed_weights, scale_by_learning_rate)

The decays are written as in the authors' code and optax (b near 1 keeps more of the past); the
paper writes 1 - b for each.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
from gradtx.checks import LEARNING_RATE, NONNEG, OR_NONE, UNIT, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale_by_learning_rate


class ScaleByAdanState(NamedTuple):
    """m: EMA of g; v: EMA of g - g_prev; n: EMA of the squared look-ahead (real); g: the last
    gradient; t: updates applied (int32). optax's field names."""

    m: Updates
    v: Updates
    n: Updates
    g: Updates
    t: Count


def _init_adan(hp: Hyperparams, params) -> ScaleByAdanState:
    return ScaleByAdanState(
        m=tree.first_moment_like(params),
        v=tree.first_moment_like(params),
        n=tree.second_moment_like(params),
        g=tree.first_moment_like(params),
        t=zero_count(),
    )


def _update_adan(hp: Hyperparams, g, state: ScaleByAdanState, params=None):
    c = hp.b2 if hp.diff_scale is None else hp.diff_scale  # the paper's 1 - beta_2, b2 in code's terms
    g32 = tree.compute_like(g, g)  # at least float32: g + c d is squared before it is stored
    diff = tree.where(state.t == 0, tree.zeros_like(g32), tree.sub(g32, state.g))  # d = g - g_prev, 0 at first
    m = tree.ema(state.m, g, hp.b1)  # m <- b1 m + (1 - b1) g
    v = tree.ema(state.v, diff, hp.b2)  # v <- b2 v + (1 - b2) d
    n = tree.ema(state.n, tree.abs_sq(tree.add_scale(g32, c, diff)), hp.b3)  # n <- b3 n + (1 - b3) (g + c d)^2
    t = next_count(state.t)
    m_hat = tree.bias_correction(tree.compute_like(m, g), hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correction(tree.compute_like(v, g), hp.b2, t)  # v^ = v / (1 - b2^t)
    n_hat = tree.bias_correction(n, hp.b3, t)  # n^ = n / (1 - b3^t)
    u = tree.div_sqrt(tree.add_scale(m_hat, c, v_hat), n_hat, hp.eps, hp.eps_root)  # (m^ + c v^) / (sqrt(n^) + eps)
    return tree.cast_like(u, g), ScaleByAdanState(m=m, v=v, n=n, g=tree.cast_like(g, state.g), t=t)


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    diff_scale: float | None = None,
) -> GradientTransformation:
    """Adan's preconditioner (Xie et al., 2022, Algorithm 1): Adam on a Nesterov look-ahead.

        d = g - g_prev                 (d = 0 at the first step)
        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) d
        n <- b3 n + (1 - b3) (g + c d)^2
        m^, v^, n^ = m, v, n over (1 - b1^t), (1 - b2^t), (1 - b3^t)
        u  = (m^ + c v^) / (sqrt(n^ + eps_root) + eps)

    c = `diff_scale`, by default None: c = b2, the paper's 1 - beta_2 and what the authors' code
    (sail-sg/Adan) computes. optax 0.2.8 uses c = 1 - b2 (0.08 where the paper has 0.92; optax
    pull request 1715 corrects it): `diff_scale=1 - b2` gives optax's numbers, and with b2 = 0.5
    the two agree. The first step has d = 0 (the authors' and optax's convention).

    >>> import gradtx
    >>> gradtx.scale_by_adan()
    scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-08, eps_root=0.0)
    """
    check(
        "scale_by_adan",
        b1=(b1, UNIT), b2=(b2, UNIT), b3=(b3, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG),
        diff_scale=(diff_scale, NONNEG + OR_NONE),
    )  # fmt: skip
    return transformation(
        "scale_by_adan", _init_adan, _update_adan,
        b1=b1, b2=b2, b3=b3, eps=eps, eps_root=eps_root, diff_scale=diff_scale,
    )  # fmt: skip


def adan(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    diff_scale: float | None = None,
) -> GradientTransformation:
    """Adan (Xie et al., 2022): `chain(scale_by_adan(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))`, optax's chain and defaults (eps_root = 1e-8 here, 0 in scale_by_adan).

    W <- W - eta (u + lambda W) with u Adan's update (see `scale_by_adan`, and its `diff_scale`
    for how optax 0.2.8's numbers differ from the paper's). The weight decay is decoupled, as in
    optax and the authors' `no_prox=True`; the paper (and the authors' default) divides instead:
    W <- (W - eta u) / (1 + eta lambda), which for a constant rate is this optimizer with the
    learning rate eta / (1 + eta lambda).

    >>> import gradtx
    >>> gradtx.adan(1e-3)
    chain(scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-08, eps_root=1e-08),
          add_decayed_weights(weight_decay=0.0), scale_by_learning_rate(learning_rate=0.001, flip_sign=True))
    """
    check("adan", learning_rate=(learning_rate, LEARNING_RATE))
    with arguments_of("adan"):
        return chain(
            scale_by_adan(b1, b2, b3, eps, eps_root, diff_scale=diff_scale),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


__all__ = ["ScaleByAdanState", "adan", "scale_by_adan"]
