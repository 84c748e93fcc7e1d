"""examples/speedrun.py runs as its docstring says: `--quick` on two optimizers prints a markdown
row for each, every validation curve descends, the best rate of each gets below the start, and the
JSON and PNG are written (the full run's committed JSON is checked to be complete too)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tests.test_examples_more import ROOT, assert_png, run_example

# | optimizer | best lr | final val loss | steps to T | seconds to T | ms/step |
ROW = re.compile(r"^\| (\w+) \| ([0-9.e+-]+) \| ([0-9.]+) ± ([0-9.]+) \| (\d+|not reached) \((\d)/(\d)\) \|")


def test_help() -> None:
    out = run_example("speedrun", "--help").stdout
    for option in ("--optimizers", "--steps", "--seeds", "--quick", "--out"):
        assert option in out


@pytest.mark.slow
def test_speedrun_quick(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = run_example("speedrun", "--quick", "--optimizers", "adamw", "muon", "--out", str(out))
    rows = {m[1]: m.groups() for m in map(ROW.match, result.stdout.splitlines()) if m}
    assert sorted(rows) == ["adamw", "muon"], result.stdout
    data = json.loads(out.read_text())
    for name, r in data["results"].items():
        for seed in r["val_loss"]:
            for curve in seed:
                assert all(map(math.isfinite, curve)), (name, curve)
        curves = r["val_loss"][0]  # one seed: a curve per learning rate
        best = min(curve[-1] for curve in curves)
        # From ln(vocabulary) = ln(103) = 4.63 nats (the zero head's uniform guess), 40 steps descend.
        assert best < min(curve[0] for curve in curves) and best < math.log(103) - 1, (name, curves)
        assert float(rows[name][2]) == pytest.approx(best, abs=1e-3)
    assert_png(out.with_suffix(".png"))


def test_committed_results_are_complete() -> None:
    data = json.loads((ROOT / "examples" / "results" / "speedrun.json").read_text())
    assert {"date", "machine", "steps", "seeds", "target"} <= set(data["meta"])
    assert len(data["table"]) == len(data["results"]) >= 5
    assert_png(ROOT / "examples" / "results" / "speedrun.png")
