"""MultiSteps: gradient accumulation, one step of the inner optimizer every k gradients.

u = t(mean of the last k gradients) every k-th step, else 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    OptState,
    Params,
    Updates,
    next_count,
    value_at,
    zero_count,
)
from gradtx.checks import SCHEDULE, check, check_dtype
from gradtx.combine import check_members, update_one, wrapper

# ---------------------------------------------------------------------------------------------------
# MultiSteps (gradient accumulation)


class MultiStepsState(NamedTuple):
    """mini_step: gradients accumulated since the last step (int32); gradient_step: steps of the
    inner optimizer taken (int32); inner_opt_state; acc_grads: their mean (or sum) so far;
    skip_state: what should_skip_update_fn returned last (() without one)."""

    mini_step: Count
    gradient_step: Count
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


def skip_not_finite(updates: Updates, gradient_step: jax.Array, params: Params | None) -> tuple[jax.Array, dict]:
    """A `should_skip_update_fn` for MultiSteps: skip gradients with a NaN or an infinity.

    Returns (should_skip, {"should_skip": ..., "num_not_finite": the number of such entries (int32)}).
    """
    counts = [jnp.sum(~jnp.isfinite(x), dtype=jnp.int32) for x in jax.tree.leaves(updates)]
    num_not_finite = sum(counts, jnp.zeros([], jnp.int32))
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates, gradient_step: jax.Array, params: Params | None, max_squared_norm: float
) -> tuple[jax.Array, dict]:
    """A `should_skip_update_fn` for MultiSteps: skip gradients with ||g||^2 >= max_squared_norm
    (or NaN). Bind the threshold first: `functools.partial(skip_large_updates, max_squared_norm=10.0)`.

    Returns (should_skip, {"should_skip": ..., "norm_squared": ||g||^2}).
    """
    norm_squared = tree.sum_sq(updates)
    should_skip = ~(norm_squared < max_squared_norm)  # True for NaN as well
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_squared}


def _should_skip(hp: Hyperparams, g: Updates, gradient_step: jax.Array, params: Params | None) -> tuple:
    if hp.should_skip_update_fn is None:
        return jnp.asarray(False), ()
    skip, skip_state = hp.should_skip_update_fn(g, gradient_step, params)
    if jnp.shape(skip) != () or jnp.result_type(skip) != jnp.bool_:
        raise ValueError(
            "MultiSteps: should_skip_update_fn must return (a boolean scalar, a tree), got a first element"
            f" of dtype {jnp.result_type(skip)} and shape {jnp.shape(skip)}"
        )
    return skip, skip_state


def _accumulator_like(params: Params, dtype: Any) -> Any:
    """Zeros for the accumulated gradients: in `dtype`, by default each leaf's compute dtype (a sum of
    k bfloat16 gradients in bfloat16 would lose their low bits); complex leaves stay complex."""

    def zeros(p: jax.Array) -> jax.Array:
        d = tree.compute_dtype(jnp.result_type(p)) if dtype is None else np.dtype(dtype)
        if jnp.iscomplexobj(p) and not jnp.issubdtype(d, jnp.complexfloating):
            d = jnp.promote_types(d, jnp.complex64)
        return jnp.zeros(jnp.shape(p), d)

    return jax.tree.map(zeros, params)


def _init_multi_steps(hp: Hyperparams, params) -> MultiStepsState:
    _, skip_state = _should_skip(hp, tree.zeros_like(params), zero_count(), params)
    return MultiStepsState(
        mini_step=zero_count(),
        gradient_step=zero_count(),
        inner_opt_state=hp.args[0].init(params),
        acc_grads=_accumulator_like(params, hp.kwargs.get("accumulator_dtype")),
        skip_state=skip_state,
    )


def _update_multi_steps(hp: Hyperparams, g, state: MultiStepsState, params=None, **extra_args):
    opt = hp.args[0]
    n = state.mini_step.astype(jax.dtypes.canonicalize_dtype(np.float64))  # n / (n + 1) not rounded to float32
    k = jnp.asarray(value_at(hp.every_k_schedule, state.gradient_step)).astype(jnp.int32)
    skip, skip_state = _should_skip(hp, g, state.gradient_step, params)
    # acc <- (n acc + g) / (n + 1), the mean of the n + 1 gradients so far; or acc <- acc + g, their sum
    acc = tree.ema(state.acc_grads, g, n / (n + 1)) if hp.use_grad_mean else tree.add(state.acc_grads, g)
    acc = tree.where(skip, state.acc_grads, acc)  # a skipped gradient is as if it never came
    emit = ~skip & (state.mini_step + 1 >= k)  # the k-th gradient is in: one step of the inner optimizer

    def step() -> tuple[Updates, OptState]:
        return update_one(opt, tree.cast_like(acc, g), state.inner_opt_state, params, extra_args)

    def wait() -> tuple[Updates, OptState]:
        return tree.zeros_like(g), state.inner_opt_state

    u, inner_state = jax.lax.cond(emit, step, wait)
    return u, MultiStepsState(
        mini_step=jnp.where(emit, zero_count(), jnp.where(skip, state.mini_step, next_count(state.mini_step))),
        gradient_step=jnp.where(emit, next_count(state.gradient_step), state.gradient_step),
        inner_opt_state=inner_state,
        acc_grads=tree.where(emit, tree.zeros_like(acc), acc),
        skip_state=skip_state,
    )


class _GradientTransformationOf(Hyperparams):
    """The hyperparameters of `MultiSteps(...).gradient_transformation()`, whose repr reads so."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{super().__repr__()}.gradient_transformation()"


class MultiSteps:
    """Gradient accumulation: one step of `opt` with the mean of every `k` gradients.

        acc <- acc + (g - acc) / (n + 1)       (n gradients accumulated so far; the sum if
                                                 use_grad_mean=False)
        u    = opt(acc) at the k-th gradient, then acc <- 0;   u = 0 before it

    So k microbatches of b examples give the step of one batch of k b examples (for a mean loss).
    `every_k_schedule` is k, an int >= 1 or a schedule of the number of inner steps taken. A
    `should_skip_update_fn(g, gradient_step, params) -> (bool, tree)` (e.g. `skip_not_finite`)
    drops a gradient as if it never came. The accumulator is in `accumulator_dtype`, by default
    each gradient's compute dtype (float32 for bfloat16 and float32, float64 for float64; optax's
    default float32 rounds float64 gradients). Its update costs the inner update only at the k-th
    gradient (optax runs the inner update every time and discards it).

    As optax's class: `init`, `update`, `has_updated(state)` (True after a step of `opt`),
    `inner_opt` and `gradient_transformation()`; the state is optax's `MultiStepsState`.

    >>> import gradtx
    >>> gradtx.MultiSteps(gradtx.sgd(0.1), every_k_schedule=4)
    MultiSteps(chain(scale_by_learning_rate(learning_rate=0.1, flip_sign=True)), every_k_schedule=4, use_grad_mean=True)
    """

    __slots__ = ("_tx",)

    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[jax.Array], jax.Array],
        use_grad_mean: bool = True,
        should_skip_update_fn: Callable[..., tuple[jax.Array, Any]] | None = None,
        accumulator_dtype: Any = None,
    ):
        check_members("MultiSteps", (opt,))
        check("MultiSteps", every_k_schedule=(every_k_schedule, "[1, inf)" + SCHEDULE))
        if isinstance(every_k_schedule, float):
            raise TypeError(f"MultiSteps: every_k_schedule must be an integer or a schedule, got {every_k_schedule!r}")
        if should_skip_update_fn is not None and not callable(should_skip_update_fn):
            raise TypeError(
                f"MultiSteps: should_skip_update_fn must be callable or None, got {should_skip_update_fn!r}"
            )
        kwargs: dict[str, Any] = dict(every_k_schedule=every_k_schedule, use_grad_mean=use_grad_mean)
        kwargs["should_skip_update_fn"] = should_skip_update_fn
        if accumulator_dtype is not None:  # an unused option is not part of the transformation
            kwargs["accumulator_dtype"] = check_dtype("MultiSteps", "accumulator_dtype", accumulator_dtype)
        self._tx = wrapper(
            "MultiSteps", _init_multi_steps, _update_multi_steps, opt, hyperparams=_GradientTransformationOf, **kwargs
        )

    def init(self, params: Params) -> MultiStepsState:
        return self._tx.init(params)

    def update(
        self, updates: Updates, state: MultiStepsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, MultiStepsState]:
        return self._tx.update(updates, state, params, **extra_args)

    def has_updated(self, state: MultiStepsState) -> jax.Array:
        """True when the last `update` took a step of the inner optimizer."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    @property
    def inner_opt(self) -> GradientTransformation:
        return self.hyperparams.args[0]

    @property
    def hyperparams(self) -> Hyperparams:
        hp = self._tx.hyperparams
        assert hp is not None  # built by wrapper()
        return hp

    def gradient_transformation(self) -> GradientTransformation:
        """The same `init` and `update` as a GradientTransformation (for flax, chain, ...)."""
        return self._tx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiSteps) and self._tx == other._tx

    def __hash__(self) -> int:
        return hash(self._tx)

    def __repr__(self) -> str:
        return Hyperparams.__repr__(self.hyperparams)


__all__ = ["MultiSteps", "MultiStepsState", "skip_large_updates", "skip_not_finite"]
