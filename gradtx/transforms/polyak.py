"""Polyak's step size: as far as a linear model of the loss says its minimum is (Polyak, 1969; Loizou et al., 2021).

    scale_by_polyak   u = min((f(w) - f_min) / (||g||^2 + eps), max_learning_rate) g   ("sps+": max(f(w) - f_min, 0))
    polyak_sgd        chain(sgd(scaling), scale_by_polyak(...))

The update needs the loss at params: `tx.update(grads, state, params, value=loss)`, or
`gradtx.make_step(tx, loss_fn)`, which passes it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import EmptyState, GradientTransformation, Hyperparams, ScalarOrSchedule, init_empty, transformation
from gradtx.checks import LEARNING_RATE, NONNEG, REAL, ArgumentValueError, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.linesearch import hyper, require_keywords, scalar_value, value_dtype, vdot
from gradtx.transforms.momentum import sgd

# Below this, ||g||^2 + eps counts as zero and the step is 0 (optax's threshold: float64's machine
# epsilon, whatever the dtype).
_TINY = float(np.finfo(np.float64).eps)


def _update_polyak(hp: Hyperparams, g, state: EmptyState, params=None, **extra_args):
    builder = "scale_by_polyak"
    require_keywords(builder, extra_args, ("value",))
    dtype = value_dtype(g)
    gap = scalar_value(builder, extra_args["value"], dtype) - hyper(hp.f_min, dtype)  # f(w) - f*
    if hp.variant == "sps+":
        gap = jnp.maximum(gap, 0)  # (f(w) - f*)_+ (NaN stays NaN)
    denominator = vdot(g, g, dtype) + hyper(hp.eps, dtype)  # ||g||^2 + eps
    tiny = denominator <= _TINY
    step = jnp.minimum(gap / jnp.where(tiny, 1, denominator), hyper(hp.max_learning_rate, dtype))
    step = jnp.where(tiny, jnp.zeros_like(step), step)  # a zero gradient: no step (never 0 / 0)
    return tree.scale(step, g), state


def scale_by_polyak(
    f_min: float = 0.0, max_learning_rate: float = 1.0, eps: float = 0.0, variant: str = "sps"
) -> GradientTransformation:
    """Polyak's step size (Loizou et al., 2021, SPS_max): the step that a linear model of f says reaches f*.

        gamma = min((f(w) - f_min) / (||g||^2 + eps), max_learning_rate)
        gamma = min(max(f(w) - f_min, 0) / (||g||^2 + eps), max_learning_rate)   (variant "sps+", Garrigos et al., 2023)
        u = gamma g                                   (gamma = 0 where ||g||^2 + eps <= 2.2e-16)

    The sign is the incoming updates' (polyak_sgd puts it after sgd). f_min is the paper's f*, a
    lower bound on the loss: 0 for a model that can fit its data. update needs the loss at params, `value=` (make_step
    passes it). Same as optax.scale_by_polyak.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.scale_by_polyak()
    >>> g = jnp.asarray([3.0, 4.0])
    >>> updates, _ = tx.update(g, tx.init(g), value=5.0)  # gamma = 5 / 25
    >>> [round(x, 6) for x in updates.tolist()]
    [0.6, 0.8]
    """
    check("scale_by_polyak", f_min=(f_min, REAL), max_learning_rate=(max_learning_rate, NONNEG), eps=(eps, NONNEG))
    if variant not in ("sps", "sps+"):
        raise ArgumentValueError("scale_by_polyak", "variant", f"must be 'sps' or 'sps+', got {variant!r}")
    return transformation(
        "scale_by_polyak", init_empty, _update_polyak,
        f_min=f_min, max_learning_rate=max_learning_rate, eps=eps, variant=variant, extra_args=True,
    )  # fmt: skip


def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """SGD with Polyak's step size (Loizou et al., 2021): `chain(sgd(scaling), scale_by_polyak(...))`.

        v = -s g                                               (s = scaling, a number or a schedule)
        u = min((f(w) - f_min) / (s^2 ||g||^2 + eps), max_learning_rate) v

    As optax.polyak_sgd, whose numbers these are: the Polyak step sees the gradient after the scaling,
    so for s != 1 the step is Loizou et al.'s SPS_max with c = s and bound s max_learning_rate when
    eps = 0 (not the s min((f - f_min) / (||g||^2 + eps), max_learning_rate) of optax's docstring;
    chain(scale_by_polyak(...), scale_by_learning_rate(s)) gives that). update needs `value=`.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> f = lambda w: jnp.sum(w ** 2)
    >>> tx, w = gradtx.polyak_sgd(), jnp.asarray([1.0, 2.0, 3.0])
    >>> state = tx.init(w)
    >>> for _ in range(3):
    ...     loss, grads = jax.value_and_grad(f)(w)
    ...     updates, state = tx.update(grads, state, w, value=loss)
    ...     w = gradtx.apply_updates(w, updates)
    >>> float(f(w))  # each step halves w: f / 4
    0.21875
    """
    check("polyak_sgd", scaling=(scaling, LEARNING_RATE))
    with arguments_of("polyak_sgd", {"sgd.learning_rate": "scaling"}):
        return chain(
            sgd(learning_rate=scaling),
            scale_by_polyak(f_min=f_min, max_learning_rate=max_learning_rate, eps=eps, variant=variant),
        )


__all__ = ["polyak_sgd", "scale_by_polyak"]
