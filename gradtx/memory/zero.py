"""Optimizer state sharded over the data-parallel axis (ZeRO stages 1 and 2), params replicated.

    shardings = gradtx.zero_shardings(tx, params, axis="data")
    state = jax.device_put(tx.init(params), shardings)
    step = jax.jit(step_fn, out_shardings=(param_shardings, shardings))

In data-parallel training every device holds the params, computes the gradient of its part of the
batch, and the gradients are averaged; with the optimizer state replicated too, Adam's two moments
cost each device 8 bytes a parameter. Rajbhandari et al. (2020, "ZeRO") split the state instead:
each of the k devices of the data axis keeps and updates 1/k of every moment, and the new params are
gathered. Under `jax.jit`, saying where the state lives is enough: XLA computes each moment's update
on the device that holds it, reduce-scatters or slices the averaged gradient to it (stage 2 where it
turns the all-reduce into a reduce-scatter), and all-gathers the params' update (tests/zero_worker.py
checks the numbers against one device and measures the bytes per device).

`zero_shardings` gives each state leaf of rank >= 1 the sharding of its param (`state_shardings`)
with `axis` added on its first dimension that is not already split and that the axis' size
divides; leaves with no such dimension, and step counts, stay as they are (replicated). A quantized
leaf (`QuantizedArray`) splits its codes and block scales on the same dimension, and its last
dimension only where every shard then holds whole blocks, so a block never straddles two devices.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec

from gradtx.base import GradientTransformation, Params
from gradtx.memory.codecs import QuantizedArray
from gradtx.sharding import abstract_state


def _used_axes(spec: PartitionSpec) -> set[str]:
    used: set[str] = set()
    for entry in spec:
        used |= set(entry) if isinstance(entry, tuple) else {entry} if entry is not None else set()
    return used


def _padded(spec: PartitionSpec, ndim: int) -> list[Any]:
    return [*spec, *([None] * (ndim - len(spec)))]


def _split_dim(shape: tuple[int, ...], spec: list[Any], size: int, dims: range) -> int | None:
    """The first dimension among `dims` that is not split yet and that `size` divides."""
    for d in dims:
        if spec[d] is None and shape[d] % size == 0 and shape[d] > 0:
            return d
    return None


def _with(sharding: Any, spec: list[Any], d: int | None, axis: str) -> Any:
    if d is None:
        return sharding
    spec = list(spec)
    spec[d] = axis
    return NamedSharding(sharding.mesh, PartitionSpec(*spec))


def _leaf(x: Any, axis: str, size: int) -> Any:
    sharding = x.sharding
    if x.ndim == 0 or axis in _used_axes(sharding.spec):
        return sharding
    spec = _padded(sharding.spec, x.ndim)
    return _with(sharding, spec, _split_dim(x.shape, spec, size, range(x.ndim)), axis)


def _block_sizes(tx: Any) -> set[int]:
    """The block sizes of every quantized_state wrapper in tx (found through the builders' arguments)."""
    found: set[int] = set()
    hp = getattr(tx, "hyperparams", None)
    if hp is None:
        return found
    if hp.builder == "quantized_state":
        found |= {codec.block_size for _, codec in hp.codecs}
    values = [*hp.args, *hp.kwargs.values()]
    for value in values:
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else [value]:
            found |= _block_sizes(item)
    return found


def _quantized(q: Any, axis: str, size: int, block_sizes: set[int]) -> Any:
    """The shardings (a QuantizedArray of them) of a quantized leaf's codes and scales."""
    codes, scales = q.codes, q.scales
    if codes.ndim == 0 or axis in _used_axes(codes.sharding.spec):
        return QuantizedArray(codes.sharding, scales.sharding)
    c_spec, s_spec = _padded(codes.sharding.spec, codes.ndim), _padded(scales.sharding.spec, scales.ndim)
    lead = range(codes.ndim - 1)
    d = _split_dim(codes.shape, c_spec, size, lead)
    if d is None:  # the last axis: only where each shard holds whole blocks (no short last block)
        last = codes.ndim - 1
        n, blocks = codes.shape[last], scales.shape[last]  # n codes, or n / 2 bytes of 4-bit codes
        whole = any(n in (blocks * b, blocks * b // 2) for b in block_sizes)
        if whole and c_spec[last] is None and scales.shape[last] % size == 0 and scales.shape[last] > 0:
            d = last
    return QuantizedArray(_with(codes.sharding, c_spec, d, axis), _with(scales.sharding, s_spec, d, axis))


def zero_shardings(tx: GradientTransformation, params: Params, axis: str = "data") -> Any:
    """The shardings of `tx.init(params)` with every moment split over the mesh axis `axis` (ZeRO).

        each moment leaf: its param's sharding, plus `axis` on its first free dimension that the
        axis size divides (the last of a quantized leaf only in whole blocks); counts replicated

    `params` are the params (arrays or ShapeDtypeStructs) with NamedShardings on a mesh that has
    `axis`, typically replicated over it. Use the result with `jax.device_put(tx.init(params), s)`,
    as a jitted step's out_shardings for the state, and as an orbax restore target's shardings
    (`jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)`). The module docstring says what XLA then
    does; tests/zero_worker.py runs it on 8 devices and across 2 processes.

    >>> import jax, jax.numpy as jnp, gradtx
    >>> mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    >>> replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    >>> params = jax.device_put({"w": jnp.zeros((4, 3))}, replicated)
    >>> gradtx.zero_shardings(gradtx.adam(1e-3), params)[0].mu["w"].spec
    P('data', None)
    """
    abstract = abstract_state(tx, params)
    meshes = [x.sharding.mesh for x in jax.tree.leaves(abstract) if isinstance(x.sharding, NamedSharding)]
    if not meshes or axis not in meshes[0].axis_names:
        names = meshes[0].axis_names if meshes else "no mesh"
        raise ValueError(
            f"zero_shardings: params must be placed on a mesh with axis {axis!r} (NamedSharding); got {names}"
        )
    size = meshes[0].shape[axis]
    block_sizes = _block_sizes(tx)

    def shard(x: Any) -> Any:
        return _quantized(x, axis, size, block_sizes) if isinstance(x, QuantizedArray) else _leaf(x, axis, size)

    return jax.tree.map(shard, abstract, is_leaf=lambda x: isinstance(x, QuantizedArray))


__all__ = ["zero_shardings"]
