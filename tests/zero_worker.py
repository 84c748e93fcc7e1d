"""ZeRO and multi-process checks, run by tests/test_zero.py in fresh interpreters.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.zero_worker mesh
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.zero_worker process PORT I OUT

- `mesh` (8 CPU devices): params replicated over a ('data',) mesh of 8, the state placed with
  `gradtx.zero_shardings`, for adam, clip_by_global_norm + adamw, and 8-bit Adam: every moment is
  split 8 ways (each device holds 1/8 of the state's bytes, measured on its addressable shards), a
  jitted step keeps those shardings, and 5 steps equal 5 unsharded steps on one device. Then 4-bit
  Adam on a matrix split over 8 devices along its last axis (128 columns each, one block of 128):
  the compiled step has no collective (a block never straddles two shards) and equals one device.
- `process` (one of 2 processes of 4 CPU devices each, jax.distributed with gloo collectives on
  127.0.0.1:PORT): the same zero-sharded adam and clip + adamw on the global mesh of 8; 3 steps, an
  orbax checkpoint of params and state written by both processes, restored into the zero
  shardings, 3 more steps. Process I writes its final params (replicated, read from its own
  devices) to OUT/process-I.npz; the test compares them with one process's run.

The last stdout line is `zero checks PART: N passed, M failed`; failures go to stderr.
Importing this module does nothing (pytest's doctest collection imports it).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

STEPS = 5


def optimizers() -> dict[str, Any]:
    return {
        "adam": gradtx.adam(1e-2),
        "clip+adamw": gradtx.chain(gradtx.clip_by_global_norm(0.05), gradtx.adamw(1e-2, weight_decay=0.1)),
        "adam 8-bit": gradtx.quantized_state(gradtx.adam(1e-2), bits=8, min_size=0),
    }


def host_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(16, 256)), "b": rng.normal(size=(24,)), "s": np.asarray(0.5)}


def gradients(params: Any, k: int) -> Any:
    return jax.tree.map(lambda p: jnp.sin(p * (k + 1.0)) + 0.1 * p, params)


def make_step(tx: Any, **jit_kwargs: Any) -> Any:
    def step(params: Any, state: Any, k: Any) -> Any:
        updates, state = tx.update(gradients(params, k), state, params)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step, **jit_kwargs)


def unsharded(tx: Any, steps: int) -> Any:
    params = jax.tree.map(jnp.asarray, host_params())
    state = tx.init(params)
    step = make_step(tx)
    for k in range(steps):
        params, state = step(params, state, jnp.float64(k))
    return params


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception:
            self.failures.append(f"--- {name}\n{traceback.format_exc()}")
        else:
            self.passed += 1


def local_bytes(tree: Any, device: Any) -> int:
    return sum(s.data.nbytes for x in jax.tree.leaves(tree) for s in x.addressable_shards if s.device == device)


def close(actual: Any, expected: Any, what: str, rtol: float = 1e-10) -> None:
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-12, err_msg=f"{what}{path}")


def mesh_part(checks: Checks) -> None:
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    for name, tx in optimizers().items():
        with checks.check(f"{name}: zero-sharded state, 1/8 of the bytes per device, numbers of one device"):
            params = jax.device_put(jax.tree.map(jnp.asarray, host_params()), replicated)
            shardings = gradtx.zero_shardings(tx, params)
            state = jax.device_put(tx.init(params), shardings)
            param_shardings = jax.tree.map(lambda _: replicated, params)
            step = make_step(tx, out_shardings=(param_shardings, shardings))
            for k in range(STEPS):
                params, state = step(params, state, jnp.float64(k))
            for path, leaf in jax.tree_util.tree_leaves_with_path(state):
                # (A quantized leaf of 24 values is one short block: it cannot split in whole blocks.)
                if leaf.ndim and leaf.shape[0] % 8 == 0 and "b']" not in jax.tree_util.keystr(path):
                    assert not leaf.sharding.is_fully_replicated, f"{path} is replicated"
            total = sum(x.nbytes for x in jax.tree.leaves(state) if x.ndim)
            per_device = local_bytes([x for x in jax.tree.leaves(state) if x.ndim], jax.devices()[0])
            print(f"{name}: state {total} bytes, {per_device} on device 0 ({per_device / total:.3f})")
            assert per_device <= total / 8 + 64 * 8, (per_device, total)  # + the 24-value bias' share
            close(params, unsharded(tx, STEPS), f"{name}: params")
    with checks.check("4-bit Adam on a matrix split along its last axis: no collective, numbers of one device"):
        tx = gradtx.quantized_state(gradtx.adam(1e-2), bits=4, min_size=0)  # blocks of 128
        columns = NamedSharding(mesh, P(None, "data"))
        params = {"w": jax.device_put(jnp.asarray(host_params()["w"][:, :].repeat(4, axis=1)), columns)}
        shardings = gradtx.state_shardings(tx, params)
        state = jax.device_put(tx.init(params), shardings)
        step = make_step(tx, out_shardings=({"w": columns}, shardings))
        hlo = step.lower(params, state, jnp.float64(0)).compile().as_text()
        for collective in ("all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all"):
            assert collective not in hlo, f"the step has a {collective}"
        for k in range(STEPS):
            params, state = step(params, state, jnp.float64(k))
        reference = {"w": jnp.asarray(host_params()["w"].repeat(4, axis=1))}
        ref_state = tx.init(reference)
        ref_step = make_step(tx)
        for k in range(STEPS):
            reference, ref_state = ref_step(reference, ref_state, jnp.float64(k))
        close(params, reference, "4-bit params", rtol=0)


def process_part(checks: Checks, port: str, index: str, out: str) -> None:
    import orbax.checkpoint as ocp

    i = int(index)
    with checks.check("jax.distributed with gloo: 2 processes, 8 devices"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=i)
        assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    results = {}
    for name in ("adam", "clip+adamw"):
        tx = optimizers()[name]
        with checks.check(f"{name}: zero-sharded across processes, checkpointed and restored by both"):
            host = host_params()
            params = {
                k: jax.make_array_from_callback(v.shape, replicated, lambda idx, v=v: v[idx]) for k, v in host.items()
            }
            shardings = gradtx.zero_shardings(tx, params)
            state = jax.jit(tx.init, out_shardings=shardings)(params)
            step = make_step(tx, out_shardings=(jax.tree.map(lambda _: replicated, params), shardings))
            for k in range(3):
                params, state = step(params, state, jnp.float64(k))
            path = f"{out}/checkpoint-{name.replace('+', '-')}"
            with ocp.StandardCheckpointer() as checkpointer:
                checkpointer.save(path, {"params": params, "state": state})
            target = {
                "params": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params),
                "state": jax.tree.map(
                    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
                ),
            }
            with ocp.StandardCheckpointer() as checkpointer:
                restored = checkpointer.restore(path, target)
            params, state = restored["params"], restored["state"]
            for k in range(3, 6):
                params, state = step(params, state, jnp.float64(k))
            results[name] = {k: np.asarray(v.addressable_shards[0].data) for k, v in params.items()}
    np.savez(f"{out}/process-{i}.npz", **{f"{n}/{k}": v for n, r in results.items() for k, v in r.items()})


def main(argv: list[str]) -> int:
    jax.config.update("jax_enable_x64", True)  # as conftest.py: x64 on, strict promotion
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    part = argv[0]
    checks = Checks()
    if part == "mesh":
        if jax.device_count() != 8:
            print(f"needs 8 devices, got {jax.devices()}", file=sys.stderr)
            return 2
        mesh_part(checks)
    else:
        process_part(checks, *argv[1:])
    for failure in checks.failures:
        print(failure, file=sys.stderr)
    print(f"zero checks {part}: {checks.passed} passed, {len(checks.failures)} failed")
    return 1 if checks.failures or not checks.passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
