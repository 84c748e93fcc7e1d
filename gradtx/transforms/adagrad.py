"""AdaGrad: divide each coordinate by the root of the sum of all its squared gradients.

scale_by_rss    r <- r + g^2;   u = g / sqrt(r + eps)   (Duchi et al., 2011)
adagrad         chain(scale_by_rss, scale_by_learning_rate)
"""

from __future__ import annotations

from typing import NamedTuple

from gradtx import tree
from gradtx.base import GradientTransformation, Hyperparams, ScalarOrSchedule, Updates, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, check
from gradtx.combine import chain
from gradtx.transforms.scaling import scale_by_learning_rate

# ---------------------------------------------------------------------------------------------------
# AdaGrad


class ScaleByRssState(NamedTuple):
    """sum_of_squares: r, the sum of g^2 over all updates so far (real)."""

    sum_of_squares: Updates


def _init_rss(hp: Hyperparams, params) -> ScaleByRssState:
    return ScaleByRssState(sum_of_squares=tree.second_moment_like(params, hp.initial_accumulator_value))


def _update_rss(hp: Hyperparams, g, state: ScaleByRssState, params=None):
    r = tree.add(state.sum_of_squares, tree.abs_sq(g))  # r <- r + g^2
    eps, eps_root = (0.0, hp.eps) if hp.eps_in_sqrt else (hp.eps, 0.0)
    u = tree.safe_div_sqrt(g, r, eps, eps_root)  # u = g / sqrt(r + eps)  or  g / (sqrt(r) + eps); 0 if r = 0
    return tree.cast_like(u, g), ScaleByRssState(sum_of_squares=r)


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7, *, eps_in_sqrt: bool = True
) -> GradientTransformation:
    """AdaGrad's preconditioner (Duchi et al., 2011): divide by the root of the sum of all g^2.

        r <- r + g^2                           (r starts at initial_accumulator_value)
        u = g / sqrt(r + eps)                  (eps_in_sqrt=True: optax's form)
        u = g / (sqrt(r) + eps)                (eps_in_sqrt=False: Duchi et al., Goodfellow et al.
                                                Alg. 8.4, torch.optim.Adagrad)

    u = 0 where r = 0 (only possible with g = 0). The step size g / sqrt(r) shrinks toward zero as
    r grows: AdaGrad's known weakness. torch.optim.Adagrad(lr, eps=eps) is
    `scale_by_rss(0.0, eps, eps_in_sqrt=False)` followed by the learning rate; `eps_in_sqrt` is a
    gradtx extension.

    >>> import gradtx
    >>> gradtx.scale_by_rss(0.0, 1e-10, eps_in_sqrt=False)
    scale_by_rss(initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False)
    """
    check(
        "scale_by_rss",
        initial_accumulator_value=(initial_accumulator_value, NONNEG),
        eps=(eps, NONNEG),
    )
    return transformation(
        "scale_by_rss", _init_rss, _update_rss,
        initial_accumulator_value=initial_accumulator_value, eps=eps, eps_in_sqrt=eps_in_sqrt,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Optimizer


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """AdaGrad (Duchi et al., 2011): `chain(scale_by_rss(...), scale_by_learning_rate(lr))`.

    See `scale_by_rss`. optax's defaults put eps inside the root; the lecture form (Goodfellow
    et al., Alg. 8.4) and torch.optim.Adagrad(lr, eps=eps) put it outside: pass
    `initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False` (a gradtx extension) for torch's.

    >>> import gradtx
    >>> gradtx.adagrad(0.1)
    chain(scale_by_rss(initial_accumulator_value=0.1, eps=1e-07, eps_in_sqrt=True),
          scale_by_learning_rate(learning_rate=0.1, flip_sign=True))
    """
    check("adagrad", learning_rate=(learning_rate, LEARNING_RATE))
    return chain(
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["ScaleByRssState", "adagrad", "scale_by_rss"]
