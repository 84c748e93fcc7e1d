"""python -m benchmarks: gradtx against optax, torch.optim and the memory-bandwidth floor, in one run.

An optimizer step is memory-bound: it streams params, grads and state through memory and does a
few flops per element. This command times one step of each optimizer in each library on each
parameter tree, next to the fastest streaming programs the machine runs (the floor), all in one
process, and writes a JSON file and a chart. See benchmarks/README.md for the method and columns.

    python -m benchmarks                       # every case: about 8 minutes on a busy 2-core CPU
    python -m benchmarks --quick               # tiny sizes, 3 rounds: checks that everything runs
    python -m benchmarks --shapes leaf-10M --optimizers adam,adamw --impls "gradtx,optax,jax triad"

Writes benchmarks/results/<host>-<date>.json (<host>-<date>-quick.json with --quick) and the chart
of ratios to the floor beside it (.png).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import os
import platform
import random
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.cases import ALGORITHMS, FULL_SHAPES, QUICK_SHAPES, Algorithm, Shape, cases
from benchmarks.measure import FULL, QUICK, Config, run_case
from benchmarks.runners import (
    EAGER_IMPLS,
    FLOOR_IMPLS,
    OPTIMIZER_IMPLS,
    UNDONATED_IMPLS,
    Unsupported,
    floor_runners,
    optimizer_runners,
)

ALL_IMPLS = OPTIMIZER_IMPLS + UNDONATED_IMPLS + EAGER_IMPLS + FLOOR_IMPLS
DEFAULT_OUT = Path(__file__).resolve().parent / "results"

METHOD = {
    "median_s": "seconds per step: the median over timed rounds (a round runs steps_per_round steps; warmup "
    "and compilation excluded); q1_s/q3_s are its quartiles, min_s/max_s its extremes",
    "interleaving": "the rounds of a case alternate between all its implementations, floors included, in a "
    "shuffled order, so that a change of machine load affects them alike",
    "donated": "the JAX step (params, state, grads) -> (params, state) is jitted with params and state "
    "donated; the 'undonated' rows are the same step without donation",
    "moved_bytes": "the minimum bytes a step must move: params read and written, grads read (twice for "
    "clip_by_global_norm), each optimizer-state array read and written; from the state each library keeps",
    "gbps": "moved_bytes / median_s / 1e9",
    "floor_gbps": "the best GB/s, in this case, of the floors: a donated jitted JAX triad a <- a + s*b "
    "(12 bytes an element), a NumPy copy (8 bytes an element) and a torch in-place triad, each on one "
    "float32 array with as many elements as the case has params",
    "ratio_to_floor": "median_s / (moved_bytes / floor bandwidth): 1 means the step runs at the floor",
    "ratio_to_optax": "median_s / optax's (donated, jitted) median_s in the same case; for the 'eager' rows "
    "(no jax.jit, as a notebook loop runs it) / optax eager's median_s",
    "packed": "'gradtx packed': params and grads packed by gradtx.pack (one contiguous buffer per dtype), so "
    "the optimizer state is one buffer per moment; the same jitted, donated step",
    "first_step_s": "for the 'eager' rows, the first step's wall time: gradtx compiles its update then, optax does not",
    "state_bytes_per_param": "bytes of all optimizer-state leaves / number of params",
    "compile_s": "wall time of jax.jit(step).lower(...) plus .compile(); lower_s is the lowering (tracing) part",
    "peak_rss_extra_bytes": "growth of the process's resident set during one round above its level just before "
    "(Linux VmHWM reset via /proc/self/clear_refs): temporaries and new outputs, not the existing params, "
    "grads and state; None off Linux or for buffers on an accelerator",
    "xla_temp_bytes": "XLA's planned scratch bytes for one step (compiled.memory_analysis())",
    "xla_new_output_bytes": "XLA's planned output bytes that do not reuse a donated input buffer",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"shapes: {', '.join(s.name for s in FULL_SHAPES)}\n"
        f"shapes with --quick: {', '.join(s.name for s in QUICK_SHAPES)}\n"
        f"optimizers: {', '.join(a.name for a in ALGORITHMS)}\n"
        f"impls: {', '.join(ALL_IMPLS)}",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 3 rounds (a check, not a measurement)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder for the JSON and PNG (default {DEFAULT_OUT})"
    )
    parser.add_argument("--shapes", help="comma-separated shape names to run (default: all)")
    parser.add_argument("--optimizers", help="comma-separated optimizer names to run (default: all)")
    parser.add_argument("--impls", help="comma-separated implementations to run (default: all)")
    parser.add_argument("--budget", type=float, help="seconds of timed rounds per case (default: 3, --quick: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the interleaved rounds")
    parser.add_argument(
        "--torch-threads", type=int, help="torch.set_num_threads before the run (default: torch's own choice)"
    )
    parser.add_argument("--torch-device", default=None, help="torch's device (default: cuda if available, else cpu)")
    return parser.parse_args(argv)


def select(items: tuple[Any, ...], names: str | None, what: str) -> tuple[Any, ...]:
    if names is None:
        return items
    wanted = [name.strip() for name in names.split(",")]
    known = [getattr(item, "name", item) for item in items]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(known)}")
    return tuple(item for item, name in zip(items, known, strict=True) if name in wanted)


def default_torch_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------------
# One case


def build(factory: Any, warmup_steps: int) -> Any:
    """The runner, built and warmed up, or the reason it cannot run (a string)."""
    try:
        runner = factory()
    except Unsupported as reason:
        return f"skipped: {reason}"
    runner.run(warmup_steps)
    return runner


def measure_case(
    shape: Shape,
    algorithm: Algorithm,
    floors: dict[str, Any],
    impls: tuple[str, ...],
    config: Config,
    torch_device: str,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Builds the case's optimizer runners, times them with the shape's floors, and returns its rows."""
    factories = optimizer_runners(shape, algorithm, impls, torch_device)
    built = {impl: build(factory, config.warmup_steps) for impl, factory in factories.items()}
    built |= floors
    runners = [r for r in built.values() if not isinstance(r, str)]
    timings = run_case(runners, config, rng)
    rows = []
    for impl, runner in built.items():
        row = {
            "shape": shape.name,
            "optimizer": algorithm.name,
            "impl": impl,
            "kind": "floor" if impl in FLOOR_IMPLS else "optimizer",
            "n_params": shape.n_params,
            "n_leaves": shape.n_leaves,
            "param_dtype": shape.dtype,
            "state_dtype": shape.state_dtype,
        }
        if isinstance(runner, str):
            rows.append({**row, "status": runner})
        else:
            rows.append({**row, "status": "ok", **runner.info(), **timings[impl]})
    for impl in factories:
        if not isinstance(built[impl], str):
            built[impl].close()
    return report.complete(rows)


# ---------------------------------------------------------------------------------------------------
# The run


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("gradtx", "jax", "jaxlib", "optax", "torch", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    import gradtx

    found["gradtx"] = f"{gradtx.__version__} ({Path(gradtx.__file__).parent})"  # the checkout that was measured
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(torch_device: str) -> dict[str, Any]:
    import jax

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "torch_device": torch_device,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch_threads"] = None
    return info


def import_libraries() -> None:
    """Imports what the runners use, then moves every object that exists out of the garbage collector's
    reach (`gc.freeze`): a collection between cases then scans only the objects the run creates."""
    for module in ("jax", "gradtx", "optax", "torch"):
        with contextlib.suppress(ImportError):  # a missing library's runners report themselves skipped
            __import__(module)
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    config = QUICK if args.quick else FULL
    if args.budget is not None:
        config = Config(**{**vars(config), "case_budget_s": args.budget})
    shapes = select(QUICK_SHAPES if args.quick else FULL_SHAPES, args.shapes, "shapes")
    algorithms = select(ALGORITHMS, args.optimizers, "optimizers")
    impls = select(ALL_IMPLS, args.impls, "impls")
    plan = [
        (shape, tuple(a for a in case_algorithms if a in algorithms))
        for shape, case_algorithms in cases(args.quick)
        if shape in shapes
    ]
    import_libraries()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    torch_device = args.torch_device or default_torch_device()
    rng = random.Random(args.seed)

    now = datetime.datetime.now().astimezone()
    meta: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "config": vars(config),
        "versions": versions(),
        "machine": machine(torch_device),
        "load_average_start": os.getloadavg(),
    }
    print(f"gradtx benchmarks ({meta['mode']}): {meta['machine']['cpu']}, {meta['machine']['cpu_count']} cores, "
          f"jax on {meta['machine']['jax_backend']}, torch on {torch_device}, "
          f"load average {meta['load_average_start'][0]:.1f}", flush=True)  # fmt: skip
    if meta["load_average_start"][0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy; absolute times will be noisy, compare ratios within a case", flush=True)

    rows: list[dict[str, Any]] = []
    for shape, shape_algorithms in plan:
        factories = floor_runners(shape.n_params, impls, torch_device)
        floors = {impl: build(factory, config.warmup_steps) for impl, factory in factories.items()}
        for algorithm in shape_algorithms:
            case_rows = measure_case(shape, algorithm, floors, impls, config, torch_device, rng)
            rows += case_rows
            print(f"\n[{time.perf_counter() - started:6.1f} s] " + report.case_table(case_rows), flush=True)
        for floor in floors.values():
            if not isinstance(floor, str):
                floor.close()

    meta["load_average_end"] = os.getloadavg()
    meta["wall_s"] = time.perf_counter() - started
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", meta["machine"]["host"])
    stem = f"{host}-{now:%Y-%m-%d}" + ("-quick" if args.quick else "")
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    report.write_json(json_path, meta, METHOD, rows)
    title = f"{meta['machine']['cpu']}, {meta['machine']['cpu_count']} cores, {now:%Y-%m-%d} ({meta['mode']})"
    charted = report.write_chart(png_path, rows, title)
    print("\n" + report.summary_table(rows))
    written = f"{json_path} and {png_path}" if charted else f"{json_path} (no chart: no ratio to a floor)"
    print(f"\nwrote {written} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
