"""Checkpoints and sharding: the state an optimizer would build, as restore targets and shardings.

    abstract_state(tx, params)        ShapeDtypeStructs (with shardings) of tx.init(params)
    state_shardings(tx, shardings)    the NamedShardings of tx.init(params) for params so sharded

Nothing is allocated: both trace `tx.init` with `jax.eval_shape`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation, OptState, Params, mesh_of


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
    mesh = mesh_of(params)
    explicit = None
    if mesh is not None:
        axis_types = (jax.sharding.AxisType.Explicit,) * len(mesh.axis_names)
        explicit = jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=axis_types)
    abstract = jax.eval_shape(tx.init, jax.tree.map(lambda x: _as_abstract(x, explicit), params))

    def concrete(x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
        sharding = getattr(x, "sharding", None)
        if mesh is not None:
            # replicated, written P(None, ...) as jit returns it (a constant array, as Muon's coefficients)
            fallback = jax.sharding.PartitionSpec(*[None] * len(x.shape))
            spec = sharding.spec if isinstance(sharding, jax.sharding.NamedSharding) else fallback
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
    if mesh_of(param_shardings) is None:
        raise TypeError("state_shardings: param_shardings must hold NamedShardings over a jax.sharding.Mesh")
    return jax.tree.map(lambda x: x.sharding, abstract_state(tx, param_shardings))
