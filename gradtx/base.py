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
calls `transformation`. See `gradtx/transforms/adaptive.py` for the pattern.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree

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


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _normalize(value: Any) -> Any:
    """Concrete scalars become Python numbers; dtypes become np.dtype; the rest is kept.

    Python numbers are weakly typed in JAX, so a hyperparameter never changes the dtype of the
    updates, and a float64 b2=0.999 is never rounded by being stored as float32 or bfloat16.
    """
    if isinstance(value, np.generic) or (
        isinstance(value, np.ndarray | jax.Array) and not _is_tracer(value) and value.ndim == 0
    ):
        return value.item()
    if isinstance(value, bool | int | float | complex | str) or value is None:
        return value
    if (isinstance(value, type) and issubclass(value, np.generic)) or isinstance(value, np.dtype):
        return np.dtype(value)
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    if isinstance(value, tuple):
        return type(value)(*map(_normalize, value)) if hasattr(value, "_fields") else tuple(map(_normalize, value))
    return value


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
    if _is_tracer(value):
        return f"<traced {value.aval.str_short()}>"
    if isinstance(value, jax.Array | np.ndarray):
        return f"<array {value.dtype}{list(value.shape)}>"
    if callable(value) and not isinstance(value, Bound | GradientTransformation):
        return getattr(value, "__qualname__", repr(value))
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
        kwargs = {k: _normalize(v) for k, v in (kwargs or {}).items()}
        object.__setattr__(self, "builder", builder)
        object.__setattr__(self, "args", tuple(_normalize(a) for a in args))
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


def _mesh_of(tree_: Any) -> Any:
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
        mesh = _mesh_of(params)
        if mesh is None:
            return state
        # Step counts start replicated on the params' mesh, where a jitted step leaves them, so the
        # second step finds the same input shardings as the first and does not compile again.
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        return jax.tree.map(lambda x: jax.device_put(x, replicated) if _is_unplaced_scalar(x, mesh) else x, state)


def _is_unplaced_scalar(x: Any, mesh: Any) -> bool:
    return isinstance(x, jax.Array) and not _is_tracer(x) and x.ndim == 0 and getattr(x.sharding, "mesh", None) != mesh


class UpdateFn(Bound):
    """An update: `fn(hp, updates, state, params)` sees only float leaves; the others pass through.

    Integer, boolean and None leaves (equinox and flax models have them) come back as they went in:
    the filtering happens while tracing and costs nothing in the compiled step.
    """

    __slots__ = ()
    # Whether the gradients are checked against the state's moments too. A wrapper's state nests its
    # inner transformations' states, which those check themselves: wrappers set it False.
    checks_state = True

    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]:
        if _is_eager_call((updates, state, params, extra_args)):
            return _compiled(self)(updates, state, params, **extra_args)
        return self._traced(updates, state, params, extra_args)

    def _traced(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        g = tree.trainable(updates)
        check_matching_trees(self.hp.builder, updates, g, state if self.checks_state else None, params)
        params = None if params is None else tree.trainable(params)
        new, state = self._apply(g, state, params, extra_args)
        return tree.with_frozen(new, updates), state

    def _apply(self, updates: Updates, state: OptState, params: Params | None, extra_args: dict) -> Any:
        return self.fn(self.hp, updates, state, params)


def _is_none(x: Any) -> bool:
    return x is None


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


def _mismatch(g: Any, other: Any, name: str, is_params: bool) -> str | None:
    """Where the gradients `g` and the tree `other` differ (a key path, a None, a shape, a dtype), or None.

    Against params, shapes must match, a None gradient may stand for a leaf (a frozen param), and a
    float param needs a float gradient.
    """
    paths_g = dict(jax.tree_util.tree_flatten_with_path(g, is_leaf=_is_none)[0])
    paths_o = dict(jax.tree_util.tree_flatten_with_path(other, is_leaf=_is_none)[0])
    for path in paths_g.keys() - paths_o.keys():
        return f"{jax.tree_util.keystr(path)} is in the gradients, not in {name}"
    for path in paths_o.keys() - paths_g.keys():
        return f"{jax.tree_util.keystr(path)} is in {name}, not in the gradients"
    for path, x in paths_g.items():
        y, at = paths_o[path], jax.tree_util.keystr(path)
        if (x is None and y is None) or (x is None and is_params):
            continue
        if x is None or y is None:
            kinds = ["None" if v is None else "an array" for v in (x, y)]
            return f"{at} is {kinds[0]} in the gradients, {kinds[1]} in {name}"
        if is_params and jnp.shape(x) != jnp.shape(y):
            return f"{at} has shape {jnp.shape(x)} in the gradients, {jnp.shape(y)} in {name}"
        if is_params and tree.is_inexact(y) and not tree.is_inexact(x):
            dtypes = f"{jnp.result_type(x)} in the gradients, {jnp.result_type(y)} in {name}"
            return f"{at} is {dtypes}: gradients must be floating"
    return None


def check_matching_trees(builder: str, updates: Updates, g: Updates, state: OptState, params: Params | None) -> None:
    """Trace-time check that the gradients match the params (structure, shapes, dtypes) and the state.

    `g` is `updates` less its non-float leaves. The state fields checked are the trees of a state
    NamedTuple (moments, traces): init built them from the params, so they have the params'
    structure (not always their shapes: factored moments are smaller). Costs nothing when compiled.
    """
    checks = [] if params is None else [("params", updates, params, "Pass gradients with the params' structure.")]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        hint = "Was the state built by this transformation's init, from params of this structure?"
        checks += [
            (f"state.{f}", g, v, hint) for f, v in zip(state._fields, state, strict=True) if not hasattr(v, "shape")
        ]
    for what, grads, other, hint in checks:
        is_params = what == "params"
        structure: Any = jax.tree.structure(grads)
        if structure == jax.tree.structure(other) and (
            not is_params or all(_same_leaf(x, y) for x, y in zip(*map(jax.tree.leaves, (grads, other)), strict=True))
        ):
            continue
        where = _mismatch(grads, other, what, is_params)
        if where is not None:
            raise ValueError(
                f"{builder}: the gradients do not match {what}: {where}. {hint}\n"
                f"  gradients: {jax.tree.structure(grads)}\n  {what}: {jax.tree.structure(other)}"
            )


def _same_leaf(x: Any, y: Any) -> bool:
    return jnp.shape(x) == jnp.shape(y) and (tree.is_inexact(x) or not tree.is_inexact(y))


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
        return f"GradientTransformation(init={self.init!r}, update={self.update!r})"


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
    return GradientTransformation(InitFn(init, hp), update_fn(update, hp))


def schedule(builder: str, fn: Callable[..., jax.Array], **kwargs: Any) -> Bound:
    """Binds hyperparameters to `fn(hp, count)`: a schedule that is equal, hashable and picklable."""
    return Bound(fn, Hyperparams(builder, (), kwargs))


# ---------------------------------------------------------------------------------------------------
# Validation (build time; tracers pass unchecked because they cannot be checked)


def _interval(spec: str) -> tuple[float, float, bool, bool]:
    lo, hi = (part.strip() for part in spec[1:-1].split(","))
    return float(lo), float(hi), spec[0] == "[", spec[-1] == "]"


SCHEDULE = " or schedule"  # appended to a range: the argument may also be a schedule


def check(builder: str, **ranges: tuple[Any, str]) -> None:
    """Validates concrete hyperparameters: `check("adam", b1=(b1, "[0, 1)"), eps=(eps, "[0, inf)"))`.

    Raises `ValueError("adam: b1 must be in [0, 1), got 1.5")`. An argument whose range ends in
    " or schedule" (`"[0, 1]" + SCHEDULE`) may be a schedule, checked to map a step count to a
    scalar; any other is rejected when callable. A tracer is not checked (it cannot be).
    """
    for name, (value, spec) in ranges.items():
        value = _normalize(value)
        if _is_tracer(value) or value is None:
            continue
        spec, takes_schedule = spec.removesuffix(SCHEDULE), spec.endswith(SCHEDULE)
        if callable(value):
            if not takes_schedule:
                raise TypeError(f"{builder}: {name} must be a number in {spec}, not a schedule: got {value!r}")
            check_schedule(builder, name, value)
            continue
        if isinstance(value, jax.Array | np.ndarray):
            raise TypeError(f"{builder}: {name} must be a scalar, got an array of shape {value.shape}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{builder}: {name} must be a real number, got {value!r}")
        lo, hi, lo_closed, hi_closed = _interval(spec)
        inside = (lo <= value if lo_closed else lo < value) and (value <= hi if hi_closed else value < hi)
        if not inside or math.isnan(value):
            raise ValueError(f"{builder}: {name} must be in {spec}, got {value!r}")


def check_schedule(builder: str, name: str, fn: Callable[..., Any]) -> None:
    """A schedule must map an int32 count to a scalar: checked by tracing it, shapes only."""
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:
        raise TypeError(
            f"{builder}: {name} is callable, so it must be a schedule count -> scalar, but calling it"
            f" on an int32 count failed: {type(e).__name__}: {e}"
        ) from e
    if getattr(out, "shape", None) != ():
        raise TypeError(f"{builder}: {name} must be a schedule returning a scalar, got {getattr(out, 'shape', out)}")


def check_dtype(builder: str, name: str, dtype: Any) -> np.dtype | None:
    """Normalizes a dtype argument (None, a string, a NumPy or JAX dtype) or names what is wrong."""
    if dtype is None:
        return None
    try:
        out = np.dtype(jnp.dtype(dtype))
    except TypeError as e:
        raise TypeError(f"{builder}: {name} must be a dtype or None, got {dtype!r}") from e
    if not jnp.issubdtype(out, jnp.inexact):
        raise TypeError(f"{builder}: {name} must be a floating or complex dtype, got {out}")
    return out


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


def require_params(builder: str, params: Params | None) -> Params:
    """Transformations that read params (weight decay, ...) call this first."""
    if params is None:
        raise ValueError(f"{builder}: update needs params, got None. Call tx.update(grads, state, params).")
    return params


def init_empty(hp: Hyperparams, params: Params) -> EmptyState:
    """The init of every stateless transformation."""
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


# ---------------------------------------------------------------------------------------------------
# Checkpoints and sharding


def _as_abstract(leaf: Any, explicit: Any) -> Any:
    """A param (array or ShapeDtypeStruct) or a NamedSharding, as a ShapeDtypeStruct on `explicit`.

    `explicit` is the params' mesh with Explicit axes: jax.eval_shape carries shardings through init
    only on those. A bare sharding stands for a float32 param whose dimensions each mesh axis divides.
    """
    spec: Any
    if isinstance(leaf, jax.sharding.NamedSharding):
        sizes = explicit.shape
        dims = [math.prod(sizes[a] for a in (ax if isinstance(ax, tuple) else (ax,)) if a) for ax in leaf.spec]
        shape, dtype, spec = tuple(dims), jnp.float32, leaf.spec
    else:
        shape, dtype = jnp.shape(leaf), jnp.result_type(leaf)
        sharding = getattr(leaf, "sharding", None)
        spec = sharding.spec if isinstance(sharding, jax.sharding.NamedSharding) else None
    if explicit is None or spec is None:
        return jax.ShapeDtypeStruct(shape, dtype)
    return jax.ShapeDtypeStruct(shape, dtype, sharding=jax.sharding.NamedSharding(explicit, spec))


def abstract_state(tx: GradientTransformation, params: Params) -> OptState:
    """The state `tx.init(params)` would build, as ShapeDtypeStructs with shardings: a restore target.

    Leaves that mirror a parameter carry its sharding; scalars (step counts) are replicated over the
    params' mesh. Nothing is allocated. Use it as orbax's restore target or as jit's out_shardings.
    """
    mesh = _mesh_of(params)
    explicit = None
    if mesh is not None:
        axis_types = (jax.sharding.AxisType.Explicit,) * len(mesh.axis_names)
        explicit = jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=axis_types)
    abstract = jax.eval_shape(tx.init, jax.tree.map(lambda x: _as_abstract(x, explicit), params))

    def concrete(x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
        sharding = getattr(x, "sharding", None)
        if mesh is not None:
            spec = sharding.spec if isinstance(sharding, jax.sharding.NamedSharding) else jax.sharding.PartitionSpec()
            sharding = jax.sharding.NamedSharding(mesh, spec)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(concrete, abstract)


def state_shardings(tx: GradientTransformation, param_shardings: Any) -> Any:
    """The shardings of `tx.init(params)` for params with `param_shardings`.

    `param_shardings` is a tree of NamedShardings, or the params themselves (arrays or
    ShapeDtypeStructs with shardings). A bare sharding says nothing of its param's dtype and is taken
    to be a float param's: where some params are integers (they hold no state), pass the params.
    Moments and traces take their parameter's sharding; step counts are replicated. Pass the result
    as the state's in/out_shardings of a jitted step, or to `jax.device_put`.
    """
    if _mesh_of(param_shardings) is None:
        raise TypeError("state_shardings: param_shardings must hold NamedShardings over a jax.sharding.Mesh")
    return jax.tree.map(lambda x: x.sharding, abstract_state(tx, param_shardings))
