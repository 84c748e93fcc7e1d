"""The README's demo and code run as the README says.

- examples/compare_optimizers.py: a table row for each of its optimizers and a PNG of the curves.
- README.md's ```python blocks: the tour runs top to bottom, and each line it shows as `# -> output`
  is printed; the flax and equinox blocks run each on its own where that package is installed.

Everything runs as a user runs it, in a fresh interpreter (without this suite's x64 and strict
promotion settings), importing gradtx from this checkout.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "compare_optimizers.py"
README = ROOT / "README.md"
OPTIONAL = ("flax", "equinox", "torch")  # packages the README's integration examples need
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam")
# optimizer, learning rate, final train loss, test accuracy, steps/s
ROW = re.compile(r"^(\w+)\s+([0-9.e+-]+)\s+([0-9.e+-]+|nan|inf)\s+([0-9.]+)%\s+([0-9,]+)$")


def run_python(script: Path, *args: str) -> subprocess.CompletedProcess:
    """`python script args` in a fresh interpreter that imports gradtx from this checkout.

    Deprecation warnings raised by the script's own lines are errors: the README's code must not
    use an API its libraries have deprecated.
    """
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"}
    warnings = ["-W", "error::DeprecationWarning:__main__", "-W", "error::FutureWarning:__main__"]
    return subprocess.run(
        [sys.executable, *warnings, str(script), *args], capture_output=True, text=True, env=env, timeout=600
    )


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return run_python(DEMO, *args)


def test_help() -> None:
    result = run_demo("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--steps", "--out", "--seed"):
        assert option in result.stdout


@pytest.mark.slow
def test_compare_optimizers(tmp_path: Path) -> None:
    png = tmp_path / "new-folder" / "curves.png"  # the demo creates the folder
    result = run_demo("--steps", "30", "--out", str(png), "--seed", "1")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"

    rows = {m[1]: m.groups() for m in map(ROW.match, result.stdout.splitlines()) if m}
    assert sorted(rows) == sorted(OPTIMIZERS), result.stdout
    for name, lr, loss, acc, speed in rows.values():
        # From a loss of about ln(10) = 2.3 at the start, 30 steps of every optimizer descend
        # (an ascending adadelta, as optax's default is, would fail here).
        assert float(lr) > 0 and math.isfinite(float(loss)), (name, loss)
        assert float(loss) < 1.6, f"{name}: train loss {loss} after 30 steps\n{result.stdout}"
        assert float(acc) > 60, f"{name}: test accuracy {acc}% after 30 steps\n{result.stdout}"
        assert int(speed.replace(",", "")) > 0
    # Each optimizer is printed as the code that builds it.
    for name in OPTIMIZERS:
        assert re.search(rf"^\s*{name} = \w+\(", result.stdout, re.MULTILINE), result.stdout

    assert png.is_file() and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------
# README.md


def readme_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def needs(block: str) -> str | None:
    """The optional package a README block imports, if any."""
    return next((p for p in OPTIONAL if re.search(rf"^(import|from) {p}\b", block, re.MULTILINE)), None)


@pytest.mark.slow
def test_readme_tour(tmp_path: Path) -> None:
    code = "\n".join(b for b in readme_blocks() if needs(b) is None)
    script = tmp_path / "readme_tour.py"
    script.write_text(code, encoding="utf-8")
    result = run_python(script)
    assert result.returncode == 0, f"README tour failed:\n{result.stderr}"

    shown = re.findall(r"^# -> (.*)$", code, re.MULTILINE)
    assert shown, "the README's tour shows no output"
    printed = result.stdout.splitlines()
    for line in shown:
        assert line in printed, f"the README shows\n  {line}\nbut the code printed\n{result.stdout}"


@pytest.mark.slow
@pytest.mark.parametrize("package", OPTIONAL)
def test_readme_integration(package: str, tmp_path: Path) -> None:
    blocks = [b for b in readme_blocks() if needs(b) == package]
    assert blocks, f"the README has no {package} example"
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    for i, block in enumerate(blocks):  # each block is complete on its own
        script = tmp_path / f"readme_{package}_{i}.py"
        script.write_text(block, encoding="utf-8")
        result = run_python(script)
        assert result.returncode == 0, f"README {package} example {i} failed:\n{result.stderr}"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the README's Quick start test command (its last line)."""
    quick_start = re.search(r"## Quick start.*?```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert quick_start, "README.md has no Quick start shell block"
    commands = quick_start[1].strip().splitlines()
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands[1]
