"""Wrappers: transformations that change when, whether or with what their inner transformation runs.

    apply_if_finite(t, n)        u = t(g) if g is finite (or after more than n non-finite in a row), else 0
    MultiSteps(t, k)             u = t(mean of the last k gradients) every k-th step, else 0
    inject_hyperparams(b)(...)   u = b(**state.hyperparams)(g): hyperparameters live in the state
    lookahead(t, k, alpha)       fast weights step with t; every k steps the slow weights move
                                 alpha of the way to them, and the fast weights restart there

Each wrapper's state nests its inner transformation's state, under optax's field names, and
each passes the caller's keyword arguments on to it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    SCHEDULE,
    Bound,
    Count,
    GradientTransformation,
    Hyperparams,
    InitFn,
    OptState,
    Params,
    UpdateFn,
    Updates,
    check,
    check_dtype,
    check_matching_trees,
    next_count,
    require_params,
    value_at,
    zero_count,
)
from gradtx.combine import check_members, update_one, wrapper


def _where(condition: jax.Array, a: Any, b: Any) -> Any:
    """`a` where the scalar `condition` holds, `b` elsewhere, leaf by leaf (trees of one structure)."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)


def _all_finite(updates: Updates) -> jax.Array:
    leaves = jax.tree.leaves(updates)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


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
    finite = _all_finite(g)
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
    acc = _where(skip, state.acc_grads, acc)  # a skipped gradient is as if it never came
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
        acc_grads=_where(emit, tree.zeros_like(acc), acc),
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
    # Built once now with the numbers as given (schedules at step 0), so that the builder checks them.
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
    inject_hyperparams(sgd)(learning_rate=0.1, nesterov=False)
    """
    if not callable(inner_factory):
        raise TypeError(
            f"inject_hyperparams: inner_factory must be a builder of transformations, got {inner_factory!r}"
        )
    names = (static_args,) if isinstance(static_args, str) else tuple(static_args)
    parameters = inspect.signature(inner_factory).parameters
    if unknown := [name for name in names if name not in parameters]:
        raise ValueError(
            f"inject_hyperparams: static_args must name arguments of {inner_factory.__qualname__}, got"
            f" {unknown}; its arguments are {list(parameters)}"
        )
    dtype = check_dtype("inject_hyperparams", "hyperparam_dtype", hyperparam_dtype)
    injector = Hyperparams(
        "inject_hyperparams", (inner_factory,), {"static_args": names or None, "hyperparam_dtype": dtype}
    )
    return _Injector(_build_injected, injector)


# ---------------------------------------------------------------------------------------------------
# lookahead


class LookaheadState(NamedTuple):
    """fast_state: the fast optimizer's state; steps_since_sync: its steps since the last sync (int32)."""

    fast_state: Any
    steps_since_sync: Count


class LookaheadParams(NamedTuple):
    """The fast weights (take gradients here) and the slow weights (evaluate these)."""

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        """Fast and slow weights both equal to `params`: where a run starts."""
        return cls(fast=params, slow=params)


def _is_pair(params: Any) -> bool:
    return getattr(params, "_fields", None) == ("fast", "slow")  # gradtx's or optax's LookaheadParams


def _init_lookahead(hp: Hyperparams, params) -> LookaheadState:
    fast = params.fast if _is_pair(params) else params  # as optax: the fast weights alone do too
    return LookaheadState(fast_state=hp.args[0].init(fast), steps_since_sync=zero_count())


def _update_lookahead(hp: Hyperparams, g, state: LookaheadState, fast, slow, extra_args: dict):
    u, fast_state = update_one(hp.args[0], g, state.fast_state, fast, extra_args)  # the fast step
    sync = state.steps_since_sync + 1 >= hp.sync_period  # this is the k-th fast step: synchronize
    alpha = hp.slow_step_size
    d = tree.sub(tree.add(fast, u), slow)  # d = W_fast' - W_slow, W_fast' = W_fast + u
    slow_u = tree.scale(jnp.where(sync, alpha, 0.0), d)  # W_slow <- W_slow + alpha d
    fast_u = tree.lerp(u, d, 1.0, jnp.where(sync, alpha - 1.0, 0.0))  # W_fast <- W_slow (new): u - (1 - alpha) d
    if hp.reset_state:
        fast_state = _where(sync, hp.args[0].init(fast), fast_state)
    steps = jnp.where(sync, zero_count(), next_count(state.steps_since_sync))
    return fast_u, slow_u, LookaheadState(fast_state=fast_state, steps_since_sync=steps)


class _LookaheadUpdateFn(UpdateFn):
    """lookahead's update: the params are a (fast, slow) pair, the gradients those of the fast weights,
    and the updates a (fast, slow) pair for `apply_updates`."""

    __slots__ = ()

    def _traced(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        params = require_params("lookahead", params)
        if not _is_pair(params):
            raise TypeError(
                f"lookahead: params must be LookaheadParams(fast, slow), got {type(params).__name__}."
                " Start from gradtx.LookaheadParams.init_synced(params) and take gradients at params.fast."
            )
        g = tree.trainable(updates)
        check_matching_trees("lookahead", updates, g, None, params.fast)
        fast, slow = tree.trainable(params.fast), tree.trainable(params.slow)
        fast_u, slow_u, state = self.fn(self.hp, g, state, fast, slow, extra_args)
        return type(params)(tree.with_frozen(fast_u, updates), tree.with_frozen(slow_u, updates)), state


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead (Zhang et al., 2019): k steps forward with a fast optimizer, then one step back.

        W_fast <- W_fast + fast_optimizer(g)        every step, g taken at W_fast
        every k = sync_period steps:
            W_slow <- W_slow + alpha (W_fast - W_slow)     (alpha = slow_step_size)
            W_fast <- W_slow

    The params are `LookaheadParams(fast, slow)` (`LookaheadParams.init_synced(params)` to start),
    the gradients are taken at `params.fast`, and the updates are a `LookaheadParams` pair for
    `apply_updates`; evaluate the slow weights. `reset_state=True` restarts the fast optimizer's
    state at each sync. The state is `LookaheadState(fast_state, steps_since_sync)`, as optax's.
    `update` needs params. Do not change the updates before applying them: the pair is one step.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.lookahead(gradtx.sgd(0.1), sync_period=5, slow_step_size=0.5)
    >>> params = gradtx.LookaheadParams.init_synced({"w": jnp.ones(2)})
    >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> params = gradtx.apply_updates(params, updates)
    """
    check_members("lookahead", (fast_optimizer,))
    check("lookahead", sync_period=(sync_period, "[1, inf)"), slow_step_size=(slow_step_size, "[0, 1]"))
    if isinstance(sync_period, float):
        raise TypeError(f"lookahead: sync_period must be an integer, got {sync_period!r}")
    hp = Hyperparams(
        "lookahead", (fast_optimizer,),
        {"sync_period": sync_period, "slow_step_size": slow_step_size, "reset_state": reset_state},
    )  # fmt: skip
    return GradientTransformation(InitFn(_init_lookahead, hp), _LookaheadUpdateFn(_update_lookahead, hp))


__all__ = [
    "ApplyIfFiniteState",
    "InjectHyperparamsState",
    "LookaheadParams",
    "LookaheadState",
    "MultiSteps",
    "MultiStepsState",
    "apply_if_finite",
    "inject_hyperparams",
    "lookahead",
    "skip_large_updates",
    "skip_not_finite",
]
