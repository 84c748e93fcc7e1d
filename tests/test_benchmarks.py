"""benchmarks/: `python -m benchmarks --quick` runs end to end and writes what its README promises.

A check of the harness, not of speed (speed is measured by running benchmarks/, never by a timed
test). The expected bytes per parameter are written from the algorithms, not copied from a run:
Adam reads params, grads, mu and nu and writes params, mu and nu (7 x 4 bytes a float32 parameter).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]

ROW_KEYS = {
    "shape", "optimizer", "impl", "kind", "status", "n_params", "n_leaves", "param_dtype", "state_dtype",
    "donated", "median_s", "q1_s", "q3_s", "min_s", "max_s", "rounds", "steps_per_round", "moved_bytes",
    "gbps", "floor_gbps", "ratio_to_floor", "ratio_to_optax", "state_bytes", "state_bytes_per_param",
    "lower_s", "compile_s", "first_step_s", "peak_rss_extra_bytes", "xla_temp_bytes", "xla_new_output_bytes",
}  # fmt: skip
OPTIMIZERS = {"sgd-momentum", "adam", "adamw", "rmsprop", "adagrad", "clip+adamw+schedule"}


def run_benchmarks(*args: str) -> subprocess.CompletedProcess:
    """`python -m benchmarks args` in a fresh interpreter, importing gradtx and benchmarks from this checkout."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"}
    warnings = ["-W", "error::DeprecationWarning:benchmarks", "-W", "error::FutureWarning:benchmarks"]
    result = subprocess.run(
        [sys.executable, *warnings, "-m", "benchmarks", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_help() -> None:
    result = run_benchmarks("--help")
    for option in ("--quick", "--out", "--shapes", "--optimizers", "--impls", "--budget", "--torch-threads"):
        assert option in result.stdout, result.stdout


@pytest.mark.slow
def test_quick_run(tmp_path: Path) -> None:
    """One quick run (tens of seconds), checked three ways; one test, so that xdist runs it once."""
    out = tmp_path / "new-folder"  # the command creates the folder
    result = run_benchmarks("--quick", "--out", str(out))
    rows = check_files(result, out)
    check_coverage(rows)
    check_numbers(rows)


def check_files(result: subprocess.CompletedProcess, out: Path) -> list[dict]:
    """A JSON and a PNG with the same stem, the JSON with meta, method and a row per (case, impl)."""
    (json_path,) = out.glob("*-quick.json")
    (png_path,) = out.glob("*-quick.png")
    assert png_path.stem == json_path.stem
    assert png_path.stat().st_size > 10_000 and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {json_path}" in result.stdout

    data = json.loads(json_path.read_text())
    assert set(data) == {"meta", "method", "results"}
    meta = data["meta"]
    assert meta["mode"] == "quick"
    assert {"date", "command", "config", "versions", "machine", "load_average_start", "load_average_end"} <= set(meta)
    assert meta["wall_s"] > 0 and meta["versions"]["jax"] and meta["machine"]["cpu_count"] >= 1
    rows = data["results"]
    assert rows and all(set(row) == ROW_KEYS for row in rows)
    # Every column the README explains is explained in the file too.
    assert {"median_s", "moved_bytes", "gbps", "floor_gbps", "ratio_to_floor", "ratio_to_optax"} <= set(data["method"])
    return rows


def check_coverage(rows: list[dict]) -> None:
    """Every optimizer, five shapes (one bfloat16), JAX's libraries and the floors in every case."""
    assert {row["optimizer"] for row in rows} == OPTIMIZERS
    shapes = {row["shape"] for row in rows}
    assert len(shapes) == 5 and any(row["param_dtype"] == "bfloat16" for row in rows)
    for shape in shapes:  # every case has JAX's two libraries and the floors, and they ran
        for optimizer in {row["optimizer"] for row in rows if row["shape"] == shape}:
            case = {row["impl"]: row for row in rows if (row["shape"], row["optimizer"]) == (shape, optimizer)}
            assert all(case[impl]["status"] == "ok" for impl in ("gradtx", "optax", "jax triad", "numpy copy"))
            assert {"torch foreach", "torch fused"} <= set(case)  # run or skipped, with the reason
            for row in case.values():
                assert row["status"] == "ok" or row["status"].startswith("skipped: "), row
    undonated = [row for row in rows if row["impl"] in ("gradtx undonated", "optax undonated")]
    assert len(undonated) == 2 and all(row["donated"] is False and row["optimizer"] == "adam" for row in undonated)
    # Packed params on every shape of several leaves; the eager step (no jit) of Adam on the many-leaf one.
    packed = {row["shape"] for row in rows if row["impl"] == "gradtx packed" and row["status"] == "ok"}
    assert packed == {row["shape"] for row in rows if row["n_leaves"] > 1}
    eager = [row for row in rows if row["impl"] in ("gradtx eager", "optax eager")]
    assert len(eager) == 2 and all(row["optimizer"] == "adam" and row["first_step_s"] > 0 for row in eager)


def check_numbers(rows: list[dict]) -> None:
    """Statistics in order, ratios as defined, and the minimum bytes each algorithm must move."""
    ok = [row for row in rows if row["status"] == "ok"]
    for row in ok:
        assert row["rounds"] == 3 and row["min_s"] <= row["q1_s"] <= row["median_s"] <= row["q3_s"] <= row["max_s"]
        assert row["gbps"] == pytest.approx(row["moved_bytes"] / row["median_s"] / 1e9)
        assert row["ratio_to_floor"] == pytest.approx(row["median_s"] * row["floor_gbps"] * 1e9 / row["moved_bytes"])
    cases = {(row["shape"], row["optimizer"]) for row in rows}
    for case in cases:
        floors = [row for row in ok if (row["shape"], row["optimizer"]) == case and row["kind"] == "floor"]
        assert min(row["ratio_to_floor"] for row in floors) == pytest.approx(1.0)  # the best floor is the floor
        (optax,) = [row for row in ok if (row["shape"], row["optimizer"]) == case and row["impl"] == "optax"]
        assert optax["ratio_to_optax"] == 1.0
        for row in ok:  # eager rows against optax's eager step, the others against optax's jitted one
            if (row["shape"], row["optimizer"]) == case and row["kind"] == "optimizer":
                base = "optax eager" if row["impl"].endswith(" eager") else "optax"
                (reference,) = [r for r in ok if (r["shape"], r["optimizer"]) == case and r["impl"] == base]
                assert row["ratio_to_optax"] == pytest.approx(row["median_s"] / reference["median_s"])

    def gradtx(shape_dtype: str, optimizer: str, impl: str = "gradtx") -> dict:
        return next(
            row for row in ok
            if row["param_dtype"] == shape_dtype and row["optimizer"] == optimizer and row["impl"] == impl
        )  # fmt: skip

    # Bytes a float32 parameter must move: params read + written, grads read (twice to clip by the
    # global norm), each state array read + written.
    per_param = {"sgd-momentum": 20, "adam": 28, "adamw": 28, "rmsprop": 20, "adagrad": 20, "clip+adamw+schedule": 32}
    for optimizer, expected in per_param.items():
        row = gradtx("float32", optimizer)
        assert row["moved_bytes"] == expected * row["n_params"], optimizer
    # bfloat16 params and grads with float32 mu and nu: 2 x 2 + 2 + 2 x 8 bytes; 8 bytes of state.
    row = gradtx("bfloat16", "adam")
    assert row["moved_bytes"] == 22 * row["n_params"]
    assert 8 <= row["state_bytes_per_param"] < 8.01  # mu, nu and a step count
    # Donation: the donated step allocates no new output buffers; the undonated one all of them.
    donated, undonated = gradtx("float32", "adam"), gradtx("float32", "adam", "gradtx undonated")
    if donated["xla_new_output_bytes"] is not None:
        assert donated["xla_new_output_bytes"] < 1000 <= 12 * donated["n_params"] <= undonated["xla_new_output_bytes"]


def test_complete_derives_the_ratios() -> None:
    """Ratios from hand-made rows: a 1 GB/s floor, and an optimizer moving 2 GB in 4 s (0.5 GB/s)."""
    case = {"shape": "s", "optimizer": "o", "n_params": 10, "status": "ok"}
    rows = report.complete(
        [
            {**case, "impl": "numpy copy", "kind": "floor", "moved_bytes": 10**9, "median_s": 1.0},
            {**case, "impl": "jax triad", "kind": "floor", "moved_bytes": 10**9, "median_s": 2.0},
            {
                **case,
                "impl": "optax",
                "kind": "optimizer",
                "moved_bytes": 2 * 10**9,
                "median_s": 4.0,
                "state_bytes": 80,
            },
            {**case, "impl": "gradtx", "kind": "optimizer", "moved_bytes": 2 * 10**9, "median_s": 3.0},
            {**case, "impl": "torch fused", "kind": "optimizer", "status": "skipped: no"},
            {**case, "impl": "gradtx eager", "kind": "optimizer", "moved_bytes": 2 * 10**9, "median_s": 8.0},
            {**case, "impl": "optax eager", "kind": "optimizer", "moved_bytes": 2 * 10**9, "median_s": 16.0},
        ]
    )
    by_impl = {row["impl"]: row for row in rows}
    assert all(set(row) == ROW_KEYS for row in rows)
    assert by_impl["numpy copy"]["floor_gbps"] == 1.0 and by_impl["numpy copy"]["ratio_to_floor"] == 1.0
    assert by_impl["jax triad"]["ratio_to_floor"] == 2.0 and by_impl["jax triad"]["ratio_to_optax"] is None
    assert by_impl["optax"]["gbps"] == 0.5 and by_impl["optax"]["ratio_to_floor"] == 2.0
    assert by_impl["optax"]["state_bytes_per_param"] == 8.0
    assert by_impl["gradtx"]["ratio_to_optax"] == 0.75 and by_impl["gradtx"]["ratio_to_floor"] == 1.5
    assert by_impl["torch fused"]["median_s"] is None and by_impl["torch fused"]["ratio_to_floor"] is None
    assert by_impl["gradtx eager"]["ratio_to_optax"] == 0.5  # eager against eager
    assert by_impl["optax eager"]["ratio_to_optax"] == 1.0
    assert not any(isinstance(v, float) and math.isnan(v) for row in rows for v in row.values())
