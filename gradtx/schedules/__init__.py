"""Schedules: a learning rate or a momentum as a function of the step count.

    schedule(k) -> value,   k = the number of updates already applied (the first update uses schedule(0))

This is the one step convention of gradtx: every transformation that takes a schedule keeps a step
count in its state and calls the schedule with it before incrementing it, as optax does.

Each builder returns a `gradtx.base.Bound`: a module-level function `_fn(hp, count)` with the
builder's arguments bound to it. So a schedule is equal and hashable by value (two
`cosine_decay_schedule(1.0, 100)` share one compiled step), picklable, and its repr is the code that
rebuilds it. Composite schedules (`join_schedules`, `sgdr_schedule`) hold their member schedules.

Counts: a Python or NumPy integer, an integer array (an int32 step counter), or a tracer under
`jax.jit` and `jax.vmap`. An array of counts gives an array of values, elementwise. Negative counts
are treated as 0. Step boundaries are compared in integers, so they are exact at any count.

Dtypes: when every hyperparameter is a number (NumPy and JAX scalars are stored as Python numbers),
values are computed and returned in JAX's default float: float32, or float64 under
`jax_enable_x64`, so a float64 run's learning rate is not rounded to float32 (optax's are float64
there too). A traced hyperparameter (vmapping over one) gives its own dtype: float32, or float64
for a float64 array. gradtx's transformations cast a schedule's value to each leaf's compute dtype,
so a float32 or bfloat16 model is never promoted by a float64 value.

Arguments: names, order and defaults are optax's. Step arguments (`transition_steps`, `decay_steps`,
`warmup_steps`, boundaries) are concrete integers (an integral float such as 1e4 is stored as an int).
Concrete values are checked when the schedule is built. Where optax quietly accepts a value that
its documentation rules out (a negative `transition_begin`, a zero `decay_rate`, a non-positive
`transition_steps` in `exponential_decay`), gradtx raises instead. `boundaries_and_scales` may be a
dict `{step: scale}` (optax's form) or `(step, scale)` pairs, which is how it is stored and shown.

Values differ from optax's only where optax's are wrong: `warmup_constant_schedule` with
`warmup_steps=0` starts at `peak_value` (optax's stays at `init_value` for ever); ramps are exact at
their ends under jit (optax's `polynomial_schedule` with a fractional power is NaN at its last step
under jit, where 1 - t/T rounds below 0); negative counts are treated as 0.
"""

from gradtx.schedules.momentum import sutskever_momentum_schedule
from gradtx.schedules.piecewise import (
    cosine_onecycle_schedule,
    join_schedules,
    linear_onecycle_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    sgdr_schedule,
)
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

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inverse_time_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "sutskever_momentum_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
