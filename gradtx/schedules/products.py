"""Schedules as products: a value times the user's factor, a running product of factors, a product of schedules.

    lambda_schedule(I, f):          value(k) = I f(k)                   (torch's LambdaLR)
    multiplicative_schedule(I, f):  value(k) = I f(1) f(2) ... f(k)     (torch's MultiplicativeLR)
    multiply_schedules([s_1, ...]): value(k) = s_1(k) s_2(k) ...        (torch's ChainedScheduler)

torch's SequentialLR, which hands over from one scheduler to the next at its milestone and starts
it from its own beginning there, is `join_schedules(schedules, milestones)` (piecewise.py).

`f` is the user's function of the count, as torch's `lr_lambda`: a module-level function (so the
schedule pickles and compares equal) written in JAX, since it is traced (`jnp.where(k < 10, 1.0,
0.95)`, not `1.0 if k < 10 else 0.95`). It gets the count as an array of the canonical integer
dtype (int64 under x64, so that `k / 10` is float64, as the schedule's value) and returns a scalar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import REAL, ArgumentTypeError, ArgumentValueError, check, check_schedule
from gradtx.schedules.base import _count, _dtypes, _widest


def _check_factor(builder: str, lr_lambda: Callable) -> None:
    if not callable(lr_lambda):
        raise ArgumentTypeError(builder, "lr_lambda", f"must be a function count -> factor, got {lr_lambda!r}")
    check_schedule(builder, "lr_lambda", lr_lambda)


def _int() -> np.dtype:
    """int64 under x64, int32 otherwise: the dtype f gets, so that k / 10 is the canonical float."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.int64))


def _lambda(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value)
    return d.out(d.of(hp.init_value) * d.of(hp.lr_lambda(_count(count).astype(_int()))))  # I f(k)


def lambda_schedule(init_value: float, lr_lambda: Callable) -> Bound:
    """`init_value` times the user's factor of the count.

        value(k) = I f(k)

    I = init_value, f = lr_lambda. torch.optim.lr_scheduler.LambdaLR (its base lr is I, its
    `last_epoch` is k). f must be a JAX function (see the module docstring).

    >>> import jax.numpy as jnp, gradtx
    >>> def warmup(k):
    ...     return jnp.minimum((k + 1) / 4, 1.0)
    >>> s = gradtx.lambda_schedule(0.1, warmup)
    >>> s
    lambda_schedule(init_value=0.1, lr_lambda=warmup)
    >>> [round(float(s(k)), 4) for k in (0, 1, 3, 10)]
    [0.025, 0.05, 0.1, 0.1]
    """
    check("lambda_schedule", init_value=(init_value, REAL))
    _check_factor("lambda_schedule", lr_lambda)
    return schedule("lambda_schedule", _lambda, init_value=init_value, lr_lambda=lr_lambda)


BLOCK = 256  # factors evaluated at once: a count k costs ceil(k / BLOCK) vectorized steps


def _running_product(f: Callable, k: jax.Array, dtype: np.dtype) -> jax.Array:
    """f(1) f(2) ... f(k) for one count k (0-d), BLOCK factors at a time."""
    k = k.astype(_int())
    offsets = jnp.arange(1, BLOCK + 1, dtype=k.dtype)

    def more(carry: tuple) -> jax.Array:
        return carry[0] < k

    def block(carry: tuple) -> tuple:
        start, product = carry
        j = start + offsets  # the next BLOCK indices
        factors = jax.vmap(f)(j).astype(dtype)
        inside = (j >= 1) & (j <= k)  # (j >= 1: an index that wrapped around is never inside)
        return start + BLOCK, product * jnp.prod(jnp.where(inside, factors, 1))

    _, product = jax.lax.while_loop(more, block, (jnp.zeros((), k.dtype), jnp.ones((), dtype)))
    return product


def _multiplicative(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value)
    k = _count(count)
    flat = jax.vmap(lambda kk: _running_product(hp.lr_lambda, kk, d.compute))(k.reshape(-1))
    return d.out(d.of(hp.init_value) * flat.reshape(k.shape))  # I f(1) ... f(k)


def multiplicative_schedule(init_value: float, lr_lambda: Callable) -> Bound:
    """`init_value` multiplied, at each step, by the user's factor of that step.

        value(0) = I,   value(k) = value(k - 1) f(k) = I f(1) f(2) ... f(k)

    I = init_value, f = lr_lambda. torch.optim.lr_scheduler.MultiplicativeLR (its `last_epoch` is
    k; torch never calls f(0)). A schedule is a function of the count, not a running state, so the
    product is recomputed at each call: ceil(k / 256) vectorized steps of 256 factors (at k = 10^6,
    a few milliseconds on a CPU). A constant factor r is `exponential_decay(I, 1, r)`, which costs
    nothing; f must be a JAX function (see the module docstring).

    >>> import jax.numpy as jnp, gradtx
    >>> def halve_after_2(k):
    ...     return jnp.where(k > 2, 0.5, 1.0)
    >>> s = gradtx.multiplicative_schedule(1.0, halve_after_2)
    >>> s
    multiplicative_schedule(init_value=1.0, lr_lambda=halve_after_2)
    >>> [float(s(k)) for k in (0, 1, 2, 3, 4, 5)]
    [1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    """
    check("multiplicative_schedule", init_value=(init_value, REAL))
    _check_factor("multiplicative_schedule", lr_lambda)
    return schedule("multiplicative_schedule", _multiplicative, init_value=init_value, lr_lambda=lr_lambda)


def _product(hp: Hyperparams, count) -> jax.Array:
    k = _count(count)
    values = [jnp.asarray(s(k)) for s in hp.schedules]
    dtype = _widest(v.dtype for v in values)
    out = values[0].astype(dtype)
    for v in values[1:]:
        out = out * v.astype(dtype)  # s_1(k) s_2(k) ...
    return out


def multiply_schedules(schedules: Iterable[Callable]) -> Bound:
    """The product of schedules, count by count.

        value(k) = s_1(k) s_2(k) ... s_n(k)

    torch.optim.lr_scheduler.ChainedScheduler steps schedulers that each multiply the learning rate
    by their own factor (ExponentialLR, StepLR, MultiStepLR, ConstantLR, LinearLR, MultiplicativeLR):
    with base lr I, that is `multiply_schedules([s_1, s_2, ...])` with s_1 from I and the others from
    1 (the factors). A warmup times a decay: `multiply_schedules([exponential_decay(I, 1, 0.99),
    linear_schedule(0.1, 1.0, 100)])`.

    >>> import gradtx
    >>> s = gradtx.multiply_schedules([gradtx.exponential_decay(1.0, 1, 0.5), gradtx.linear_schedule(0.5, 1.0, 2)])
    >>> s
    multiply_schedules(schedules=(exponential_decay(init_value=1.0, transition_steps=1, decay_rate=0.5,
                                                    transition_begin=0, staircase=False),
                                  linear_schedule(init_value=0.5, end_value=1.0, transition_steps=2,
                                                  transition_begin=0)))
    >>> [float(s(k)) for k in (0, 1, 2, 3)]
    [0.5, 0.375, 0.25, 0.125]
    """
    builder = "multiply_schedules"
    if not isinstance(schedules, Iterable) or isinstance(schedules, str) or callable(schedules):
        raise ArgumentTypeError(builder, "schedules", f"must be a sequence of schedules, got {schedules!r}")
    schedules = tuple(schedules)
    if not schedules:
        raise ArgumentValueError(builder, "schedules", "must hold at least one schedule")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise ArgumentTypeError(builder, f"schedules[{i}]", f"must be a schedule count -> value, got {s!r}")
        check_schedule(builder, f"schedules[{i}]", s)
    return schedule(builder, _product, schedules=schedules)


__all__ = ["lambda_schedule", "multiplicative_schedule", "multiply_schedules"]
