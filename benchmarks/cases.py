"""What is measured: parameter trees (`Shape`), optimizers (`Algorithm`), and the bytes a step must move.

A case is one shape and one algorithm. Every library runs the same algorithm with the same
hyperparameters on the same tree of constant-filled arrays: the programs are elementwise (plus one
global norm for the chain), so their speed does not depend on the values, and constants keep every
value far from denormals, infinities and NaNs for as many steps as a run takes.

The minimum traffic of one step (`moved_bytes`) counts each array the algorithm must touch once:

    read params, grads (twice for the chain: the global norm is needed before the first update),
    read and write each array of optimizer state, write params.

For Adam on float32 that is (4 reads + 3 writes) x 4 bytes = 28 bytes a parameter. It is computed
from the state each library actually keeps (torch keeps bfloat16 state for bfloat16 params, optax
keeps Adam's nu in the params' dtype), so each library is measured against its own minimum; the
"state B/param" column shows what each one keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PARAM_VALUE = 0.5
GRAD_VALUE = 1e-3

# Hyperparameters shared by the three libraries.
LEARNING_RATE = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-2
MAX_NORM = 1.0
WARMUP_STEPS = 100
DECAY_STEPS = 10_000


# ---------------------------------------------------------------------------------------------------
# Shapes: the parameter trees


@dataclass(frozen=True)
class Shape:
    """A parameter tree: leaf name -> shape, in one dtype, with the dtype asked for the optimizer state.

    JAX sees a flat dict (leaves in sorted key order), torch a list of tensors in insertion order.
    `state_dtype=None` keeps each library's default (the params' dtype for first moments).
    `undonated=True` also times the JAX step without buffer donation on this shape (for Adam);
    `eager=True` also times it without jit (for Adam), as a notebook's loop runs it.
    """

    name: str
    leaves: dict[str, tuple[int, ...]]
    dtype: str = "float32"
    state_dtype: str | None = None
    undonated: bool = False
    eager: bool = False

    @property
    def n_params(self) -> int:
        return sum(math.prod(shape) for shape in self.leaves.values())

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    def jax_tree(self, value: float) -> dict[str, Any]:
        import jax.numpy as jnp

        return {name: jnp.full(shape, value, self.dtype) for name, shape in self.leaves.items()}

    def torch_tensors(self, value: float, device: str) -> list[Any]:
        import torch

        dtype = getattr(torch, self.dtype)
        return [torch.full(shape, value, dtype=dtype, device=device) for shape in self.leaves.values()]


def one_leaf(n: int, dtype: str = "float32", **kwargs: Any) -> Shape:
    size = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
    suffix = "" if dtype == "float32" else "-bf16"
    return Shape(f"leaf-{size}{suffix}", {"w": (n,)}, dtype, **kwargs)


def many_leaves(count: int, side: int, **kwargs: Any) -> Shape:
    return Shape(f"{count}x{side}x{side}", {f"w{i:04d}": (side, side) for i in range(count)}, **kwargs)


def vit(name: str, depth: int, width: int, mlp: int, patch: int, image: int, classes: int) -> Shape:
    """A Vision Transformer's parameters (Dosovitskiy et al., 2021): ViT-B/16 is 152 leaves, 86.6M params."""
    tokens = (image // patch) ** 2 + 1  # patches and the class token
    leaves = {
        "patch_embed.w": (3 * patch * patch, width),
        "patch_embed.b": (width,),
        "cls_token": (1, 1, width),
        "pos_embed": (1, tokens, width),
    }
    for i in range(depth):
        block = f"blocks.{i:02d}."
        leaves |= {
            block + "ln1.scale": (width,),
            block + "ln1.bias": (width,),
            block + "attn.qkv.w": (width, 3 * width),
            block + "attn.qkv.b": (3 * width,),
            block + "attn.proj.w": (width, width),
            block + "attn.proj.b": (width,),
            block + "ln2.scale": (width,),
            block + "ln2.bias": (width,),
            block + "mlp.fc1.w": (width, mlp),
            block + "mlp.fc1.b": (mlp,),
            block + "mlp.fc2.w": (mlp, width),
            block + "mlp.fc2.b": (width,),
        }
    leaves |= {"norm.scale": (width,), "norm.bias": (width,), "head.w": (width, classes), "head.b": (classes,)}
    return Shape(name, leaves)


FULL_SHAPES = (
    one_leaf(1_000_000),
    one_leaf(10_000_000, undonated=True),
    one_leaf(50_000_000),
    vit("vit-b16", depth=12, width=768, mlp=3072, patch=16, image=224, classes=1000),
    many_leaves(1000, 64, eager=True),
    one_leaf(10_000_000, "bfloat16", state_dtype="float32"),
)

QUICK_SHAPES = (
    one_leaf(10_000),
    one_leaf(100_000, undonated=True),
    vit("vit-tiny", depth=2, width=32, mlp=128, patch=4, image=16, classes=10),
    many_leaves(50, 8, eager=True),
    one_leaf(100_000, "bfloat16", state_dtype="float32"),
)


# ---------------------------------------------------------------------------------------------------
# Algorithms: one builder per library, each with the same hyperparameters


def warmup_cosine(step: int) -> float:
    """The chain's learning rate at `step`, for torch (gradtx and optax build their own schedule)."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * step / WARMUP_STEPS
    t = min(step - WARMUP_STEPS, DECAY_STEPS - WARMUP_STEPS) / (DECAY_STEPS - WARMUP_STEPS)
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * t))


def _jax_dtype(name: str | None) -> Any:
    import jax.numpy as jnp

    return None if name is None else jnp.dtype(name)


# gradtx: first moments take `accumulator_dtype`; second moments are always at least float32.


def gradtx_sgd_momentum(state_dtype: str | None) -> Any:
    import gradtx

    return gradtx.sgd(LEARNING_RATE, momentum=MOMENTUM, accumulator_dtype=_jax_dtype(state_dtype))


def gradtx_adam(state_dtype: str | None) -> Any:
    import gradtx

    return gradtx.adam(LEARNING_RATE, accumulator_dtype=_jax_dtype(state_dtype))


def gradtx_adamw(state_dtype: str | None) -> Any:
    import gradtx

    return gradtx.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY, accumulator_dtype=_jax_dtype(state_dtype))


def gradtx_rmsprop(state_dtype: str | None) -> Any:
    import gradtx

    return gradtx.rmsprop(LEARNING_RATE)


def gradtx_adagrad(state_dtype: str | None) -> Any:
    import gradtx

    return gradtx.adagrad(LEARNING_RATE)


def gradtx_chain(state_dtype: str | None) -> Any:
    import gradtx

    schedule = gradtx.warmup_cosine_decay_schedule(0.0, LEARNING_RATE, WARMUP_STEPS, DECAY_STEPS)
    return gradtx.chain(
        gradtx.clip_by_global_norm(MAX_NORM),
        gradtx.adamw(schedule, weight_decay=WEIGHT_DECAY, accumulator_dtype=_jax_dtype(state_dtype)),
    )


# optax: `mu_dtype` / `accumulator_dtype` where it has them; second moments in the params' dtype.


def optax_sgd_momentum(state_dtype: str | None) -> Any:
    import optax

    return optax.sgd(LEARNING_RATE, momentum=MOMENTUM, accumulator_dtype=_jax_dtype(state_dtype))


def optax_adam(state_dtype: str | None) -> Any:
    import optax

    return optax.adam(LEARNING_RATE, mu_dtype=_jax_dtype(state_dtype))


def optax_adamw(state_dtype: str | None) -> Any:
    import optax

    return optax.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY, mu_dtype=_jax_dtype(state_dtype))


def optax_rmsprop(state_dtype: str | None) -> Any:
    import optax

    return optax.rmsprop(LEARNING_RATE)


def optax_adagrad(state_dtype: str | None) -> Any:
    import optax

    return optax.adagrad(LEARNING_RATE)


def optax_chain(state_dtype: str | None) -> Any:
    import optax

    schedule = optax.warmup_cosine_decay_schedule(0.0, LEARNING_RATE, WARMUP_STEPS, DECAY_STEPS)
    return optax.chain(
        optax.clip_by_global_norm(MAX_NORM),
        optax.adamw(schedule, weight_decay=WEIGHT_DECAY, mu_dtype=_jax_dtype(state_dtype)),
    )


# torch.optim: `flag` is {"foreach": True} or {"fused": True}; state is kept in the params' dtype.
# Each returns the optimizer (to read its state) and the function that takes one step.


def torch_sgd_momentum(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import torch

    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE, momentum=MOMENTUM, **flag)
    return optimizer, optimizer.step


def torch_adam(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import torch

    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, **flag)
    return optimizer, optimizer.step


def torch_adamw(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import torch

    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, **flag)
    return optimizer, optimizer.step


def torch_rmsprop(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import torch

    optimizer = torch.optim.RMSprop(params, lr=LEARNING_RATE, alpha=0.9, **flag)  # optax's decay 0.9
    return optimizer, optimizer.step


def torch_adagrad(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    import torch

    optimizer = torch.optim.Adagrad(params, lr=LEARNING_RATE, initial_accumulator_value=0.1, **flag)
    return optimizer, optimizer.step


def torch_chain(params: list[Any], flag: dict[str, Any]) -> tuple[Any, Callable[[], None]]:
    """clip_grad_norm_ (foreach: torch has no fused clip), AdamW, and a LambdaLR schedule step."""
    import torch

    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, **flag)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: warmup_cosine(k) / LEARNING_RATE)

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=True)
        optimizer.step()
        scheduler.step()

    return optimizer, step


@dataclass(frozen=True)
class Algorithm:
    """An optimizer as each library spells it. `grad_passes`: reads of the grads a step needs at least."""

    name: str
    gradtx: Callable[[str | None], Any]
    optax: Callable[[str | None], Any]
    torch: Callable[[list[Any], dict[str, Any]], tuple[Any, Callable[[], None]]]
    grad_passes: int = 1


ALGORITHMS = (
    Algorithm("sgd-momentum", gradtx_sgd_momentum, optax_sgd_momentum, torch_sgd_momentum),
    Algorithm("adam", gradtx_adam, optax_adam, torch_adam),
    Algorithm("adamw", gradtx_adamw, optax_adamw, torch_adamw),
    Algorithm("rmsprop", gradtx_rmsprop, optax_rmsprop, torch_rmsprop),
    Algorithm("adagrad", gradtx_adagrad, optax_adagrad, torch_adagrad),
    Algorithm("clip+adamw+schedule", gradtx_chain, optax_chain, torch_chain, grad_passes=2),
)


def moved_bytes(param_bytes: int, grad_bytes: int, array_state_bytes: int, grad_passes: int) -> int:
    """The minimum bytes one step moves: params read and written, grads read, state read and written."""
    return 2 * param_bytes + grad_passes * grad_bytes + 2 * array_state_bytes


def cases(quick: bool) -> list[tuple[Shape, tuple[Algorithm, ...]]]:
    """The cases of a run: every shape with every optimizer; with `quick`, a check that every code
    path runs in well under a minute: every optimizer on the first shape, Adam and the chain on the
    others (each JAX case is a compilation, the larger part of a quick run's time)."""
    if not quick:
        return [(shape, ALGORITHMS) for shape in FULL_SHAPES]
    few = tuple(a for a in ALGORITHMS if a.name in ("adam", "clip+adamw+schedule"))
    return [(shape, ALGORITHMS if i == 0 else few) for i, shape in enumerate(QUICK_SHAPES)]
