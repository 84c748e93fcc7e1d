"""The learning rate of stochastic weight averaging: an anneal from the running rate to a constant one."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.base import Bound, Hyperparams, schedule
from gradtx.checks import REAL, ArgumentValueError, check
from gradtx.schedules.base import STEPS, _count, _dtypes, _steps

_ANNEAL = {
    "cos": lambda t: (1 - jnp.cos(jnp.pi * t)) / 2,  # alpha = (1 - cos(pi t)) / 2
    "linear": lambda t: t,  # alpha = t
}


def _swa(hp: Hyperparams, count) -> jax.Array:
    d = _dtypes(hp.init_value, hp.swa_lr)
    k = _count(count)
    t = jnp.clip(k.astype(d.compute) / max(hp.anneal_steps, 1), 0, 1)  # t = clip(k / max(A, 1), 0, 1)
    alpha = _ANNEAL[hp.anneal_strategy](t)
    return d.out(d.of(hp.swa_lr) * alpha + d.of(hp.init_value) * (1 - alpha))  # S alpha + I (1 - alpha)


def swa_schedule(init_value: float, swa_lr: float, anneal_steps: int = 10, anneal_strategy: str = "cos") -> Bound:
    """SWA's learning rate: from `init_value` to `swa_lr` over `anneal_steps` steps, then constant.

        t = clip(k / max(A, 1), 0, 1)
        alpha = (1 - cos(pi t)) / 2   (cos),    t   (linear)
        value(k) = S alpha + I (1 - alpha)

    I = init_value, S = swa_lr, A = anneal_steps. Izmailov et al. (2018), Averaging Weights Leads
    to Wider Optima; torch.optim.swa_utils.SWALR with `anneal_epochs` = A counted in the steps this
    schedule is called with. SWALR anneals from the rate it finds in the optimizer when it takes
    over; here that rate is `init_value`, so the usual "another schedule until swa_start, then SWA"
    is a join (each schedule in a join counts from 0 at its boundary):

        decay = cosine_decay_schedule(0.1, 1000)
        lr = join_schedules([decay, swa_schedule(float(decay(750)), 0.05, 10)], [750])

    With A = 0 the value is I at k = 0 and S after: torch's values when the SWALR is created as it
    takes over (one created at the start with anneal_epochs=0, as in torch's example, sets swa_lr at
    once, under the other scheduler's steps). The params' average itself is `gradtx.swa_params`.

    >>> import gradtx
    >>> s = gradtx.swa_schedule(1.0, 0.1, anneal_steps=4, anneal_strategy="linear")
    >>> s
    swa_schedule(init_value=1.0, swa_lr=0.1, anneal_steps=4, anneal_strategy='linear')
    >>> [round(float(s(k)), 4) for k in (0, 1, 2, 4, 100)]
    [1.0, 0.775, 0.55, 0.1, 0.1]
    """
    builder = "swa_schedule"
    check(builder, init_value=(init_value, REAL), swa_lr=(swa_lr, REAL))
    (steps,) = _steps(builder, anneal_steps=(anneal_steps, STEPS))
    if anneal_strategy not in _ANNEAL:
        raise ArgumentValueError(builder, "anneal_strategy", f"must be 'cos' or 'linear', got {anneal_strategy!r}")
    return schedule(
        builder, _swa, init_value=init_value, swa_lr=swa_lr, anneal_steps=steps, anneal_strategy=anneal_strategy
    )


__all__ = ["swa_schedule"]
