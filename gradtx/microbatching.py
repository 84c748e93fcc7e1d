"""Microbatching: a function of a large batch evaluated one microbatch at a time (optax.microbatching).

    microbatch(f, argnums, m)(batch):   r <- init;  for i < n: r <- update(r, f(microbatch i), i);  finalize(r)
    micro_vmap(f, ..., microbatch_size=m):   jax.vmap(f) over the batch, m examples at a time
    micro_grad(loss, ..., microbatch_size=m): per-example gradients, transformed, then summed or averaged

A batch of B = n m examples is cut into n microbatches of m (`reshape_batch_axis`); a
`lax.fori_loop` evaluates `f` on each in turn, so memory holds one microbatch's intermediates
instead of the whole batch's. How the n results combine is the `accumulator`: an `AccumulationType`
(SUM, MEAN, RUNNING_MEAN, CONCAT), an `Accumulator` of your own, or a tree of them (a prefix of
f's output). Microbatch i holds examples i, i + n, i + 2n, ... (a column-major split, optax's, which
keeps a batch sharded over devices sharded in each microbatch); CONCAT puts them back in order.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.checks import COUNT, OR_NONE, POSITIVE_COUNT, ArgumentTypeError, ArgumentValueError, check, check_flag


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How the results of the n microbatches combine (optax's fields), for one array or a whole tree:

    carry = init(shape and dtype of one result);  carry = update(carry, result_i, i) for i < n
    result = finalize(carry);   aggregate(results stacked on axis 0) = the same in one go (micro_vmap)
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


class AccumulationType(enum.Enum):
    """The built-in accumulators."""

    MEAN = enum.auto()  # the mean of the n results
    SUM = enum.auto()  # their sum
    RUNNING_MEAN = enum.auto()  # the mean of those computed (num_real_microbatches of them), as a running mean
    CONCAT = enum.auto()  # the results concatenated along axis 0, back in the batch's order


# ---------------------------------------------------------------------------------------------------
# The built-in accumulators, one leaf at a time (module-level functions: the results pickle)


def _floating_zeros(name: str, shape: Any) -> jax.Array:
    if not jnp.issubdtype(shape.dtype, jnp.inexact):
        raise ValueError(f"microbatch: a {name} accumulator needs floating results, got one of dtype {shape.dtype}")
    return jnp.zeros(shape.shape, shape.dtype)


def _zeros(shape: Any) -> jax.Array:
    return jnp.zeros(shape.shape, shape.dtype)


def _add(carry: jax.Array, value: jax.Array, index: Any) -> jax.Array:
    return carry + value.astype(carry.dtype)  # r <- r + f_i


def _running_mean(carry: jax.Array, value: jax.Array, index: Any) -> jax.Array:
    i = jnp.asarray(index).astype(carry.dtype)
    return carry + (value.astype(carry.dtype) - carry) / (i + 1)  # r <- r + (f_i - r) / (i + 1)


def _divide(n: int, carry: jax.Array) -> jax.Array:
    return carry / n  # r / n


def _identity(x: Any) -> Any:
    return x


def _concat_init(n: int, shape: Any) -> jax.Array:
    return jnp.zeros((n, *shape.shape), shape.dtype)


def _concat_update(carry: jax.Array, value: jax.Array, index: Any) -> jax.Array:
    return carry.at[index].set(value.astype(carry.dtype))


def _concat_finalize(carry: jax.Array) -> jax.Array:
    # (n, m, ...) -> (n m, ...) column-major: example i + n j of the batch was row j of microbatch i
    return carry.reshape(-1, *carry.shape[2:], order="F")


def _leafwise(acc: Accumulator) -> Accumulator:
    """An accumulator of arrays made one of trees: each leaf accumulates on its own."""
    return Accumulator(
        init=functools.partial(_map1, acc.init),
        update=functools.partial(_map_update, acc.update),
        finalize=functools.partial(_map1, acc.finalize),
        aggregate=functools.partial(_map1, acc.aggregate),
    )


def _map1(f: Callable[[Any], Any], tree_: Any) -> Any:
    return jax.tree.map(f, tree_)


def _map_update(f: Callable[..., Any], carry: Any, value: Any, index: Any) -> Any:
    return jax.tree.map(lambda c, v: f(c, v, index), carry, value)


def _builtin(kind: AccumulationType, n: int) -> Accumulator:
    if kind is AccumulationType.SUM:
        leaf = Accumulator(_zeros, _add, _identity, functools.partial(jnp.sum, axis=0))
    elif kind is AccumulationType.MEAN:
        init = functools.partial(_floating_zeros, "MEAN")
        leaf = Accumulator(init, _add, functools.partial(_divide, n), functools.partial(jnp.mean, axis=0))
    elif kind is AccumulationType.RUNNING_MEAN:
        init = functools.partial(_floating_zeros, "RUNNING_MEAN")
        leaf = Accumulator(init, _running_mean, _identity, functools.partial(jnp.mean, axis=0))
    else:
        leaf = Accumulator(functools.partial(_concat_init, n), _concat_update, _concat_finalize, _identity)
    return _leafwise(leaf)


def _is_accumulator_leaf(x: Any) -> bool:
    return isinstance(x, Accumulator | AccumulationType)


def _canonicalize(builder: str, accumulator: Any, n: int) -> Any:
    """A tree of Accumulators (a prefix of the results' tree) from one of Accumulators and AccumulationTypes."""

    def one(acc: Any) -> Accumulator:
        if isinstance(acc, Accumulator):
            return acc
        if isinstance(acc, AccumulationType):
            return _builtin(acc, n)
        raise ArgumentTypeError(
            builder, "accumulator", f"must be an AccumulationType, an Accumulator or a tree of them, got {acc!r}"
        )

    return jax.tree.map(one, accumulator, is_leaf=_is_accumulator_leaf)


def _with(accumulators: Any, method: str, *trees: Any, index: Any = None) -> Any:
    """Each accumulator's `method` on its subtree of `trees` (the accumulators' tree is their prefix)."""

    def call(acc: Accumulator, *subtrees: Any) -> Any:
        f = getattr(acc, method)
        return f(*subtrees, index) if method == "update" else f(*subtrees)

    return jax.tree.map(call, accumulators, *trees, is_leaf=_is_accumulator_leaf)


# ---------------------------------------------------------------------------------------------------
# microbatch


def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
    """Each leaf's batch axis B split into (B / m, m) at the same place: microbatch i is row i.

        x[..., B, ...] -> x[..., n, m, ...],   x_new[..., i, j, ...] = x[..., i + n j, ...]

    Column-major (optax's convention): a batch sharded over devices along B stays sharded along m.
    """
    check("reshape_batch_axis", microbatch_size=(microbatch_size, POSITIVE_COUNT))
    return jax.tree.map(
        lambda x: x.reshape(*x.shape[:axis], -1, microbatch_size, *x.shape[axis + 1 :], order="F"), tree
    )


def _as_tuple(builder: str, name: str, value: Any, kind: type) -> tuple:
    items = (value,) if isinstance(value, kind) else tuple(value)
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
        raise ArgumentTypeError(builder, name, f"must be a {kind.__name__} or a sequence of them, got {value!r}")
    return items


def _microbatched(hp: dict, *args: Any, **kwargs: Any) -> Any:
    fun, argnums, argnames, in_axes, m = hp["fun"], hp["argnums"], hp["argnames"], hp["in_axes"], hp["microbatch_size"]
    batched = [args[i] for i in argnums] + [kwargs[k] for k in argnames]
    sizes = {x.shape[ax] for ax, sub in zip(in_axes, batched, strict=True) for x in jax.tree.leaves(sub)}
    if len(sizes) != 1:
        raise ValueError(f"microbatch: the batch arguments must have one batch size, got sizes {sorted(sizes)}")
    batch_size = sizes.pop()
    if batch_size == 0 or batch_size % m:
        raise ValueError(f"microbatch: the batch size {batch_size} is not a positive multiple of microbatch_size={m}")
    n = batch_size // m
    args_, kwargs = list(args), dict(kwargs)
    for i, ax in zip(argnums, in_axes, strict=False):
        args_[i] = reshape_batch_axis(args_[i], m, ax)
    for k, ax in zip(argnames, in_axes[len(argnums) :], strict=True):
        kwargs[k] = reshape_batch_axis(kwargs[k], m, ax)

    def f(index: Any) -> Any:  # fun on microbatch `index`
        take = lambda ax: functools.partial(jax.tree.map, lambda x: jnp.take(x, index, axis=ax))
        a, kw = list(args_), dict(kwargs)
        for i, ax in zip(argnums, in_axes, strict=False):
            a[i] = take(ax)(args_[i])
        for k, ax in zip(argnames, in_axes[len(argnums) :], strict=True):
            kw[k] = take(ax)(kwargs[k])
        return fun(*a, **kw)

    accumulators = _canonicalize("microbatch", hp["accumulator"], n)
    carry = _with(accumulators, "init", jax.eval_shape(f, 0))
    bound = n if hp["num_real_microbatches"] is None else hp["num_real_microbatches"]
    carry = jax.lax.fori_loop(0, bound, lambda i, c: _with(accumulators, "update", c, f(i), index=i), carry)
    return _with(accumulators, "finalize", carry)


def microbatch(
    fun: Callable[..., Any],
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Any = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """`fun` evaluated on microbatches of `microbatch_size` examples in turn, its results combined.

        n = B / m;   r <- init;   for i < n:  r <- update(r, fun(batch_i), i);   y = finalize(r)
                                                                    (batch_i: microbatch i)

    `argnums` (positions) and `argnames` (keywords) name the arguments that hold the batch, on
    axis `in_axes` (one int for all, or one per argument, positions first); the others are passed
    whole. `accumulator` combines the results: SUM (the default), MEAN, RUNNING_MEAN, CONCAT, an
    `Accumulator`, or a tree of these matching a prefix of fun's output. `num_real_microbatches`
    stops after that many (a traced count: padded batches of varying size, one compilation);
    RUNNING_MEAN then averages those. `microbatch_size=None` returns `fun` itself. As optax's
    `microbatch`; the loop is a `lax.fori_loop`, so memory holds one microbatch's intermediates.

    >>> import jax.numpy as jnp, gradtx
    >>> AT = gradtx.AccumulationType
    >>> f = lambda x: (x + 1, jnp.sum(3 * x))
    >>> concatenated, summed = gradtx.microbatch(f, 0, microbatch_size=2, accumulator=(AT.CONCAT, AT.SUM))(
    ...     jnp.arange(4.0))
    >>> print(concatenated, summed)
    [1. 2. 3. 4.] 18.0
    """
    if not callable(fun):
        raise ArgumentTypeError("microbatch", "fun", f"must be a function, got {fun!r}")
    check("microbatch", microbatch_size=(microbatch_size, POSITIVE_COUNT + OR_NONE))
    argnums_ = _as_tuple("microbatch", "argnums", argnums, int)
    argnames_ = _as_tuple("microbatch", "argnames", argnames, str)
    axes = _as_tuple("microbatch", "in_axes", in_axes, int)
    axes = axes * (len(argnums_) + len(argnames_)) if isinstance(in_axes, int) else axes
    if len(axes) != len(argnums_) + len(argnames_):
        raise ArgumentValueError(
            "microbatch",
            "in_axes",
            f"must have one axis per batch argument ({len(argnums_) + len(argnames_)}), got {in_axes!r}",
        )
    if not isinstance(num_real_microbatches, jax.Array):
        check("microbatch", num_real_microbatches=(num_real_microbatches, COUNT + OR_NONE))
    _canonicalize("microbatch", accumulator, 1)  # a wrong accumulator is reported now, not at the first call
    if microbatch_size is None:
        return fun
    hp = dict(fun=fun, argnums=argnums_, argnames=argnames_, in_axes=axes, microbatch_size=microbatch_size,
              accumulator=accumulator, num_real_microbatches=num_real_microbatches)  # fmt: skip
    return functools.partial(_microbatched, hp)


# ---------------------------------------------------------------------------------------------------
# micro_vmap, micro_grad


def _vmap_then_aggregate(fun: Callable, axes: tuple, vmap_fn: Callable, accumulator: Any, *args: Any, kwargs: dict):
    out = vmap_fn(fun, axes, 0)(*args, **kwargs)
    size = jax.tree.leaves(out)[0].shape[0] if jax.tree.leaves(out) else 1
    return _with(_canonicalize("micro_vmap", accumulator, size), "aggregate", out)


def _micro_vmapped(hp: dict, *args: Any, **kwargs: Any) -> Any:
    axes = (hp["in_axes"],) * len(args) if isinstance(hp["in_axes"], int) else tuple(hp["in_axes"])
    inner = functools.partial(_vmap_then_aggregate, hp["fun"], axes, hp["vmap_fn"], hp["accumulator"])
    batched = tuple(i for i, ax in enumerate(axes) if ax is not None)
    mapped = microbatch(
        inner, argnums=batched, microbatch_size=hp["microbatch_size"], accumulator=hp["accumulator"],
        argnames="kwargs", in_axes=(*(axes[i] for i in batched), 0), num_real_microbatches=hp["num_real_microbatches"],
    )  # fmt: skip
    return mapped(*args, kwargs=kwargs)


def micro_vmap(
    fun: Callable[..., Any],
    in_axes: int | Sequence[int | None] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Any] = jax.vmap,
    accumulator: Any = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """`jax.vmap(fun, in_axes)` evaluated `microbatch_size` examples at a time, its outputs combined.

        CONCAT (default): the outputs of every example, as jax.vmap's;  SUM / MEAN: reduced over the batch

    `in_axes` is one axis for every positional argument or one per argument (None: not batched);
    keyword arguments are batched on axis 0, as jax.vmap's. Outputs are batched on axis 0
    (`out_axes` must be 0). `vmap_fn` replaces jax.vmap (e.g. a partial of it with `spmd_axis_name`).
    As optax.microbatching.micro_vmap, except that one int `in_axes` covers every positional
    argument (optax's then takes one argument only).

    >>> import jax.numpy as jnp, gradtx
    >>> print(gradtx.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(4.0)))
    [0. 1. 4. 9.]
    """
    if out_axes != 0:
        raise NotImplementedError("micro_vmap: out_axes must be 0 (outputs are batched on axis 0)")
    check("micro_vmap", microbatch_size=(microbatch_size, POSITIVE_COUNT + OR_NONE))
    hp = dict(fun=fun, in_axes=in_axes, vmap_fn=vmap_fn, accumulator=accumulator, microbatch_size=microbatch_size,
              num_real_microbatches=num_real_microbatches)  # fmt: skip
    return functools.partial(_micro_vmapped, hp)


class IndividualOutputs(NamedTuple):
    """What `micro_grad` returns besides the gradients, one entry per example: the loss values, the
    metrics of the gradients, and fun's aux (None without has_aux)."""

    values: Any
    metrics: Any
    aux: Any


def _no_metrics(grads: Any) -> None:
    return None


def _one_example(fun: Callable, has_aux: bool, argnums: Any, transform_fn: Callable, metrics_fn: Callable, *args, **kw):
    with_aux = fun if has_aux else (lambda *a, **k: (fun(*a, **k), None))
    (value, aux), grads = jax.value_and_grad(with_aux, argnums, has_aux=True)(*args, **kw)
    return transform_fn(grads), IndividualOutputs(values=value, metrics=metrics_fn(grads), aux=aux)


def _micro_grad(hp: dict, *args: Any, **kwargs: Any) -> Any:
    batch = hp["batch_argnums"]
    if hp["keep_batch_dim"]:  # fun sees each example as a batch of one
        args = tuple(jax.tree.map(lambda x: jnp.expand_dims(x, 1), a) if i in batch else a for i, a in enumerate(args))
    per_example = functools.partial(
        _one_example, hp["fun"], hp["has_aux"], hp["argnums"], hp["transform_fn"], hp["metrics_fn"]
    )
    mapped = micro_vmap(
        per_example, in_axes=tuple(0 if i in batch else None for i in range(len(args))),
        microbatch_size=hp["microbatch_size"], accumulator=(hp["accumulator"], AccumulationType.CONCAT),
        num_real_microbatches=hp["num_real_microbatches"],
    )  # fmt: skip
    return mapped(*args, **kwargs)


def micro_grad(
    fun: Callable[..., Any],
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Any = AccumulationType.SUM,
    transform_fn: Callable[[Any], Any] = _identity,
    metrics_fn: Callable[[Any], Any] = _no_metrics,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., tuple[Any, IndividualOutputs]]:
    """Per-example gradients of `fun`, each transformed, then combined over the batch, a microbatch at a time.

        g_i = d fun(params, example i) / d params;    result = accumulate_i transform_fn(g_i)
        returns (result, IndividualOutputs(values=fun_i, metrics=metrics_fn(g_i), aux=aux_i))

    For per-example clipping (DP-SGD: `transform_fn` clips, SUM adds), gradient moments
    (`transform_fn=lambda g: (g, g**2)` with MEAN) or per-example gradient norms (`metrics_fn`).
    `batch_argnums` are the arguments holding the batch (axis 0); with `keep_batch_dim` fun sees
    each example as a batch of one. As optax.microbatching.micro_grad.

    >>> import jax.numpy as jnp, gradtx
    >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
    >>> grads, aux = gradtx.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=2)(
    ...     jnp.zeros(1), jnp.ones((4, 1)), jnp.asarray([0.0, 2.0, 4.0, 6.0]))
    >>> print(grads, aux.values)
    [-12.] [ 0.  2.  8. 18.]
    """
    check("micro_grad", microbatch_size=(microbatch_size, POSITIVE_COUNT + OR_NONE))
    hp = dict(fun=fun, has_aux=check_flag("micro_grad", "has_aux", has_aux), argnums=argnums,
              batch_argnums=_as_tuple("micro_grad", "batch_argnums", batch_argnums, int),
              keep_batch_dim=check_flag("micro_grad", "keep_batch_dim", keep_batch_dim),
              microbatch_size=microbatch_size, accumulator=accumulator, transform_fn=transform_fn,
              metrics_fn=metrics_fn, num_real_microbatches=num_real_microbatches)  # fmt: skip
    return functools.partial(_micro_grad, hp)


__all__ = [
    "AccumulationType",
    "Accumulator",
    "IndividualOutputs",
    "micro_grad",
    "micro_vmap",
    "microbatch",
    "reshape_batch_axis",
]
