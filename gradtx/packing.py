"""Packed params: a model's floating leaves in one contiguous buffer per dtype.

    packed = gradtx.pack(params)          # 1000 leaves of float32 -> one float32 buffer
    state = tx.init(packed)               # so the optimizer state is one buffer per moment
    params = gradtx.unpack(packed)        # the tree as it was: slices of the buffers, reshaped

An optimizer step is memory-bound, and with many small leaves its time goes to per-leaf work:
a jitted step takes thousands of argument buffers, XLA compiles thousands of small fusions, and an
eager step dispatches thousands of ops. `Packed` is a pytree whose leaves are the buffers, so every
transformation sees a handful of large arrays instead: on a CPU, Adam on 1000 leaves of 64x64 runs
about 4x faster and compiles about 50x faster (see benchmarks/README.md). The loss is written for the
unpacked tree; `gradtx.make_step` unpacks for it, and the gradient with respect to a `Packed` is a
`Packed` of the same layout, so grads are packed too, without a copy per step.

Packing suits elementwise optimizers (sgd, momentum, rmsprop, adagrad, adam, ...) and global-norm
clipping, whose numbers do not depend on where one leaf ends. Transformations that treat each leaf
as a block (lamb, lars, adafactor, per-block clipping) or masks that name leaves need the tree:
those raise on a `Packed` rather than compute something else. Integer and boolean leaves are kept
beside the buffers, untouched; `None` leaves stay in the tree's structure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree


class _Slot(NamedTuple):
    """Where one leaf of the original tree lives: a range of a buffer, or the list of other leaves."""

    buffer: str | None  # the dtype name of its buffer, or None for an integer/boolean leaf
    offset: int  # first element in the buffer, or the index among the other leaves
    shape: tuple[int, ...]


class Layout(NamedTuple):
    """The static part of a `Packed`: the tree's structure and each leaf's slot (hashable)."""

    treedef: Any
    slots: tuple[_Slot, ...]


@jax.tree_util.register_pytree_with_keys_class
class Packed:
    """Params packed by `gradtx.pack`: `buffers` (dtype name -> 1-d array) and `others` (non-float leaves).

    A pytree: its leaves are the buffers, then the other leaves; its layout is static. The gradient
    of a loss of `packed.unpack()` is a `Packed` of the same layout, as are optimizer moments.
    """

    __slots__ = ("buffers", "layout", "others")
    buffers: dict[str, Any]
    others: tuple[Any, ...]
    layout: Layout

    def __init__(self, buffers: dict[str, Any], others: tuple[Any, ...], layout: Layout):
        self.buffers, self.others, self.layout = buffers, others, layout

    def tree_flatten_with_keys(self) -> tuple[list, Layout]:
        children = [
            (jax.tree_util.GetAttrKey("buffers"), self.buffers),
            (jax.tree_util.GetAttrKey("others"), self.others),
        ]
        return children, self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, children: Any) -> Packed:
        buffers, others = children
        return cls(dict(buffers), tuple(others), layout)

    def unpack(self) -> Any:
        """The params tree this was packed from, with the buffers' current values.

        Each buffer is cut by one `lax.split`, whose derivative is one concatenation: the gradient
        of a loss of the unpacked tree is assembled in one pass (slices would be transposed into a
        buffer-sized padding per leaf, a cost of leaves x parameters).
        """
        pieces: dict[str, Iterator[Any]] = {}
        for name, buffer in self.buffers.items():
            shapes = [slot.shape for slot in self.layout.slots if slot.buffer == name]
            if buffer is None:  # a tree of Nones in the params' layout (tree.trainable of one, ...)
                pieces[name] = iter([None] * len(shapes))
                continue
            lead = buffer.shape[:-1]  # batch axes of stacked packs (jax.vmap, ensembles)
            parts = jax.lax.split(buffer, [math.prod(shape) for shape in shapes], axis=buffer.ndim - 1)
            pieces[name] = iter([part.reshape(lead + shape) for part, shape in zip(parts, shapes, strict=True)])
        leaves = [
            self.others[slot.offset] if slot.buffer is None else next(pieces[slot.buffer]) for slot in self.layout.slots
        ]
        return jax.tree.unflatten(self.layout.treedef, leaves)

    def __repr__(self) -> str:
        sizes: dict[str, tuple[int, int]] = {}
        for slot in self.layout.slots:
            if slot.buffer is not None:
                count, n = sizes.get(slot.buffer, (0, 0))
                sizes[slot.buffer] = (count + 1, n + math.prod(slot.shape))
        shown = ", ".join(f"{name}: {n:,} values in {count} leaves" for name, (count, n) in sizes.items())
        others = f", {len(self.others)} other leaves" if self.others else ""
        return f"Packed({shown}{others})"


def pack(params: Any) -> Packed:
    """`params` with their floating leaves concatenated into one contiguous buffer per dtype.

    Leaves keep their order within a buffer; integer and boolean leaves are kept as they are. Call it
    once, outside the training loop (it copies every leaf); `unpack` (or `Packed.unpack`) gives the
    tree back. Leaves sharded over several devices are refused: concatenating them would gather.

    >>> import jax.numpy as jnp, gradtx
    >>> params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32), "steps": jnp.int32(0)}
    >>> packed = gradtx.pack(params)
    >>> packed
    Packed(float32: 9 values in 2 leaves, 1 other leaves)
    >>> gradtx.unpack(packed)["w"].shape
    (2, 3)
    """
    if isinstance(params, Packed):
        return params
    leaves, treedef = jax.tree.flatten(params)
    leaves = [jnp.asarray(x) for x in leaves]
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and not sharding.is_fully_replicated:
            raise ValueError(
                f"pack: params{jax.tree_util.keystr(path)} is sharded ({sharding}); packing would gather"
                " it onto every device. Keep sharded params as a tree."
            )
    parts: dict[str, list[Any]] = {}
    sizes: dict[str, int] = {}
    others: list[Any] = []
    slots = []
    for leaf in leaves:
        if not tree.is_inexact(leaf):
            slots.append(_Slot(None, len(others), tuple(leaf.shape)))
            others.append(leaf)
            continue
        name = np.dtype(leaf.dtype).name
        slots.append(_Slot(name, sizes.get(name, 0), tuple(leaf.shape)))
        sizes[name] = sizes.get(name, 0) + leaf.size
        parts.setdefault(name, []).append(leaf.reshape(-1))
    buffers = {name: jnp.concatenate(xs) if len(xs) > 1 else xs[0] for name, xs in parts.items()}
    return Packed(buffers, tuple(others), Layout(treedef, tuple(slots)))


def unpack(params: Any) -> Any:
    """Every `Packed` in `params` replaced by the tree it was packed from; other leaves unchanged."""
    return jax.tree.map(
        lambda x: x.unpack() if isinstance(x, Packed) else x, params, is_leaf=lambda x: isinstance(x, Packed)
    )


def contains_packed(tree_: Any) -> bool:
    """True when `tree_` has a `Packed` node: for transformations that need each leaf as a block."""
    return any(isinstance(x, Packed) for x in jax.tree.leaves(tree_, is_leaf=lambda x: isinstance(x, Packed)))


def require_leaves(builder: str, updates: Any) -> None:
    """Raises if `updates` are packed: `builder` treats each leaf as a block, which packing merges."""
    if contains_packed(updates):
        raise TypeError(
            f"{builder}: the updates are gradtx.Packed, but {builder} treats each leaf of the params tree"
            " as a block (its norm or factored moments), which packing merges into one buffer."
            " Use it on the params tree (gradtx.unpack), or pack only for elementwise optimizers."
        )
