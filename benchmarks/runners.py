"""Runners: one object per (case, implementation) that owns its buffers and takes optimizer steps.

Every runner has the same small interface, which `measure.py` drives:

    runner.impl          "gradtx", "optax", "torch foreach", "jax triad", ...
    runner.kind          "optimizer" or "floor"
    runner.on_host       whether its buffers live in host memory (where peak memory is measured)
    runner.run(steps)    take `steps` steps and return once their results exist (block_until_ready,
                         or a CUDA synchronize for torch on a GPU)
    runner.info()        what the runner knows about itself after warmup: the bytes a step must move,
                         state bytes, compile time, XLA's memory plan ...
    runner.close()       drop the buffers

The JAX step is `(params, state, grads) -> (params, state)` under `jax.jit` (`gradtx packed`: params
and grads packed by `gradtx.pack`, one buffer per dtype), with params and state donated (their
buffers are reused for the outputs, as in a training loop that donates them), lowered and compiled
once, outside the timed rounds. torch.optim steps with `.grad` set once: the grads stay the same
tensors from step to step, as JAX's grads argument does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.cases import GRAD_VALUE, PARAM_VALUE, Algorithm, Shape, moved_bytes

OPTIMIZER_IMPLS = ("gradtx", "gradtx packed", "optax", "torch foreach", "torch fused")
UNDONATED_IMPLS = ("gradtx undonated", "optax undonated")
EAGER_IMPLS = ("gradtx eager", "optax eager")
FLOOR_IMPLS = ("jax triad", "numpy copy", "torch triad")
TRIAD_SCALE = 1e-3  # s in a <- a + s b


class Unsupported(Exception):
    """This implementation cannot run this case (a torch mode without this optimizer, a missing package)."""


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as error:
        raise Unsupported(f"{module} is not installed") from error


# ---------------------------------------------------------------------------------------------------
# Optimizers


class JaxStep:
    """A jitted optimizer step of an optax-protocol transformation (gradtx's or optax's)."""

    kind = "optimizer"

    def __init__(
        self,
        impl: str,
        tx: Any,
        apply_updates: Callable,
        shape: Shape,
        grad_passes: int,
        donate: bool = True,
        packed: bool = False,
    ) -> None:
        import jax

        self.impl, self.grad_passes, self.donate = impl, grad_passes, donate
        self.on_host = jax.default_backend() == "cpu"
        self.params = shape.jax_tree(PARAM_VALUE)
        self.grads = shape.jax_tree(GRAD_VALUE)
        if packed:  # one buffer per dtype; the grads of a loss of packed params come packed too
            import gradtx

            self.params, self.grads = gradtx.pack(self.params), gradtx.pack(self.grads)
        self.state = tx.init(self.params)

        def step(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return apply_updates(params, updates), state

        jitted = jax.jit(step, donate_argnums=(0, 1) if donate else ())
        start = time.perf_counter()
        lowered = jitted.lower(self.params, self.state, self.grads)  # traces the Python code
        lowered_at = time.perf_counter()
        self._step = lowered.compile()  # XLA
        self._times = {"lower_s": lowered_at - start, "compile_s": time.perf_counter() - start}

    def run(self, steps: int) -> None:
        import jax

        params, state = self.params, self.state
        for _ in range(steps):
            params, state = self._step(params, state, self.grads)
        self.params, self.state = jax.block_until_ready((params, state))

    def info(self) -> dict[str, Any]:
        import jax

        def nbytes(tree: Any, arrays_only: bool = False) -> int:
            return sum(x.nbytes for x in jax.tree.leaves(tree) if not arrays_only or x.ndim > 0)

        param_bytes = nbytes(self.params)
        return {
            "donated": self.donate,
            **self._times,
            "state_bytes": nbytes(self.state),
            "moved_bytes": moved_bytes(param_bytes, nbytes(self.grads), nbytes(self.state, True), self.grad_passes),
            **_xla_memory(self._step),
        }

    def close(self) -> None:
        del self.params, self.state, self.grads, self._step


def _xla_memory(compiled: Any) -> dict[str, int | None]:
    """XLA's plan for one step: scratch bytes, and output bytes that do not reuse an input's buffer."""
    try:
        stats = compiled.memory_analysis()
        return {
            "xla_temp_bytes": int(stats.temp_size_in_bytes),
            "xla_new_output_bytes": int(stats.output_size_in_bytes - stats.alias_size_in_bytes),
        }
    except Exception:  # not every backend and version implements it: report nothing rather than fail
        return {"xla_temp_bytes": None, "xla_new_output_bytes": None}


class EagerStep:
    """The same step without jax.jit, as a notebook's loop runs it: `update` then `apply_updates`.

    gradtx compiles an update called outside jit (once per transformation and tree structure); optax
    runs it op by op. `first_step_s` is the first step's time: gradtx's compilation is in it.
    """

    kind = "optimizer"

    def __init__(self, impl: str, tx: Any, apply_updates: Callable, shape: Shape, grad_passes: int) -> None:
        import jax

        self.impl, self.grad_passes, self.tx, self.apply_updates = impl, grad_passes, tx, apply_updates
        self.on_host = jax.default_backend() == "cpu"
        self.params = shape.jax_tree(PARAM_VALUE)
        self.grads = shape.jax_tree(GRAD_VALUE)
        self.state = tx.init(self.params)
        start = time.perf_counter()
        self.run(1)
        self.first_step_s = time.perf_counter() - start

    def run(self, steps: int) -> None:
        import jax

        params, state = self.params, self.state
        for _ in range(steps):
            updates, state = self.tx.update(self.grads, state, params)
            params = self.apply_updates(params, updates)
        self.params, self.state = jax.block_until_ready((params, state))

    def info(self) -> dict[str, Any]:
        import jax

        def nbytes(tree: Any, arrays_only: bool = False) -> int:
            return sum(x.nbytes for x in jax.tree.leaves(tree) if not arrays_only or x.ndim > 0)

        moved = moved_bytes(nbytes(self.params), nbytes(self.grads), nbytes(self.state, True), self.grad_passes)
        return {
            "donated": False,
            "first_step_s": self.first_step_s,
            "state_bytes": nbytes(self.state),
            "moved_bytes": moved,
        }

    def close(self) -> None:
        del self.params, self.state, self.grads, self.tx


class TorchStep:
    """torch.optim with `foreach=True` or `fused=True`, stepping params whose `.grad` is set."""

    kind = "optimizer"

    def __init__(self, impl: str, algorithm: Algorithm, shape: Shape, flag: dict[str, Any], device: str) -> None:
        torch = _require("torch")
        self.impl, self.grad_passes, self.on_host = impl, algorithm.grad_passes, device == "cpu"
        self.params = [p.requires_grad_() for p in shape.torch_tensors(PARAM_VALUE, device)]
        for p, g in zip(self.params, shape.torch_tensors(GRAD_VALUE, device), strict=True):
            p.grad = g
        self._sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        try:  # torch checks some combinations only in the first step, which also allocates the state
            self.optimizer, self._step = algorithm.torch(self.params, flag)
            self.run(1)
        except (RuntimeError, TypeError, ValueError) as error:
            raise Unsupported(f"torch.optim: {error}".splitlines()[0]) from error

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self._step()
        self._sync()

    def info(self) -> dict[str, Any]:
        tensors = [t for s in self.optimizer.state.values() for t in s.values() if hasattr(t, "nbytes")]
        param_bytes = sum(p.nbytes for p in self.params)
        grad_bytes = sum(p.grad.nbytes for p in self.params)
        array_state_bytes = sum(t.nbytes for t in tensors if t.ndim > 0)  # not the scalar `step`s
        return {
            "state_bytes": sum(t.nbytes for t in tensors),
            "moved_bytes": moved_bytes(param_bytes, grad_bytes, array_state_bytes, self.grad_passes),
        }

    def close(self) -> None:
        del self.params, self.optimizer, self._step


def optimizer_runners(
    shape: Shape, algorithm: Algorithm, impls: tuple[str, ...], torch_device: str
) -> dict[str, Callable[[], Any]]:
    """impl -> a function that builds its runner (compiles, allocates), for the impls this case has."""

    def jax_step(library: str, donate: bool, packed: bool = False) -> Callable[[], JaxStep]:
        def build() -> JaxStep:
            module = _require(library)
            tx = getattr(algorithm, library)(shape.state_dtype)
            impl = library + ("" if donate else " undonated") + (" packed" if packed else "")
            return JaxStep(impl, tx, module.apply_updates, shape, algorithm.grad_passes, donate, packed)

        return build

    def eager_step(library: str) -> Callable[[], EagerStep]:
        def build() -> EagerStep:
            module = _require(library)
            tx = getattr(algorithm, library)(shape.state_dtype)
            return EagerStep(f"{library} eager", tx, module.apply_updates, shape, algorithm.grad_passes)

        return build

    def torch_step(mode: str) -> Callable[[], TorchStep]:
        return lambda: TorchStep(f"torch {mode}", algorithm, shape, {mode: True}, torch_device)

    builders = {
        "gradtx": jax_step("gradtx", donate=True),
        "optax": jax_step("optax", donate=True),
        "torch foreach": torch_step("foreach"),
        "torch fused": torch_step("fused"),
    }
    if shape.n_leaves > 1:  # packing one leaf changes nothing
        builders["gradtx packed"] = jax_step("gradtx", donate=True, packed=True)
    if shape.undonated and algorithm.name == "adam":
        builders |= {"gradtx undonated": jax_step("gradtx", False), "optax undonated": jax_step("optax", False)}
    if shape.eager and algorithm.name == "adam":
        builders |= {"gradtx eager": eager_step("gradtx"), "optax eager": eager_step("optax")}
    return {impl: build for impl, build in builders.items() if impl in impls}


# ---------------------------------------------------------------------------------------------------
# Floors: the fastest a program can stream the same number of float32 elements through memory


class JaxTriad:
    """a <- a + s b on one float32 array of n elements, jitted with a donated: 3 x 4 bytes an element."""

    kind, impl = "floor", "jax triad"

    def __init__(self, n: int) -> None:
        import jax
        import jax.numpy as jnp

        self.on_host = jax.default_backend() == "cpu"
        self.a = jnp.full(n, PARAM_VALUE, jnp.float32)
        self.b = jnp.full(n, GRAD_VALUE, jnp.float32)
        self._step = jax.jit(lambda a, b: a + TRIAD_SCALE * b, donate_argnums=0).lower(self.a, self.b).compile()

    def run(self, steps: int) -> None:
        a = self.a
        for _ in range(steps):
            a = self._step(a, self.b)
        self.a = a.block_until_ready()

    def info(self) -> dict[str, Any]:
        return {"moved_bytes": 3 * self.a.nbytes}

    def close(self) -> None:
        del self.a, self.b, self._step


class NumpyCopy:
    """dst <- src with NumPy (one thread): 2 x 4 bytes an element (the STREAM convention)."""

    kind, impl, on_host = "floor", "numpy copy", True

    def __init__(self, n: int) -> None:
        import numpy as np

        self.src = np.full(n, PARAM_VALUE, np.float32)
        self.dst = np.zeros_like(self.src)

    def run(self, steps: int) -> None:
        import numpy as np

        for _ in range(steps):
            np.copyto(self.dst, self.src)

    def info(self) -> dict[str, Any]:
        return {"moved_bytes": 2 * self.src.nbytes}

    def close(self) -> None:
        del self.src, self.dst


class TorchTriad:
    """a.add_(b, alpha=s) with torch, in place: 3 x 4 bytes an element."""

    kind, impl = "floor", "torch triad"

    def __init__(self, n: int, device: str) -> None:
        torch = _require("torch")
        self.on_host = device == "cpu"
        self.a = torch.full((n,), PARAM_VALUE, dtype=torch.float32, device=device)
        self.b = torch.full((n,), GRAD_VALUE, dtype=torch.float32, device=device)
        self._sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.a.add_(self.b, alpha=TRIAD_SCALE)
        self._sync()

    def info(self) -> dict[str, Any]:
        return {"moved_bytes": 3 * self.a.nbytes}

    def close(self) -> None:
        del self.a, self.b


def floor_runners(n: int, impls: tuple[str, ...], torch_device: str) -> dict[str, Callable[[], Any]]:
    builders = {
        "jax triad": lambda: JaxTriad(n),
        "numpy copy": lambda: NumpyCopy(n),
        "torch triad": lambda: TorchTriad(n, torch_device),
    }
    return {impl: build for impl, build in builders.items() if impl in impls}
