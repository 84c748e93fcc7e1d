"""examples/sweep_digits.py runs as its docstring says, with few steps and rates: a timing table, a
CSV row per learning rate whose sweep and separate-run losses agree, and a PNG."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from tests.test_examples_more import assert_png, run_example


def test_help() -> None:
    out = run_example("sweep_digits", "--help").stdout
    for option in ("--steps", "--out", "--seed", "--rates"):
        assert option in out


@pytest.mark.slow
def test_sweep_digits(tmp_path: Path) -> None:
    result = run_example("sweep_digits", "--steps", "30", "--rates", "8", "--compiled", "1", "--out", str(tmp_path))
    for method in ("gradtx.sweep", "separate runs, one program", "separate runs, each compiled"):
        assert method in result.stdout, result.stdout
    with (tmp_path / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for row in rows:
        sweep, separate = float(row["final_train_loss"]), float(row["separate_run_final_loss"])
        if float(row["learning_rate"]) < 0.01:  # stable rates: float32 batched rounding only
            assert math.isclose(sweep, separate, rel_tol=1e-4), row
    assert min(float(r["final_train_loss"]) for r in rows) < math.log(10)  # some rate descends
    assert_png(tmp_path / "sweep.png")
    assert (tmp_path / "timings.csv").read_text().count("\n") == 4
