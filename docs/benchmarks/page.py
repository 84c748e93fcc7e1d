"""The benchmarks page of the site, from one JSON file written by `python -m benchmarks`.

    python docs/benchmarks/page.py benchmarks/results/<host>-<date>.json

copies that file to docs/benchmarks/results.json (the snapshot the site shows; commit it) and
writes the page. Every docs build writes the page again from the snapshot (`write`): the Markdown
page and its two charts are generated files, which git ignores.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SNAPSHOT = HERE / "results.json"

SHAPE_NOTES = {  # what a shape stands for, as benchmarks/README.md says
    "leaf-1M": "one array of 1M float32 (fits in the last-level cache)",
    "leaf-10M": "one array of 10M float32",
    "leaf-50M": "one array of 50M float32",
    "vit-b16": "ViT-B/16: 152 leaves, 86.6M params",
    "1000x64x64": "1000 small leaves: per-leaf overhead",
    "leaf-10M-bf16": "bfloat16 params, float32 state where the library allows it",
}


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value * scale, spec)


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per case: each optimizer implementation's time relative to optax's."""
    impls = [i for i in ("gradtx", "gradtx packed", "torch foreach", "torch fused")
             if any(r["impl"] == i and r["ratio_to_optax"] for r in rows)]  # fmt: skip
    cases = list(dict.fromkeys((r["shape"], r["optimizer"]) for r in rows))
    body = []
    for shape, optimizer in cases:
        case = {r["impl"]: r for r in rows if (r["shape"], r["optimizer"]) == (shape, optimizer)}
        optax = case.get("optax", {}).get("median_s")
        if not optax:
            continue
        cells = [_fmt(case[i]["ratio_to_optax"], ".2f") if i in case else "" for i in impls]
        body.append([f"`{shape}`", optimizer, _fmt(optax, ".2f", 1e3), *cells])
    return _table(["shape", "optimizer", "optax ms", *impls], body,
                  "ll" + "r" * (1 + len(impls)))  # fmt: skip


def details(rows: list[dict[str, Any]], shape: str) -> list[str]:
    """Every row of one shape: median, spread, ratios, state, compile time, memory."""
    body = []
    for r in rows:
        if r["shape"] != shape:
            continue
        if r["status"] != "ok":
            body.append([r["optimizer"], r["impl"], r["status"], *["-"] * 7])
            continue
        iqr = (r["q3_s"] - r["q1_s"]) if r["q3_s"] is not None else None
        body.append([
            r["optimizer"], r["impl"], _fmt(r["median_s"], ".3f", 1e3), _fmt(iqr, ".3f", 1e3),
            _fmt(r["ratio_to_floor"], ".2f"), _fmt(r["ratio_to_optax"], ".2f"),
            _fmt(r["state_bytes_per_param"], ".2f"), _fmt(r["compile_s"], ".2f"),
            _fmt(r["first_step_s"], ".2f"), _fmt(r["peak_rss_extra_bytes"], ".1f", 1e-6),
        ])  # fmt: skip
    header = ["optimizer", "impl", "median ms", "IQR ms", "x floor", "x optax", "state B/param", "compile s",
              "1st step s", "peak +MB"]  # fmt: skip
    return _table(header, body, "llrrrrrrrr")


IMPL_ORDER = ("gradtx", "gradtx packed", "optax", "torch foreach", "torch fused", "gradtx undonated",
              "optax undonated", "gradtx eager", "optax eager")  # fmt: skip
CHART_STYLE = "3"  # bump when the drawing changes, so that a checkout's cached charts are redrawn


def optax_chart(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """One panel per shape: per optimizer, each implementation's time relative to optax's (log scale)."""
    ratio_chart(path, rows, "ratio_to_optax", ("gradtx", "gradtx packed", "torch foreach", "torch fused"),
                f"time of one step / optax's time (below the line: faster than optax)\n{title}")  # fmt: skip


def floor_chart(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """One panel per shape: each implementation's time relative to the memory-bandwidth floor."""
    ratio_chart(path, rows, "ratio_to_floor", IMPL_ORDER,
                f"time of one step / time at the floor bandwidth (1 = at the floor)\n{title}")  # fmt: skip


def ratio_chart(path: Path, rows: list[dict[str, Any]], key: str, order: tuple[str, ...], suptitle: str) -> None:
    """Bars of `key` per optimizer and implementation, one log-scale panel per shape, sized for the
    page: drawn 8 inches wide, it is shown near its own size in the article column, so its text
    reads at the size of the page's small print (click it for the full image)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    present = {r["impl"] for r in rows if r.get(key)}
    impls = [i for i in order if i in present]  # the optimizers' implementations, not the floor programs
    palette = ("#1f77b4", "#2ca02c", "#7f7f7f", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")
    colors = dict(zip(IMPL_ORDER, palette, strict=True))  # one colour an implementation, in both charts
    shapes = list(dict.fromkeys(r["shape"] for r in rows if r.get(key)))
    columns = 2
    lines = math.ceil(len(shapes) / columns)
    legend_rows = math.ceil(len(impls) / 5)
    fig = Figure(figsize=(8, 2.9 * lines + 0.75 + 0.25 * legend_rows))
    axes = fig.subplots(lines, columns, squeeze=False)
    width = 0.8 / len(impls)
    for ax, shape in zip(axes.flat, shapes, strict=False):
        case = [r for r in rows if r["shape"] == shape]
        optimizers = list(dict.fromkeys(r["optimizer"] for r in case))
        for j, impl in enumerate(impls):
            points = [(i, r[key]) for i, o in enumerate(optimizers) for r in case
                      if r["optimizer"] == o and r["impl"] == impl and r.get(key)]  # fmt: skip
            if points:
                x, y = zip(*points, strict=True)
                ax.bar([xi + (j - (len(impls) - 1) / 2) * width for xi in x], y, width, color=colors[impl], label=impl)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        labels = [o.replace("clip+adamw+schedule", "clip+\nadamw+\nschedule").replace("sgd-momentum", "sgd-\nmomentum")
                  for o in optimizers]  # fmt: skip
        ax.set_xticks(range(len(optimizers)), labels, fontsize=8)
        ax.tick_params(axis="y", labelsize=8.5)
        leaves = case[0]["n_leaves"]
        noun = "leaf" if leaves == 1 else "leaves"
        ax.set_title(f"{shape} ({case[0]['n_params']:,} params, {leaves} {noun})", fontsize=9.5)
    for ax in axes.flat[len(shapes) :]:
        ax.axis("off")
    for ax in axes.flat[: len(shapes)]:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize=7.5)
    handles = [Patch(color=colors[impl], label=impl) for impl in impls]
    height = fig.get_figheight()  # inches: the title's two lines, then the legend's rows, then the panels
    fig.suptitle(suptitle, fontsize=10.5, y=1 - 0.05 / height, va="top")
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.5 / height), ncol=min(len(impls), 5),
               frameon=False, fontsize=9)  # fmt: skip
    top = 1 - (0.45 + 0.2 * legend_rows) / height
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=130)


def render(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str]:
    meta, rows = results["meta"], results["results"]
    machine = meta.get("machine", {})
    when = str(meta.get("date", ""))[:16].replace("T", " ")
    title = f"{machine.get('cpu', '')}, {machine.get('cpu_count', '?')} cores, {when}"

    def load(key: str) -> str:
        values = meta.get(key) or []
        return " / ".join(f"{v:.1f}" for v in values) if values else "-"

    lines = [
        "% This page is generated by docs/benchmarks/page.py from docs/benchmarks/results.json.",
        "",
        "# Benchmarks",
        "",
        "One optimizer step of gradtx against optax, torch.optim and the machine's memory-bandwidth floor,",
        "all measured in one process and one run (`python -m benchmarks`; the method, the columns and a log",
        "of what was tried are in `benchmarks/README.md`). A step is memory-bound, so the question is how",
        "close each implementation comes to moving its bytes at the best bandwidth this machine reached.",
        "Compare ratios within this run, not absolute times across runs.",
        "",
        "## This run",
        "",
        *[
            f"- **{key}**: {value}"
            for key, value in [
                ["date", f"{when} UTC"],
                ["command", f"`{meta.get('command', 'python -m benchmarks')}`"],
                [
                    "machine",
                    f"{machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, {machine.get('platform', '')}",
                ],
                [
                    "backends",
                    f"JAX {machine.get('jax_backend', '?')}, torch {machine.get('torch_device', '?')} "
                    f"({machine.get('torch_threads', '?')} threads)",
                ],
                [
                    "load average (1, 5, 15 min)",
                    f"{load('load_average_start')} at the start, {load('load_average_end')} at the end",
                ],
                ["versions", ", ".join(f"{k} {v.split(' ')[0]}" for k, v in meta.get("versions", {}).items())],
                ["wall time", _fmt(meta.get("wall_s"), ".0f") + " s"],
            ]
        ],
        "",
        "The machine was shared with other jobs while this ran (see the load average): that slows every",
        "implementation in a case alike, since their rounds are interleaved, but it widens the spread",
        "(the IQR columns below).",
        "",
        "## Time relative to optax",
        "",
        "Each implementation's median step time divided by optax's (jitted, donated) in the same case:",
        "below 1 is faster than optax. `gradtx packed` runs the same step on params packed by",
        "`gradtx.pack` (one buffer per dtype; see the fast steps guide).",
        "",
        "```{image} chart-optax.png",
        ":alt: time of one step relative to optax, per case",
        ":target: ../_images/chart-optax.png",
        ":width: 100%",
        "```",
        "",
        *summary(rows),
        "## Time relative to the memory-bandwidth floor",
        "",
        "1 means the step ran at the best bandwidth the floor programs reached in that case.",
        "",
        "```{image} chart-floor.png",
        ":alt: time of one step relative to the memory-bandwidth floor, per case",
        ":target: ../_images/chart-floor.png",
        ":width: 100%",
        "```",
        "",
        "## Every row",
        "",
    ]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        first = next(r for r in rows if r["shape"] == shape)
        note = SHAPE_NOTES.get(shape, "")
        lines += [f"### `{shape}`", "",
                  f"{first['n_params']:,} {first['param_dtype']} params in {first['n_leaves']} leaves"
                  + (f": {note}." if note else "."), ""]  # fmt: skip
        lines += details(rows, shape)
    return "\n".join(lines), rows, title


def write(snapshot: Path, folder: Path, write_if_changed: Callable[[Path, str, set[Path]], None]) -> None:
    """The page and its charts, into `folder`, from `snapshot`."""
    written: set[Path] = set()
    if not snapshot.exists():
        text = "# Benchmarks\n\nNo results yet: run `python -m benchmarks`, then `python docs/benchmarks/page.py`.\n"
        write_if_changed(folder / "index.md", text, written)
        return
    results = json.loads(snapshot.read_text(encoding="utf-8"))
    text, rows, title = render(results)
    write_if_changed(folder / "index.md", text + "\n", written)
    # Charts only when the snapshot changed: they are slow to draw and Sphinx copies them as they are.
    stamp = folder / ".charts-of"
    key = f"{CHART_STYLE}:{snapshot.stat().st_mtime_ns}:{snapshot.stat().st_size}"
    if not (stamp.exists() and stamp.read_text() == key and (folder / "chart-floor.png").exists()):
        for name, draw in (("chart-floor.png", floor_chart), ("chart-optax.png", optax_chart)):
            partial = folder / f".{name}.{os.getpid()}.partial.png"  # replaced in one step: see write_if_changed
            draw(partial, rows, title)
            os.replace(partial, folder / name)
        stamp.write_text(key)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    source = Path(argv[0])
    results = json.loads(source.read_text(encoding="utf-8"))
    if not results.get("results") or "meta" not in results:
        raise SystemExit(f"{source}: not a results file of python -m benchmarks")
    if any(r.get("n_params", 0) < 1_000_000 for r in results["results"]):
        print(f"note: {source} looks like a --quick run; the page will say so by its sizes")
    shutil.copyfile(source, SNAPSHOT)

    def write_file(path: Path, text: str, written: set[Path]) -> None:
        path.write_text(text, encoding="utf-8")

    write(SNAPSHOT, HERE, write_file)
    print(f"wrote {SNAPSHOT} and {HERE / 'index.md'}; commit results.json")


if __name__ == "__main__":
    main(sys.argv[1:])
