"""gradtx.zero_shardings: ZeRO-sharded state on 8 devices, and across 2 processes with jax.distributed.

Both need devices that XLA creates only when XLA_FLAGS is set before jax starts, so they run in fresh
interpreters (tests/zero_worker.py, whose docstring lists the checks):

- 8 CPU devices, params replicated: adam, clip_by_global_norm + adamw and 8-bit Adam with every
  moment split 8 ways (1/8 of the state's bytes on each device) equal one device after 5 steps;
  4-bit Adam on a matrix split along its last axis compiles to a step without any collective.
- 2 processes x 4 CPU devices (gloo collectives on 127.0.0.1): zero-sharded adam and
  clip_by_global_norm + adamw train 3 steps, checkpoint through orbax from both processes, restore
  into the zero shardings and train 3 more; both processes' params equal those of one process
  training 6 steps here, without sharding or checkpoint.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from tests import zero_worker

ROOT = Path(__file__).resolve().parents[1]


def environment(devices: int) -> dict[str, str]:
    flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), f"--xla_force_host_platform_device_count={devices}"]))
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": pythonpath, "JAX_PLATFORMS": "cpu"}


def summary(part: str, stdout: str, stderr: str, returncode: int) -> str:
    lines = stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    if not re.fullmatch(rf"zero checks {part}: \d+ passed, \d+ failed", last):
        raise RuntimeError(f"the worker stopped (exit code {returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert returncode == 0, f"{last}\nstderr:\n{stderr[-5000:]}"
    return last


def test_zero_sharded_state_on_8_devices_equals_one_device():
    result = subprocess.run(
        [sys.executable, "-m", "tests.zero_worker", "mesh"],
        capture_output=True, text=True, env=environment(8), cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert summary("mesh", result.stdout, result.stderr, result.returncode) == "zero checks mesh: 4 passed, 0 failed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_checkpoint_and_restore_to_the_numbers_of_one(tmp_path):
    port = free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.zero_worker", "process", str(port), str(i), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(4),
            cwd=ROOT,
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=240) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert summary("process", out, err, w.returncode) == "zero checks process: 3 passed, 0 failed"
    for name in ("adam", "clip+adamw"):
        expected = zero_worker.unsharded(zero_worker.optimizers()[name], 6)
        for i in range(2):
            got = np.load(tmp_path / f"process-{i}.npz")
            for key, value in expected.items():
                np.testing.assert_allclose(got[f"{name}/{key}"], np.asarray(value, jnp.float64), rtol=1e-10, atol=1e-12)
