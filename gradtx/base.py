"""The protocol: a gradient transformation is a pair of pure functions.

    init(params) -> state
    update(updates, state, params=None, **extra_args) -> (new_updates, new_state)

`GradientTransformation` is a NamedTuple of exactly those two fields, so optax, flax and equinox
accept a gradtx transformation and gradtx accepts theirs. Each field is a `Bound`: a module-level
function with its hyperparameters bound to it. That one choice gives every transformation, optimizer
and schedule its contract for free:

- equal and hashable by value (two `sgd(0.1)` share one compiled step),
- picklable (no closures),
- a `repr` that reads as the code that built it (arguments that are None are left out),
- hyperparameters inspectable without running anything (`tx.hyperparams.b1`).

A transformation is written as a state NamedTuple, an init function and an update function that
take the hyperparameters as their first argument, and a builder that validates its arguments and
calls `transformation`. See `gradtx/transforms/adam.py` for the pattern.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.checks import check_matching_trees, is_tracer, normalize

# ---------------------------------------------------------------------------------------------------
# Types

PyTree = Any
Params = PyTree  # a tree of arrays: the model's parameters
Updates = PyTree  # a tree of arrays with the structure of Params (gradients going in)
OptState = PyTree  # a tree of NamedTuples whose leaves are arrays
Scalar = float | int | jax.Array | np.ndarray | np.number
Schedule = Callable[[jax.Array], jax.Array]  # count -> value, count = updates already applied
ScalarOrSchedule = Scalar | Schedule
# An int32 scalar array. Typed Any because a NamedTuple field named `count` (optax's name, kept)
# shadows tuple.count for type checkers.
Count = Any


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...


# ---------------------------------------------------------------------------------------------------
# Hyperparameters bound to module-level functions


def _key(value: Any) -> Hashable:
    """A hashable stand-in for a hyperparameter: itself, its flattened tree, or its identity."""
    try:
        hash(value)
        return (type(value), value) if isinstance(value, float | int | bool) else value
    except TypeError:
        pass
    leaves, treedef = jax.tree.flatten(value)
    if not any(isinstance(leaf, jax.Array | np.ndarray) for leaf in leaves):
        try:
            key = (treedef, tuple(leaves))
            hash(key)
            return key
        except TypeError:
            pass
    return ("id", id(value))  # arrays and tracers compare by identity


def _show(value: Any) -> str:
    if isinstance(value, np.dtype):
        return f"jnp.{value.name}"
    if is_tracer(value):
        return f"<traced {value.aval.str_short()}>"
    if isinstance(value, jax.Array | np.ndarray):
        return f"<array {value.dtype}{list(value.shape)}>"
    if callable(value) and not isinstance(value, Bound | GradientTransformation):
        return getattr(value, "__qualname__", repr(value))
    if type(value) is dict:  # e.g. monitor's measures: functions by name, as everywhere else
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        inner = ", ".join(map(_show, value))
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


class Hyperparams:
    """The arguments a builder was called with: `hp.b1`, `hp.args`, `hp.builder`."""

    __slots__ = ("_key", "args", "builder", "kwargs")
    builder: str
    args: tuple
    kwargs: dict[str, Any]
    _key: Hashable

    def __init__(self, builder: str, args: tuple = (), kwargs: dict[str, Any] | None = None):
        kwargs = {k: normalize(v) for k, v in (kwargs or {}).items()}
        object.__setattr__(self, "builder", builder)
        object.__setattr__(self, "args", tuple(normalize(a) for a in args))
        object.__setattr__(self, "kwargs", kwargs)
        key = (builder, tuple(map(_key, self.args)), tuple((k, _key(v)) for k, v in kwargs.items()))
        object.__setattr__(self, "_key", key)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "kwargs")[name]
        except KeyError:
            raise AttributeError(f"{self.builder} has no hyperparameter {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("hyperparameters are read-only: build a new transformation")

    def __getstate__(self) -> tuple:
        return (self.builder, self.args, self.kwargs)

    def __setstate__(self, state: tuple) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hyperparams) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        # None (an unused option) is omitted; every other value is shown, so the repr rebuilds an equal object.
        shown = [_show(a) for a in self.args]
        shown += [f"{k}={_show(v)}" for k, v in self.kwargs.items() if v is not None]
        return f"{self.builder}({', '.join(shown)})"


class Bound:
    """A module-level function `fn(hp, *args)` with its hyperparameters `hp` bound.

    Calling it forwards positional arguments and drops keyword arguments that the function does not
    take: every `update` accepts and ignores `**extra_args` (flax's nnx forwards some).
    """

    __slots__ = ("__weakref__", "fn", "hp")  # jax.jit keeps weak references to functions
    fn: Callable[..., Any]
    hp: Hyperparams

    def __init__(self, fn: Callable[..., Any], hp: Hyperparams):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "hp", hp)

    def __call__(self, *args: Any, **extra_args: Any) -> Any:
        return self.fn(self.hp, *args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Bound is immutable")

    def __getstate__(self) -> tuple:
        return (self.fn, self.hp)

    def __setstate__(self, state: tuple) -> None:
        object.__setattr__(self, "fn", state[0])
        object.__setattr__(self, "hp", state[1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bound) and self.fn is other.fn and self.hp == other.hp

    def __hash__(self) -> int:
        return hash((self.fn, self.hp))

    def __repr__(self) -> str:
        return repr(self.hp)


def mesh_of(tree_: Any) -> Any:
    for leaf in jax.tree.leaves(tree_):
        mesh = getattr(getattr(leaf, "sharding", leaf), "mesh", None)
        if isinstance(mesh, jax.sharding.Mesh):
            return mesh
    return None


class InitFn(Bound):
    """An init: `fn(hp, params)` sees only float leaves, so integer and boolean leaves get no state."""

    __slots__ = ()

    def __call__(self, params: Params, **extra_args: Any) -> OptState:
        state = self.fn(self.hp, tree.trainable(params))
        mesh = mesh_of(params)
        if mesh is None:
            return state

        # Step counts (and constants such as Muon's coefficients) start replicated on the params' mesh,
        # where a jitted step leaves them, so the second step finds the same input shardings as the
        # first and does not compile again. P(None, ...) for arrays: jit returns P() so.
        def replicated(x: jax.Array) -> Any:
            return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*[None] * x.ndim))

        return jax.tree.map(lambda x: jax.device_put(x, replicated(x)) if _is_unplaced_scalar(x, mesh) else x, state)


def _is_unplaced_scalar(x: Any, mesh: Any) -> bool:
    """A count, or a constant the state keeps (Muon's coefficients: uncommitted), not yet on the mesh."""
    return (
        isinstance(x, jax.Array)
        and not is_tracer(x)
        and (x.ndim == 0 or not x.committed)
        and getattr(x.sharding, "mesh", None) != mesh
    )


class UpdateFn(Bound):
    """An update: `fn(hp, updates, state, params)` sees only float leaves; the others pass through.

    Integer, boolean and None leaves (equinox and flax models have them) come back as they went in:
    the filtering happens while tracing and costs nothing in the compiled step.
    """

    __slots__ = ("init",)  # the transformation's init function, to check a state against what it builds
    init: Callable[..., Any] | None

    def __init__(self, fn: Callable[..., Any], hp: Hyperparams, init: Callable[..., Any] | None = None):
        super().__init__(fn, hp)
        object.__setattr__(self, "init", init)

    def __getstate__(self) -> tuple:
        return (self.fn, self.hp, self.init)

    def __setstate__(self, state: tuple) -> None:
        super().__setstate__(state[:2])
        object.__setattr__(self, "init", state[2])

    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]:
        if _is_eager_call((updates, state, params, extra_args)):
            return _compiled(self)(updates, state, params, **extra_args)
        return self._traced(updates, state, params, extra_args)

    def _traced(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        g = tree.trainable(updates)
        init = None if self.init is None else functools.partial(self.init, self.hp)
        check_matching_trees(self.hp.builder, updates, g, state, params, init)
        params = None if params is None else tree.trainable(params)
        new, state = self._apply(g, state, params, extra_args)
        return tree.with_frozen(new, updates), state

    def _apply(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        return self.fn(self.hp, updates, state, params)


_DATA = (jax.Array, np.ndarray, np.generic, float, int, complex)


def _is_eager_call(args: Any) -> bool:
    """True outside any JAX transformation, for arguments that `jax.jit` takes (arrays, numbers, None).

    An update called eagerly (a notebook, a Python loop without jit) then runs as one compiled program
    instead of op by op: a few ops per leaf, each a dispatch, make an eager Adam step on a model of
    1000 small arrays cost 0.3 s; compiled, it costs what a jitted step does. Under `jax.jit`, `vmap`
    or `grad` the arguments are tracers and the update is traced as written. `jax.disable_jit()`
    restores the op-by-op path (for debugging: prints and breakpoints inside update run again).
    """
    leaves = jax.tree.leaves(args)
    if not leaves or jax.config.jax_disable_jit:  # type: ignore[attr-defined]  # nothing to compile (an empty tree), or asked not to
        return False
    return all(isinstance(x, _DATA) and not isinstance(x, jax.core.Tracer) for x in leaves)


@functools.lru_cache(maxsize=256)
def _compiled(update: UpdateFn) -> Callable[..., Any]:
    # Keyed by value: equal transformations (two `adam(1e-3)`) share one compiled update.
    return jax.jit(update)


class ExtraArgsUpdateFn(UpdateFn):
    """An update whose function takes the caller's keyword arguments too (`chain` forwards them)."""

    __slots__ = ()

    def _apply(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        return self.fn(self.hp, updates, state, params, **extra_args)


class GradientTransformation(NamedTuple):
    """An `init`/`update` pair of pure functions; see the module docstring for the contract."""

    init: TransformInitFn
    update: TransformUpdateFn

    @property
    def hyperparams(self) -> Hyperparams | None:
        """The builder's arguments, e.g. `gradtx.scale_by_adam().hyperparams.b1 == 0.9`."""
        return self.init.hp if isinstance(self.init, Bound) else None

    def __repr__(self) -> str:
        if isinstance(self.init, Bound):
            return repr(self.init.hp)
        return f"{type(self).__name__}(init={_show(self.init)}, update={_show(self.update)})"  # hand-built


class GradientTransformationExtraArgs(GradientTransformation):
    """A GradientTransformation whose `update` takes the caller's keyword arguments (optax's class).

    Every transformation gradtx builds is one, because every gradtx `update` accepts keyword
    arguments and ignores those it does not use; so `isinstance(gradtx.adam(1e-3),
    gradtx.GradientTransformationExtraArgs)` holds, as it does for optax's chains. Build one by
    hand, `GradientTransformationExtraArgs(init, update)`, when `update` takes keyword arguments
    (`update(updates, state, params=None, *, loss, **extra_args)`): `chain` and the wrappers then
    pass theirs on to it. A hand-built `GradientTransformation(init, update)` gets none, so an
    optax-style `update(updates, state, params=None)` works in a chain called with keywords. Equal
    to a GradientTransformation of the same two functions (both are tuples). gradtx's combinators
    also pass keywords to optax's GradientTransformationExtraArgs; optax's own do not recognise
    gradtx's class, so inside `optax.chain` a gradtx member is given none.

    >>> import gradtx
    >>> isinstance(gradtx.sgd(0.1), gradtx.GradientTransformationExtraArgs)
    True
    """

    __slots__ = ()


def transformation(
    builder: str,
    init: Callable[..., OptState],
    update: Callable[..., tuple[Updates, OptState]],
    *args: Any,
    extra_args: bool = False,
    **kwargs: Any,
) -> GradientTransformation:
    """Binds hyperparameters to `init(hp, params)` and `update(hp, updates, state, params)`.

    `builder` is the public name, used by `repr`. Pass `extra_args=True` when `update` takes the
    caller's keyword arguments (as `chain` does to forward them).
    """
    hp = Hyperparams(builder, args, kwargs)
    update_fn = ExtraArgsUpdateFn if extra_args else UpdateFn
    return GradientTransformationExtraArgs(InitFn(init, hp), update_fn(update, hp, init))  # every update takes keywords


def schedule(builder: str, fn: Callable[..., jax.Array], **kwargs: Any) -> Bound:
    """Binds hyperparameters to `fn(hp, count)`: a schedule that is equal, hashable and picklable."""
    return Bound(fn, Hyperparams(builder, (), kwargs))


# ---------------------------------------------------------------------------------------------------
# Building blocks shared by transformations


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


def value_at(hyperparameter: ScalarOrSchedule, count: jax.Array) -> Any:
    """A hyperparameter's value at step `count`: a schedule is called, a number returned as is."""
    return hyperparameter(count) if callable(hyperparameter) else hyperparameter


def zero_count() -> jax.Array:
    """The step counter's initial value: int32 zero."""
    return jnp.zeros([], jnp.int32)


def next_count(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the int32 maximum instead of wrapping to a negative count."""
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)


def init_empty(hp: Hyperparams, params: Params) -> EmptyState:
    """The init of every stateless transformation."""
    return EmptyState()


def init_empty_state(params: Params) -> EmptyState:
    """optax's init for a hand-built stateless transformation: `GradientTransformation(init_empty_state, update)`.

    >>> import gradtx
    >>> gradtx.init_empty_state({"w": 1.0})
    EmptyState()
    """
    return EmptyState()


def _identity_update(hp: Hyperparams, updates: Updates, state: OptState, params: Params = None):
    return updates, state


def identity() -> GradientTransformation:
    """Leaves updates unchanged."""
    return transformation("identity", init_empty, _identity_update)


def _stateless_update(hp: Hyperparams, updates: Updates, state: OptState, params: Params = None):
    return hp.f(updates, params), state


def stateless(f: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """A transformation without state from `f(updates, params) -> updates`.

    For equality and pickling, pass a module-level function (a lambda works but compares by identity).
    """
    return transformation("stateless", init_empty, _stateless_update, f=f)


def _leafwise_update(hp: Hyperparams, updates: Updates, state: OptState, params: Params = None):
    if params is None:
        return jax.tree.map(lambda g: hp.f(g, None), updates), state
    return jax.tree.map(hp.f, updates, params), state


def stateless_with_tree_map(f: Callable[[jax.Array, jax.Array | None], jax.Array]) -> GradientTransformation:
    """A transformation without state from a leaf function `f(update, param) -> update`."""
    return transformation("stateless_with_tree_map", init_empty, _leafwise_update, f=f)


def apply_updates(params: Params, updates: Updates) -> Params:
    """params + updates, leaf by leaf, each result in its param's dtype.

    A None update, and any integer or boolean param, leaves the param as it is. Called outside jit,
    it runs compiled, as `update` does (see `UpdateFn`).
    """
    if _is_eager_call((params, updates)):  # integer and boolean params are handed back as they are
        return tree.with_frozen(_compiled_apply_updates(tree.trainable(params), tree.trainable(updates)), params)

    def add(p: Any, u: Any) -> Any:
        if u is None or not tree.is_inexact(p):
            return p
        p = jnp.asarray(p)
        return (p + jnp.asarray(u).astype(p.dtype)).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)


@jax.jit
def _compiled_apply_updates(params: Params, updates: Updates) -> Params:
    return apply_updates(params, updates)


def incremental_update(new_tensors: Params, old_tensors: Params, step_size: Scalar) -> Params:
    """step_size * new + (1 - step_size) * old: a Polyak/EMA average of parameters (for targets)."""
    return tree.ema(old_tensors, new_tensors, 1 - step_size)
