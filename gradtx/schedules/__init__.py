"""Schedules: a learning rate or a momentum as a function of the step count.

    schedule(k) -> value,   k = the number of updates already applied (the first update uses schedule(0))

This is the one step convention of gradtx: every transformation that takes a schedule keeps a step
count in its state and calls the schedule with it before incrementing it, as optax does.

Each builder returns a `gradtx.base.Bound`: a module-level function `_fn(hp, count)` with the
builder's arguments bound to it. So a schedule is equal and hashable by value (two
`cosine_decay_schedule(1.0, 100)` share one compiled step), picklable, and its repr is the code that
rebuilds it. Composite schedules (`join_schedules`, `sgdr_schedule`, `multiply_schedules`) hold their
member schedules; a user's function in a schedule (`lambda_schedule`'s factor, `cyclic_schedule`'s
`scale_fn`) must be module-level to pickle, and is called with the count as an array of the canonical
integer dtype (int64 under x64), so that `k / 10` in it is the canonical float.

Counts: a Python or NumPy integer, an integer array (an int32 step counter), or a tracer under
`jax.jit` and `jax.vmap`. An array of counts gives an array of values, elementwise. Negative counts
are treated as 0. Step boundaries are compared in integers, so they are exact at any count.

Dtypes: when every hyperparameter is a number (NumPy and JAX scalars are stored as Python numbers),
values are computed and returned in JAX's default float: float32, or float64 under
`jax_enable_x64`, so a float64 run's learning rate is not rounded to float32 (optax's are float64
there too). A traced hyperparameter (vmapping over one) gives its own dtype: float32, or float64
for a float64 array. gradtx's transformations cast a schedule's value to each leaf's compute dtype,
so a float32 or bfloat16 model is never promoted by a float64 value.

Arguments: names, order and defaults are optax's; the schedules from torch.optim (cycles.py,
products.py, swa.py: CyclicLR, OneCycleLR, LambdaLR, MultiplicativeLR, ChainedScheduler, SWALR) keep
torch's argument names and defaults, and k is torch's `last_epoch` with the scheduler stepped once
per update (README.md maps every torch scheduler). Where torch writes a momentum into the optimizer
as a side effect (`cycle_momentum`), a second schedule of the same cycle arguments gives it.

Step arguments (`transition_steps`, `decay_steps`, `warmup_steps`, boundaries, `step_size_up`,
`total_steps`, `anneal_steps`) are concrete integers (an integral float such as 1e4 is stored as an int).
Concrete values are checked when the schedule is built. Where optax quietly accepts a value that
its documentation rules out (a negative `transition_begin`, a zero `decay_rate`, a non-positive
`transition_steps` in `exponential_decay`), gradtx raises instead. `boundaries_and_scales` may be a
dict `{step: scale}` (optax's form) or `(step, scale)` pairs, which is how it is stored and shown.

A length of 0 means "no ramp": `polynomial_schedule`/`linear_schedule` with `transition_steps=0`
hold `init_value` (as optax), the warmups with `warmup_steps=0` start at `peak_value`. Where a length
divides (the decays and cycles: `exponential_decay`, `inverse_time_decay`, `cosine_decay_schedule`,
the warmup-then-decay schedules' decay part, the one-cycle and cyclic schedules), 0 is an error
that names the argument. tests/test_schedules.py holds each schedule to this.

Values differ from optax's only where optax's are wrong: `warmup_constant_schedule` with
`warmup_steps=0` starts at `peak_value` (optax's stays at `init_value` for ever); ramps are exact at
their ends under jit (optax's `polynomial_schedule` with a fractional power is NaN at its last step
under jit, where 1 - t/T rounds below 0); negative counts are treated as 0.
"""

from gradtx.schedules.cycles import (
    cyclic_momentum_schedule,
    cyclic_schedule,
    onecycle_momentum_schedule,
    onecycle_schedule,
)
from gradtx.schedules.momentum import sutskever_momentum_schedule
from gradtx.schedules.piecewise import (
    cosine_onecycle_schedule,
    join_schedules,
    linear_onecycle_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    sgdr_schedule,
)
from gradtx.schedules.products import lambda_schedule, multiplicative_schedule, multiply_schedules
from gradtx.schedules.ramps import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    inverse_time_decay,
    linear_schedule,
    polynomial_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from gradtx.schedules.swa import swa_schedule

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "cyclic_momentum_schedule",
    "cyclic_schedule",
    "exponential_decay",
    "inverse_time_decay",
    "join_schedules",
    "lambda_schedule",
    "linear_onecycle_schedule",
    "linear_schedule",
    "multiplicative_schedule",
    "multiply_schedules",
    "onecycle_momentum_schedule",
    "onecycle_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "sutskever_momentum_schedule",
    "swa_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
