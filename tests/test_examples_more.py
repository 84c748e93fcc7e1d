"""The examples beyond the README demo run as their docstrings say, with few steps.

- examples/train_flax.py and examples/train_equinox.py: progress lines, a final loss and accuracy, a PNG.
- examples/sweep_learning_rates.py: one line per optimizer, a CSV with a row per (optimizer, learning
  rate), a PNG.
- examples/gradient_accumulation.py: the check that k microbatches give the update of one batch of
  k*b passes, then a table of three runs and a PNG.
- examples/mixed_precision.py: a table of dtypes and bytes per parameter for each run, and a PNG.

Each script runs as a user runs it, in a fresh interpreter (without this suite's x64 and strict
promotion settings), importing gradtx from this checkout, with its output under tmp_path.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = ("train_flax", "train_equinox", "sweep_learning_rates", "gradient_accumulation", "mixed_precision")
NEEDS = {"train_flax": "flax", "train_equinox": "equinox"}  # optional packages a script imports
INITIAL_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    """`python examples/<name>.py args` in a fresh interpreter that imports gradtx from this checkout.

    Deprecation warnings raised by the script's own lines are errors: examples must not use an API
    their libraries have deprecated.
    """
    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"{NEEDS[name]} is not installed")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"}
    warnings = ["-W", "error::DeprecationWarning:__main__", "-W", "error::FutureWarning:__main__"]
    result = subprocess.run(
        [sys.executable, *warnings, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name: str) -> None:
    result = run_example(name, "--help")
    for option in ("--steps", "--out", "--seed"):
        assert option in result.stdout, result.stdout


def test_the_data_module_has_help_and_describes_the_data() -> None:
    assert "--seed" in run_example("digits", "--help").stdout
    out = run_example("digits").stdout
    assert "train: 1437 images of 64 pixels; test: 360" in out, out


# ---------------------------------------------------------------------------------------------------
# flax and equinox

PROGRESS = re.compile(r"^step\s+(\d+)  train loss ([0-9.]+)  test accuracy ([0-9.]+)%$", re.MULTILINE)
FINAL = re.compile(r"^final: train loss ([0-9.]+|nan|inf), test accuracy ([0-9.]+)%$", re.MULTILINE)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train_flax", "train_equinox"])
def test_train_with_framework(name: str, tmp_path: Path) -> None:
    png = tmp_path / "new-folder" / "loss.png"  # the script creates the folder
    result = run_example(name, "--steps", "40", "--out", str(png), "--seed", "1")

    assert re.search(r"^optimizer = chain\(scale_by_adam\(.*warmup_cosine_decay_schedule\(", result.stdout, re.M)
    progress = PROGRESS.findall(result.stdout)
    assert [int(step) for step, _, _ in progress] == [8, 16, 24, 32, 40], result.stdout  # every 40 // 5 steps
    final = FINAL.search(result.stdout)
    assert final, result.stdout
    loss, accuracy = float(final[1]), float(final[2])
    # From ln(10) = 2.3, 40 steps of Adam (peak learning rate 1e-2) reach well below 1.
    assert loss < 1.0, result.stdout
    assert accuracy > 60, result.stdout
    assert (float(progress[-1][1]), float(progress[-1][2])) == (loss, accuracy)
    assert_png(png)


# ---------------------------------------------------------------------------------------------------
# Learning-rate sweep

SWEPT = ("sgd", "momentum", "adagrad", "rmsprop", "adam")


@pytest.mark.slow
def test_sweep_learning_rates(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = run_example("sweep_learning_rates", "--steps", "30", "--out", str(out), "--seed", "1")

    for name in SWEPT:
        assert re.search(rf"^\s*{name}: compiled once in [0-9.]+ s, 16 runs in", result.stdout, re.M), result.stdout
    with (out / "final_losses.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"optimizer", "learning_rate", "train_loss", "test_accuracy"}
    assert [r["optimizer"] for r in rows] == [name for name in SWEPT for _ in range(16)]
    for name in SWEPT:
        lrs = [float(r["learning_rate"]) for r in rows if r["optimizer"] == name]
        assert lrs == sorted(lrs) and math.isclose(lrs[0], 1e-4) and math.isclose(lrs[-1], 10)
        losses = [float(r["train_loss"]) for r in rows if r["optimizer"] == name]
        # Each optimizer has a learning rate that descends in 30 steps, and the smallest rate is
        # stable (its loss is finite and about where it started).
        assert min(x for x in losses if math.isfinite(x)) < 1.5, (name, losses)
        assert abs(losses[0] - INITIAL_LOSS) < 1.0, (name, losses)
    assert_png(out / "final_losses.png")


# ---------------------------------------------------------------------------------------------------
# Gradient accumulation

DIFFERENCE = re.compile(r"max \|(gradient|update) difference\| *= ([0-9.e+-]+) +\(largest \|\w+\| ([0-9.e+-]+)\)")
ACC_ROW = re.compile(r"^(.+?)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)%$", re.MULTILINE)


@pytest.mark.slow
def test_gradient_accumulation(tmp_path: Path) -> None:
    png = tmp_path / "new-folder" / "acc.png"
    args = ("--steps", "30", "--microbatches", "3", "--microbatch-size", "16", "--out", str(png), "--seed", "1")
    result = run_example("gradient_accumulation", *args)

    differences = {kind: (float(diff), float(largest)) for kind, diff, largest in DIFFERENCE.findall(result.stdout)}
    assert set(differences) == {"gradient", "update"}, result.stdout
    for kind, (diff, largest) in differences.items():
        assert largest > 0 and diff <= 1e-5 * largest, (kind, diff, largest)
    assert "same up to float32 rounding" in result.stdout

    rows = {m[1].strip(): m.groups()[1:] for m in ACC_ROW.finditer(result.stdout)}
    assert list(rows) == ["accumulate 3 x 16", "one batch of 48", "one microbatch of 16"], result.stdout
    assert [int(r[0]) for r in rows.values()] == [48, 48, 16]
    accumulated, one_batch = rows["accumulate 3 x 16"], rows["one batch of 48"]
    assert abs(float(accumulated[1]) - float(one_batch[1])) <= 2e-4, result.stdout  # the same training
    for _, loss, accuracy in rows.values():
        assert float(loss) < INITIAL_LOSS and float(accuracy) > 30, result.stdout
    assert_png(png)


# ---------------------------------------------------------------------------------------------------
# Mixed precision

# run, then the dtypes of params, forward pass, grads, mu, nu, then bytes/param, train loss, accuracy
MP_ROW = re.compile(r"^(.+?)\s+" + r"(float32|bfloat16)\s+" * 5 + r"([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)%$", re.MULTILINE)
MP_EXPECTED = {  # params, forward, grads, mu, nu, bytes per parameter (state's int32 count excluded)
    "float32": ("float32", "float32", "float32", "float32", "float32", 12),
    "bf16 forward": ("float32", "bfloat16", "float32", "float32", "float32", 12),
    "bf16 params, f32 mu": ("bfloat16", "bfloat16", "bfloat16", "float32", "float32", 10),
    "bf16 params, bf16 mu": ("bfloat16", "bfloat16", "bfloat16", "bfloat16", "float32", 8),
}


@pytest.mark.slow
def test_mixed_precision(tmp_path: Path) -> None:
    png = tmp_path / "new-folder" / "mp.png"
    result = run_example("mixed_precision", "--steps", "30", "--out", str(png), "--seed", "1")

    assert re.search(r"^\s*bf16 params, f32 mu: chain\(scale_by_adam\(.*accumulator_dtype=", result.stdout, re.M)
    rows = {m[1].strip(): m.groups()[1:] for m in MP_ROW.finditer(result.stdout)}
    assert list(rows) == list(MP_EXPECTED), result.stdout
    for name, (*kinds, per_param, loss, accuracy) in rows.items():
        *expected_kinds, expected_bytes = MP_EXPECTED[name]
        assert kinds == expected_kinds, (name, kinds)
        assert abs(float(per_param) - expected_bytes) < 0.01, (name, per_param)
        assert float(loss) < 1.5 and float(accuracy) > 50, result.stdout
    assert_png(png)
