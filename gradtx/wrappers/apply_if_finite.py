"""apply_if_finite: skip the steps whose gradients hold a NaN or an infinity.

u = t(g) if g is finite (or after more than n non-finite in a row), else 0
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, OptState, Updates, next_count, zero_count
from gradtx.checks import check
from gradtx.combine import check_members, update_one, wrapper

# ---------------------------------------------------------------------------------------------------
# apply_if_finite


class ApplyIfFiniteState(NamedTuple):
    """notfinite_count: non-finite steps in a row (int32); last_finite: whether the last step's
    gradients were finite; total_notfinite: non-finite steps in all (int32); inner_state."""

    notfinite_count: Count
    last_finite: jax.Array
    total_notfinite: Count
    inner_state: Any


def _init_apply_if_finite(hp: Hyperparams, params) -> ApplyIfFiniteState:
    return ApplyIfFiniteState(
        notfinite_count=zero_count(),
        last_finite=jnp.asarray(True),
        total_notfinite=zero_count(),
        inner_state=hp.args[0].init(params),
    )


def _update_apply_if_finite(hp: Hyperparams, g, state: ApplyIfFiniteState, params=None, **extra_args):
    inner = hp.args[0]
    finite = tree.all_finite(g)
    notfinite_count = jnp.where(finite, zero_count(), next_count(state.notfinite_count))
    apply = finite | (notfinite_count > hp.max_consecutive_errors)  # after too many, give up and apply

    def step() -> tuple[Updates, OptState]:
        return update_one(inner, g, state.inner_state, params, extra_args)

    def skip() -> tuple[Updates, OptState]:
        return tree.zeros_like(g), state.inner_state  # no step, and the state as it was

    u, inner_state = jax.lax.cond(apply, step, skip)
    return u, ApplyIfFiniteState(
        notfinite_count=notfinite_count,
        last_finite=finite,
        total_notfinite=jnp.where(finite, state.total_notfinite, next_count(state.total_notfinite)),
        inner_state=inner_state,
    )


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors: int) -> GradientTransformation:
    """Skips steps whose gradients hold a NaN or an infinity: zero updates, the inner state kept.

        u = inner(g)   if every entry of g is finite, or once more than max_consecutive_errors
                       non-finite steps came in a row
        u = 0          otherwise (and the inner state does not change)

    As optax's: past `max_consecutive_errors` skips in a row it gives up and lets the non-finite
    gradients reach `inner` (a run that skipped forever would stop training without a sign). The
    state is `ApplyIfFiniteState(notfinite_count, last_finite, total_notfinite, inner_state)`.

    >>> import gradtx
    >>> gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=5)
    apply_if_finite(chain(scale_by_learning_rate(learning_rate=0.1, flip_sign=True)), max_consecutive_errors=5)
    """
    check_members("apply_if_finite", (inner,))
    check("apply_if_finite", max_consecutive_errors=(max_consecutive_errors, "[0, inf)"))
    return wrapper(
        "apply_if_finite", _init_apply_if_finite, _update_apply_if_finite, inner,
        max_consecutive_errors=max_consecutive_errors,
    )  # fmt: skip


__all__ = ["ApplyIfFiniteState", "apply_if_finite"]
