"""Momentum schedules: the value of a momentum coefficient as a function of the step count."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import check
from gradtx.schedules.base import (
    CYCLE,
    FRACTION,
    _count,
    _dtypes,
    _steps,
)


def _sutskever(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.mu_max)
    s = (_count(count) // hp.transition_steps).astype(d.compute)  # s = floor(t / 250)
    mu = 1 - 0.5 / (s + 1)  # 1 - 2^(-1 - log2(s + 1)) = 1 - 1 / (2 (s + 1)), one rounding
    return d.out(jnp.minimum(mu, d.of(hp.mu_max)))


def sutskever_momentum_schedule(mu_max: float, transition_steps: int = 250) -> Bound:
    """The momentum schedule of Sutskever, Martens, Dahl & Hinton (2013): 0.5, 0.75, 0.83, ... up to `mu_max`.

        mu_t = min(1 - 2^(-1 - log2(floor(t / 250) + 1)), mu_max) = min(1 - 1 / (2 (floor(t / 250) + 1)), mu_max)

    t = k, the updates already applied; the paper's 250 is `transition_steps` (named as in
    exponential_decay: the steps between two changes of value). Pass it as the decay of `trace` or
    `scale_by_momentum`; the paper's table uses mu_max in {0.9, 0.99, 0.995, 0.999}.

    >>> import gradtx
    >>> s = gradtx.sutskever_momentum_schedule(0.99)
    >>> s
    sutskever_momentum_schedule(mu_max=0.99, transition_steps=250)
    >>> [round(float(s(k)), 4) for k in (0, 250, 500, 750, 100_000)]
    [0.5, 0.75, 0.8333, 0.875, 0.99]
    """
    builder = "sutskever_momentum_schedule"
    check(builder, mu_max=(mu_max, FRACTION))
    (steps,) = _steps(builder, transition_steps=(transition_steps, CYCLE))
    return schedule(builder, _sutskever, mu_max=mu_max, transition_steps=steps)


__all__ = ["sutskever_momentum_schedule"]
