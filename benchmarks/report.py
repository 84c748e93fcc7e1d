"""Derived columns, the printed tables, the JSON file and the chart.

One row per (case, implementation). Derived columns, all from numbers measured in the same case:

    gbps            moved_bytes / median_s / 1e9
    floor_gbps      the best GB/s of the floor runners in this case
    ratio_to_floor  median_s / (moved_bytes / floor bandwidth): 1 is at the floor, 2 takes twice as long
    ratio_to_optax  median_s / optax's median_s (optax donated), for the optimizer rows
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROW_KEYS = (
    "shape", "optimizer", "impl", "kind", "status",
    "n_params", "n_leaves", "param_dtype", "state_dtype", "donated",
    "median_s", "q1_s", "q3_s", "min_s", "max_s", "rounds", "steps_per_round",
    "moved_bytes", "gbps", "floor_gbps", "ratio_to_floor", "ratio_to_optax",
    "state_bytes", "state_bytes_per_param", "lower_s", "compile_s", "first_step_s",
    "peak_rss_extra_bytes", "xla_temp_bytes", "xla_new_output_bytes",
)  # fmt: skip


def complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds the derived columns to one case's rows; every row gets every key (None where it has none)."""
    rows = [{key: row.get(key) for key in ROW_KEYS} for row in rows]
    for row in rows:
        if row["median_s"]:
            row["gbps"] = row["moved_bytes"] / row["median_s"] / 1e9
        if row["state_bytes"] is not None:
            row["state_bytes_per_param"] = row["state_bytes"] / row["n_params"]
    floors = [row["gbps"] for row in rows if row["kind"] == "floor" and row["gbps"]]
    medians = {row["impl"]: row["median_s"] for row in rows if row["median_s"]}
    for row in rows:
        if not row["median_s"]:
            continue
        if floors:
            row["floor_gbps"] = max(floors)
            row["ratio_to_floor"] = row["median_s"] * row["floor_gbps"] * 1e9 / row["moved_bytes"]
        # Eager rows against optax's eager step; every other row against optax's donated jitted step.
        optax = medians.get("optax eager" if row["impl"].endswith(" eager") else "optax")
        if optax and row["kind"] == "optimizer":
            row["ratio_to_optax"] = row["median_s"] / optax
    return rows


# ---------------------------------------------------------------------------------------------------
# Text


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, spec)


COLUMNS = (  # (header, key, format, scale)
    ("impl", "impl", "", 1.0),
    ("median ms", "median_s", ".3f", 1e3),
    ("IQR ms", None, ".3f", 1e3),
    ("GB/s", "gbps", ".1f", 1.0),
    ("x floor", "ratio_to_floor", ".2f", 1.0),
    ("x optax", "ratio_to_optax", ".2f", 1.0),
    ("state B/param", "state_bytes_per_param", ".2f", 1.0),
    ("compile s", "compile_s", ".2f", 1.0),
    ("1st step s", "first_step_s", ".2f", 1.0),
    ("peak +MB", "peak_rss_extra_bytes", ".1f", 1e-6),
)


def case_table(rows: list[dict[str, Any]]) -> str:
    """One case: a line per implementation (a skipped one says why)."""
    first = rows[0]
    title = (
        f"{first['shape']} / {first['optimizer']}: {first['n_params']:,} {first['param_dtype']} params "
        f"in {first['n_leaves']} leaves"
    )
    lines, notes = [[header for header, *_ in COLUMNS]], [""]
    for row in rows:
        if row["status"] != "ok":
            lines.append([row["impl"]] + ["-"] * (len(COLUMNS) - 1))
            notes.append(f"  ({row['status']})")
            continue
        iqr = row["q3_s"] - row["q1_s"]
        lines.append(
            [row["impl"]] + [_fmt(row[key] if key else iqr, spec, scale) for _, key, spec, scale in COLUMNS[1:]]
        )
        notes.append("")
    return "\n".join([title] + [line + note for line, note in zip(_align(lines), notes, strict=True)])


def _align(lines: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first `left` to the left, numbers to the right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        "  "
        + "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in lines
    ]


def summary_table(rows: Iterable[dict[str, Any]]) -> str:
    """Every case on one line: the floor's GB/s and each optimizer implementation's ratio to the floor."""
    rows = list(rows)
    impls = list(dict.fromkeys(row["impl"] for row in rows if row["kind"] == "optimizer"))
    cases = list(dict.fromkeys((row["shape"], row["optimizer"]) for row in rows))
    lines = [["shape", "optimizer", "floor GB/s", *impls, "gradtx/optax"]]
    for shape, optimizer in cases:
        case = {row["impl"]: row for row in rows if (row["shape"], row["optimizer"]) == (shape, optimizer)}
        floor = next((row["floor_gbps"] for row in case.values() if row["floor_gbps"]), None)
        cells = [_fmt(case[impl]["ratio_to_floor"], ".2f") if impl in case else "" for impl in impls]
        gradtx = case["gradtx"]["ratio_to_optax"] if "gradtx" in case else None
        lines.append([shape, optimizer, _fmt(floor, ".1f"), *cells, _fmt(gradtx, ".2f")])
    header = "time / floor time for each implementation (1 = at the floor); gradtx/optax = time ratio"
    return "\n".join([header, *_align(lines, left=2)])


# ---------------------------------------------------------------------------------------------------
# Files


def write_json(path: Path, meta: dict[str, Any], method: dict[str, str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows
    ]
    path.write_text(json.dumps({"meta": meta, "method": method, "results": clean}, indent=1) + "\n")


def write_chart(path: Path, rows: list[dict[str, Any]], title: str) -> bool:
    """One panel per shape: a bar per (optimizer, implementation), its height the ratio to the floor.

    Returns False, writing nothing, when no row has a ratio to the floor (every floor left out)."""
    rows = [row for row in rows if row["kind"] == "optimizer" and row["ratio_to_floor"]]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    shapes = list(dict.fromkeys(row["shape"] for row in rows))
    impls = list(dict.fromkeys(row["impl"] for row in rows))
    colors = {impl: plt.get_cmap("tab10")(i % 10) for i, impl in enumerate(impls)}
    columns = 2
    lines = math.ceil(len(shapes) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(7 * columns, 3.2 * lines), squeeze=False)
    width = 0.8 / max(1, len(impls))
    for ax, shape in zip(axes.flat, shapes, strict=False):
        case_rows = [row for row in rows if row["shape"] == shape]
        optimizers = list(dict.fromkeys(row["optimizer"] for row in case_rows))
        for j, impl in enumerate(impls):
            points = [(i, row["ratio_to_floor"]) for i, o in enumerate(optimizers) for row in case_rows
                      if row["optimizer"] == o and row["impl"] == impl]  # fmt: skip
            if points:
                x, y = zip(*points, strict=True)
                ax.bar([xi + (j - (len(impls) - 1) / 2) * width for xi in x], y, width, color=colors[impl], label=impl)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(optimizers)), optimizers, fontsize=8)
        ax.set_title(f"{shape} ({case_rows[0]['n_params']:,} params)", fontsize=10)
        ax.set_ylabel("time / floor time")
    for ax in axes.flat[len(shapes) :]:
        ax.axis("off")
    handles = [Patch(color=colors[impl], label=impl) for impl in impls]
    fig.suptitle(f"time of one step / time at the floor bandwidth (1 = at the floor)\n{title}", fontsize=10)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(impls), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
