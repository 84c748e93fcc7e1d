"""inject_hyperparams, inject_stateful_hyperparams: hyperparameters that live in the state, where a
running job can change them.

u = b(**state.hyperparams)(g);  schedules evaluated from the count (inject_hyperparams) or from a
state of their own (inject_stateful_hyperparams, optax 0.2.8's layout)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    Bound,
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
from gradtx.checks import ArgumentTypeError, arguments_of, check_dtype, check_schedule
from gradtx.combine import check_members, update_one, wrapper

# ---------------------------------------------------------------------------------------------------
# inject_hyperparams


class InjectHyperparamsState(NamedTuple):
    """count: updates applied (int32), the schedules' argument; hyperparams: name -> the value used
    in the last update (a 0-d array; set one between steps to change it); inner_state."""

    count: Count
    hyperparams: dict[str, jax.Array]
    inner_state: Any


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | jax.Array | np.ndarray) and not isinstance(value, bool)


def _parts(injector: Hyperparams, arguments: dict) -> tuple[Hyperparams, dict, dict, Any]:
    """(the builder with its static arguments, the numbers, the schedules, hyperparam_dtype)."""
    static_args = injector.static_args or ()
    static, numbers, schedules = {}, {}, {}
    for name, value in arguments.items():
        if name in static_args or not (_is_number(value) or callable(value)):
            static[name] = value  # flags, dtypes, None, trees: fixed when built
        elif callable(value):
            schedules[name] = value  # as in optax, a callable is a schedule unless named in static_args
        else:
            numbers[name] = value
    return Hyperparams("inject_hyperparams", injector.args, static), numbers, schedules, injector.hyperparam_dtype


def _hyperparam_dtype(dtype: Any, like: Any) -> np.dtype:
    """`dtype`, or the widest compute dtype of the float leaves of `like` (float32 for none): real and
    at least float32, so b2 = 0.999 is not rounded to 1 for bfloat16 params (optax's would be)."""
    if dtype is not None:
        return dtype
    dtypes = [
        tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(like) if tree.is_inexact(x)
    ]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float32)


def _build_inner(recipe: Hyperparams, values: dict) -> Any:
    return recipe.args[0](**recipe.kwargs, **values)


# The inner transformation is built and run under jit, so its hyperparameters are always traced:
# a builder that checks a concrete number (adadelta leaves out weight decay when it is 0) builds
# the same state structure at init and at every update, eager or jitted.
@functools.partial(jax.jit, static_argnums=0)
def _init_inner(recipe: Hyperparams, values: dict, params: Params) -> OptState:
    return _build_inner(recipe, values).init(params)


@functools.partial(jax.jit, static_argnums=0)
def _update_inner(recipe: Hyperparams, values: dict, g: Updates, state: OptState, params: Any, extra_args: dict):
    return update_one(_build_inner(recipe, values), g, state, params, extra_args)


def _init_injected(hp: Hyperparams, params) -> InjectHyperparamsState:
    recipe, numbers, schedules, dtype = _parts(hp.args[0].hp, hp.arguments)
    dtype = _hyperparam_dtype(dtype, params)
    values = {name: jnp.asarray(v).astype(dtype) for name, v in numbers.items()}
    values |= {name: jnp.asarray(value_at(s, zero_count())).astype(dtype) for name, s in schedules.items()}
    return InjectHyperparamsState(
        count=zero_count(), hyperparams=values, inner_state=_init_inner(recipe, values, params)
    )


def _update_injected(hp: Hyperparams, g, state: InjectHyperparamsState, params=None, **extra_args):
    recipe, _, schedules, dtype = _parts(hp.args[0].hp, hp.arguments)
    dtype = _hyperparam_dtype(dtype, g)  # g has the params' dtypes; a value set by hand may be a Python float
    values = {name: jnp.asarray(v).astype(dtype) for name, v in state.hyperparams.items()}
    values |= {name: jnp.asarray(value_at(s, state.count)).astype(dtype) for name, s in schedules.items()}
    u, inner_state = _update_inner(recipe, values, g, state.inner_state, params, extra_args)
    return u, InjectHyperparamsState(count=next_count(state.count), hyperparams=values, inner_state=inner_state)


class _InjectedHyperparams(Hyperparams):
    """The hyperparameters of `inject_hyperparams(builder)(...)`, whose repr reads so."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self.args[0]) + repr(Hyperparams("", (), self.arguments))


def _bind(injector: Hyperparams, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The builder's arguments by name, defaults included (a positional one needs its name to be set
    in the state): the one place gradtx reads a signature, as optax's inject_hyperparams does."""
    builder = injector.args[0]
    bound = inspect.signature(builder).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if bound.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments |= value
        else:
            arguments[name] = value
    return Hyperparams("", (), arguments).kwargs  # as a builder's: NumPy and 0-d JAX scalars as numbers


def _build_injected(injector: Hyperparams, /, *args: Any, **kwargs: Any) -> GradientTransformation:
    arguments = _bind(injector, *args, **kwargs)
    recipe, numbers, schedules, _ = _parts(injector, arguments)
    called = f"inject_hyperparams({injector.args[0].__qualname__})"  # what the user called, for errors
    for name, fn in schedules.items():
        try:
            check_schedule(called, name, fn)
        except ArgumentTypeError as e:
            fix = f"inject_hyperparams({injector.args[0].__qualname__}, static_args=({name!r},))"
            raise ArgumentTypeError(
                called, name, f"{e.detail}. A callable is taken as a schedule; if {name} is not one, pass {fix}"
            ) from None
    # Built once now with the numbers as given (schedules at step 0), so that the builder checks them.
    with arguments_of(called):
        inner = _build_inner(recipe, numbers | {name: value_at(s, zero_count()) for name, s in schedules.items()})
    check_members("inject_hyperparams", (inner,))
    return wrapper(
        "inject_hyperparams", _init_injected, _update_injected, _Injector(_build_injected, injector),
        hyperparams=_InjectedHyperparams, arguments=arguments,
    )  # fmt: skip


class _Injector(Bound):
    """`inject_hyperparams(builder)`: called with the builder's arguments, as the builder is."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> GradientTransformation:
        return self.fn(self.hp, *args, **kwargs)


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Moves a builder's numeric hyperparameters into the state, where they can change between steps.

        tx = inject_hyperparams(builder)(**args)
        state.hyperparams[name]        the value of each numeric argument (or schedule) in use
        u = builder(**args, **state.hyperparams)(g),  then schedules are evaluated at count + 1

    Each number (int or float) becomes a 0-d array in the state; set `state.hyperparams["learning_rate"]`
    between steps to change it in a running job (the next step is the step of the builder given that
    value). A schedule (any callable not named in `static_args`) is evaluated at each step
    and the value stored. Booleans, None, dtypes and the arguments named in `static_args` stay fixed.
    The values are stored in `hyperparam_dtype`, by default the widest compute dtype of the params
    (real, at least float32: optax stores them in the params' dtype, where b2 = 0.999 is 1.0 in
    bfloat16). The state is `InjectHyperparamsState(count, hyperparams, inner_state)`, optax's
    layout before 0.1.9 (optax now adds one schedule state per schedule, each a copy of count).

    The builder is then always called with traced values (under jit, also when you are not), so
    its state structure cannot depend on them.

    >>> import gradtx
    >>> tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
    >>> state = tx.init({"w": 1.0})
    >>> state.hyperparams["learning_rate"] = 0.01  # the next step uses 0.01
    >>> tx
    inject_hyperparams(sgd)(learning_rate=0.1, nesterov=False, dampening=0.0)
    """
    return _Injector(_build_injected, _injector("inject_hyperparams", inner_factory, static_args, hyperparam_dtype))


def _injector(builder: str, inner_factory: Any, static_args: str | Iterable[str], hyperparam_dtype: Any) -> Hyperparams:
    """The checked arguments of `inject_hyperparams(...)` or `inject_stateful_hyperparams(...)`."""
    if not callable(inner_factory):
        raise TypeError(f"{builder}: inner_factory must be a builder of transformations, got {inner_factory!r}")
    names = (static_args,) if isinstance(static_args, str) else tuple(static_args)
    parameters = inspect.signature(inner_factory).parameters
    if unknown := [name for name in names if name not in parameters]:
        raise ValueError(
            f"{builder}: static_args must name arguments of {inner_factory.__qualname__}, got"
            f" {unknown}; its arguments are {list(parameters)}"
        )
    dtype = check_dtype(builder, "hyperparam_dtype", hyperparam_dtype)
    return Hyperparams(builder, (inner_factory,), {"static_args": names or None, "hyperparam_dtype": dtype})


# ---------------------------------------------------------------------------------------------------
# inject_stateful_hyperparams: optax 0.2.8's inject_hyperparams, with stateful schedules


@runtime_checkable
class StatefulSchedule(Protocol):
    """A schedule with a state of its own (optax's protocol): `init() -> state`, `update(state,
    **extra_args) -> state`, and `schedule(state, **extra_args) -> value`. The keyword arguments
    are those given to the transformation's update (a loss, say), so a schedule may follow them."""

    def init(self) -> Any: ...

    def update(self, state: Any, **extra_args: Any) -> Any: ...

    def __call__(self, state: Any, **extra_args: Any) -> Any: ...


class WrappedScheduleState(NamedTuple):
    """count: updates applied (int32), the wrapped schedule's argument."""

    count: Count


class WrappedSchedule:
    """A schedule `count -> value` as a StatefulSchedule, its state the count (optax's class).

    Equal and hashable by its schedule, and picklable when the schedule is (gradtx's schedules are).
    """

    __slots__ = ("schedule_fn",)

    def __init__(self, schedule_fn: Callable[[jax.Array], Any]):
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=zero_count())

    def update(self, state: WrappedScheduleState, **extra_args: Any) -> WrappedScheduleState:
        return WrappedScheduleState(count=next_count(state.count))

    def __call__(self, state: WrappedScheduleState, **extra_args: Any) -> Any:
        return self.schedule_fn(state.count)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WrappedSchedule) and self.schedule_fn == other.schedule_fn

    def __hash__(self) -> int:
        return hash((WrappedSchedule, self.schedule_fn))

    def __repr__(self) -> str:
        return f"WrappedSchedule({getattr(self.schedule_fn, '__qualname__', None) or self.schedule_fn!r})"

    def __getstate__(self) -> Any:
        return self.schedule_fn

    def __setstate__(self, state: Any) -> None:
        self.schedule_fn = state


class InjectStatefulHyperparamsState(NamedTuple):
    """count: updates applied (int32); hyperparams: name -> the value used in the last update (set a
    number's between steps to change it); hyperparams_states: name -> each schedule's state (a
    `WrappedScheduleState(count)` for a schedule of the count); inner_state (optax 0.2.8's layout)."""

    count: Count
    hyperparams: dict[str, jax.Array]
    hyperparams_states: dict[str, Any]
    inner_state: Any


def _stored(value: Any, dtype: np.dtype) -> jax.Array:
    """A hyperparameter as kept in the state: floats in `dtype`, integers as int32 (a count)."""
    value = jnp.asarray(value)
    return value.astype(dtype if jnp.issubdtype(value.dtype, jnp.inexact) else jnp.int32)


def _stateful_parts(injector: Hyperparams, arguments: dict) -> tuple[Hyperparams, dict, dict, Any]:
    """As `_parts`, each schedule made a StatefulSchedule (a plain one wrapped in WrappedSchedule)."""
    recipe, numbers, schedules, dtype = _parts(injector, arguments)
    schedules = {n: f if isinstance(f, StatefulSchedule) else WrappedSchedule(f) for n, f in schedules.items()}
    return recipe, numbers, schedules, dtype


def _init_stateful(hp: Hyperparams, params) -> InjectStatefulHyperparamsState:
    recipe, numbers, schedules, dtype = _stateful_parts(hp.args[0].hp, hp.arguments)
    dtype = _hyperparam_dtype(dtype, params)
    states = {name: f.init() for name, f in schedules.items()}
    values = {name: _stored(v, dtype) for name, v in numbers.items()}
    values |= {name: _stored(f(states[name]), dtype) for name, f in schedules.items()}
    return InjectStatefulHyperparamsState(
        count=zero_count(), hyperparams=values, hyperparams_states=states,
        inner_state=_init_inner(recipe, values, params),
    )  # fmt: skip


def _update_stateful(hp: Hyperparams, g, state: InjectStatefulHyperparamsState, params=None, **extra_args):
    recipe, _, schedules, dtype = _stateful_parts(hp.args[0].hp, hp.arguments)
    dtype = _hyperparam_dtype(dtype, g)
    states = state.hyperparams_states
    values = {name: _stored(v, dtype) for name, v in state.hyperparams.items()}
    values |= {name: _stored(f(states[name], **extra_args), dtype) for name, f in schedules.items()}  # v_k = f(s_k)
    new_states = {name: f.update(states[name], **extra_args) for name, f in schedules.items()}  # s_k <- update(s_k)
    u, inner_state = _update_inner(recipe, values, g, state.inner_state, params, extra_args)
    return u, InjectStatefulHyperparamsState(
        count=next_count(state.count), hyperparams=values, hyperparams_states=new_states, inner_state=inner_state
    )


def _build_stateful(injector: Hyperparams, /, *args: Any, **kwargs: Any) -> GradientTransformation:
    arguments = _bind(injector, *args, **kwargs)
    recipe, numbers, schedules, _ = _stateful_parts(injector, arguments)
    called = f"inject_stateful_hyperparams({injector.args[0].__qualname__})"  # what the user called, for errors
    for name, f in schedules.items():
        fn = f.schedule_fn if isinstance(f, WrappedSchedule) else (lambda c, f=f: f(f.init()))
        try:
            check_schedule(called, name, fn)
        except ArgumentTypeError as e:
            fix = f"inject_stateful_hyperparams({injector.args[0].__qualname__}, static_args=({name!r},))"
            raise ArgumentTypeError(
                called, name, f"{e.detail}. A callable is taken as a schedule; if {name} is not one, pass {fix}"
            ) from None
    # Built once now with the numbers as given (schedules at their first value), so that the builder checks them.
    with arguments_of(called):
        inner = _build_inner(recipe, numbers | {name: f(f.init()) for name, f in schedules.items()})
    check_members("inject_stateful_hyperparams", (inner,))
    return wrapper(
        "inject_stateful_hyperparams", _init_stateful, _update_stateful, _Injector(_build_stateful, injector),
        hyperparams=_InjectedHyperparams, arguments=arguments,
    )  # fmt: skip


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """`inject_hyperparams` with schedules that keep a state: optax 0.2.8's inject_hyperparams.

        tx = inject_stateful_hyperparams(builder)(**args)
        v_k = f_k(s_k, **extra_args);  s_k <- f_k.update(s_k, **extra_args)    for each schedule k
        u = builder(**args, **state.hyperparams)(g)

    A schedule is either a `StatefulSchedule` (init/update/__call__, which may read update's
    keyword arguments, e.g. a learning rate that follows the loss) or a function of the count,
    wrapped in `WrappedSchedule` (its state `WrappedScheduleState(count)`); each value is taken from
    the schedule's state before it moves on. Numbers live in `state.hyperparams` as in
    `inject_hyperparams`; floats, and the schedules' values, are stored in `hyperparam_dtype` (by
    default the params' widest compute dtype: real, at least float32; optax uses the params' widest
    dtype, so b2 = 0.999 is 1.0 for bfloat16 params, and keeps a schedule's value in the dtype the
    schedule returns), integers as int32. The state is optax 0.2.8's
    `InjectStatefulHyperparamsState(count, hyperparams, hyperparams_states, inner_state)`, so
    checkpoints of optax's `inject_hyperparams` (which optax 0.2.8 builds this way and of which
    `inject_stateful_hyperparams` is its deprecated name) load here; gradtx's `inject_hyperparams`
    keeps the older layout without `hyperparams_states`. Numbers are equal to it.

    >>> import gradtx
    >>> tx = gradtx.inject_stateful_hyperparams(gradtx.sgd)(learning_rate=gradtx.linear_schedule(0.1, 0.0, 10))
    >>> state = tx.init({"w": 1.0})
    >>> state.hyperparams_states["learning_rate"]
    WrappedScheduleState(count=Array(0, dtype=int32))
    """
    injector = _injector("inject_stateful_hyperparams", inner_factory, static_args, hyperparam_dtype)
    return _Injector(_build_stateful, injector)


__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "StatefulSchedule",
    "WrappedSchedule",
    "WrappedScheduleState",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
]
