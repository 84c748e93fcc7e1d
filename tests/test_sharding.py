"""Optimizer state follows the params' shardings, and sharded training equals training on one device.

The checks need 8 devices, which XLA creates on the CPU only when XLA_FLAGS is set before jax starts,
so they run in a fresh interpreter (`tests/sharding_worker.py`, whose docstring lists them): params
sharded over a 4x2 ('data', 'model') mesh (a fully sharded matrix, a sharded vector, a replicated
bias, a 0-d scalar), with clip_by_global_norm + adam, adam, adamw with a schedule, sgd with
momentum, rmsprop with momentum, lamb, lars, multi_transform (adam and sgd), adafactor, muon,
normuon and shampoo. Each subprocess prints a summary line that the test checks; on failure the test shows the
subprocess's stderr.

Three bugs these tests found are fixed and guarded here: state_shardings and abstract_state
replicated every moment on a mesh with Auto axes; state_shardings, given bare shardings, cannot know
which params are integers (it now takes the params too); tx.init's step counts were not placed on
the params' mesh, so a jitted sharded step compiled twice.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

ROOT = Path(__file__).resolve().parents[1]
N_OPTIMIZERS, N_FACTORED = 9, 3  # tests/sharding_worker.py: optimizers() not FACTORED, FACTORED
# One check of the clipping threshold; per optimizer, 2 on each mesh (init shardings; step shardings
# and numbers) and 4 more on the Explicit mesh (state_shardings, abstract_state, jitted init, a step
# with in/out_shardings); for a factored one, 1 on each mesh (params' shardings and numbers). A
# count, so that a check that silently stops running is noticed.
CONTRACT_CHECKS = 1 + N_OPTIMIZERS * (2 + 2 + 4) + N_FACTORED * 2


def run_worker(part: str) -> str:
    """Runs `python -m tests.sharding_worker part` with 8 CPU devices; returns its summary line.

    A worker that did not get to its summary (a crash, a missing package) raises RuntimeError, so
    that a test cannot mistake it for a failed check; failed checks
    raise AssertionError with the worker's stderr.
    """
    flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), "--xla_force_host_platform_device_count=8"]))
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": pythonpath, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.sharding_worker", part],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    if not re.fullmatch(rf"sharding checks {part}: \d+ passed, \d+ failed", summary):
        raise RuntimeError(f"the worker stopped (exit code {result.returncode}):\n{result.stdout}\n{result.stderr}")
    assert result.returncode == 0, f"{summary}\nstderr:\n{result.stderr}"
    return summary


def test_sharded_state_and_steps_keep_shardings_and_equal_one_device():
    summary = run_worker("contract")
    assert summary == f"sharding checks contract: {CONTRACT_CHECKS} passed, 0 failed"


def test_state_shardings_and_abstract_state_on_a_mesh_with_auto_axes():
    assert run_worker("auto-mesh-shardings").endswith(" 0 failed")


def test_flax_nnx_optimizer_with_sharded_params_keeps_shardings_and_equals_one_device():
    """nnx.Optimizer(model, tx, wrt=nnx.Param) under nnx.jit, the model's Params sharded over the mesh:
    adam, adamw with a weight-decay mask, multi_transform (adam for kernels, sgd for biases)."""
    assert run_worker("nnx") == "sharding checks nnx: 3 passed, 0 failed"


def test_polyak_averages_keep_the_params_shardings():
    """ema_params and swa_params last in a chain: each average, and averaged_params, sharded as its param;
    per chain 2 checks here and 4 of state_shardings / abstract_state (tests/sharding_worker.py `averaging`)."""
    assert run_worker("averaging") == "sharding checks averaging: 12 passed, 0 failed"


def test_state_shardings_of_params_with_an_integer_leaf_match_init():
    mesh = jax.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1])
    params = {"w": jnp.ones((2, 3), jnp.float32), "step": jnp.zeros((), jnp.int32)}
    shardings = {"w": NamedSharding(mesh, P("data", "model")), "step": NamedSharding(mesh, P())}
    tx = gradtx.adam(1e-3)
    placed = jax.device_put(params, shardings)
    state = tx.init(placed)  # state[0].mu["step"] is None: integers get no state
    # Bare shardings carry no dtype (documented: every leaf is taken as a float param's); the
    # params themselves do.
    assert jax.tree.structure(gradtx.state_shardings(tx, placed)) == jax.tree.structure(state)
    assert jax.tree.structure(gradtx.state_shardings(tx, shardings)) != jax.tree.structure(state)


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto], ids=["explicit", "auto"])
def test_a_jitted_step_on_mesh_sharded_params_compiles_once(axis_type):
    # One device is enough to show it: the count's placement changes, not the partitioning.
    mesh = jax.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1], axis_types=(axis_type,) * 2)
    # P(None) rather than P() for the vector: jit returns P() as P(None,), so even `b + 1` compiles
    # twice on P() (a JAX behaviour, outside gradtx).
    shardings = {"w": NamedSharding(mesh, P("data", "model")), "b": NamedSharding(mesh, P(None))}
    params = jax.device_put({"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}, shardings)
    tx = gradtx.adam(1e-2)

    def step(params, state):
        updates, state = tx.update(params, state, params)
        return gradtx.apply_updates(params, updates), state

    # With Auto axes XLA chooses the output shardings itself (it may return w as P()): pin them, with
    # the state's from gradtx.state_shardings. Explicit axes keep them without help.
    pinned = (shardings, gradtx.state_shardings(tx, params)) if axis_type == AxisType.Auto else None
    step = jax.jit(step, out_shardings=pinned)
    state = tx.init(params)
    for _ in range(3):
        params, state = step(params, state)
    assert step._cache_size() == 1, f"compiled {step._cache_size()} times in 3 steps"
