"""How a case is measured: warmup, rounds interleaved across implementations, medians, peak memory.

For one case (a shape and an algorithm), every runner, the floors included, is built first
(allocation and compilation, timed separately by the runner), warmed up, and calibrated: a round
is as many steps as make it last `min_round_s` (so that timer resolution and per-round overheads do
not matter), and a round's time divided by its steps is one sample. Rounds are then *interleaved*:
each round runs every runner once, in a shuffled order, until `case_budget_s` is spent (at least
`min_rounds`, at most `max_rounds`). A machine whose load changes during the case slows all
implementations alike, so their ratios stay meaningful even when absolute times do not.

Python's garbage collector is off during the rounds (and `__main__` freezes the objects that exist
after the imports out of its reach, `gc.freeze()`, so that the collection before a case takes
milliseconds rather than a second).

Peak memory (`peak_rss_extra_bytes`) is measured in each runner's first timed round, by a probe
outside the timed interval: the growth of the process's resident set (Linux VmHWM, reset through
/proc/self/clear_refs) above its size just before the round. It counts the new pages a step
touches (temporaries, undonated outputs), not the params, grads and state that already exist.
Before the probe the resident set is left to settle (JAX frees buffers on a background thread),
and glibc's `malloc_trim(0)` returns the pages of freed blocks to the system, so that a temporary
placed in memory that malloc had kept from earlier work still counts; an allocator with its own
cache (none on the CPU paths measured here) would hide its reuse. It is None where Linux's
counters are unavailable, and for runners on an accelerator (whose memory is not in the resident set).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Config:
    warmup_steps: int  # untimed steps after building a runner (its first step, torch's state allocation ...),
    # then one more untimed step that chooses the number of steps in a round
    min_rounds: int
    max_rounds: int
    case_budget_s: float  # timed rounds stop once this much time is spent (and min_rounds are done)
    min_round_s: float  # a round takes enough steps to last at least this long
    max_steps_per_round: int


FULL = Config(warmup_steps=1, min_rounds=3, max_rounds=50, case_budget_s=3.0, min_round_s=0.05, max_steps_per_round=50)
QUICK = Config(warmup_steps=1, min_rounds=3, max_rounds=3, case_budget_s=0.0, min_round_s=0.0, max_steps_per_round=1)


@dataclass(frozen=True)
class Timing:
    """Seconds per step: the median over rounds, its quartiles and extremes."""

    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    rounds: int
    steps_per_round: int

    @classmethod
    def of(cls, samples: list[float], steps_per_round: int) -> Timing:
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        return cls(float(median), float(q1), float(q3), min(samples), max(samples), len(samples), steps_per_round)


def run_case(runners: list[Any], config: Config, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Times warmed-up runners in interleaved rounds: impl -> {timing fields, peak_rss_extra_bytes}.

    The first round also measures each host runner's peak memory (outside the timed interval).
    """
    steps = {r.impl: _steps_per_round(r, config) for r in runners}
    samples: dict[str, list[float]] = {r.impl: [] for r in runners}
    memory: dict[str, int | None] = {r.impl: None for r in runners}
    order = list(runners)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for done in range(config.max_rounds):
            if done >= config.min_rounds and time.perf_counter() - start >= config.case_budget_s:
                break
            rng.shuffle(order)
            for runner in order:
                with ResidentPeak(enabled=done == 0 and runner.on_host) as peak:
                    t0 = time.perf_counter()
                    runner.run(steps[runner.impl])
                    samples[runner.impl].append((time.perf_counter() - t0) / steps[runner.impl])
                memory[runner.impl] = memory[runner.impl] if peak.growth is None else peak.growth
    finally:
        gc.enable()
    return {
        impl: {**vars(Timing.of(samples[impl], steps[impl])), "peak_rss_extra_bytes": memory[impl]} for impl in samples
    }


def _steps_per_round(runner: Any, config: Config) -> int:
    t0 = time.perf_counter()
    runner.run(1)
    seconds = time.perf_counter() - t0
    wanted = math.ceil(config.min_round_s / seconds) if seconds > 0 else config.max_steps_per_round
    return max(1, min(config.max_steps_per_round, wanted))


# ---------------------------------------------------------------------------------------------------
# Peak memory from Linux's resident-set counters

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel writes kB
    raise KeyError(field)


def _settle(at_least_s: float = 0.02, at_most_s: float = 0.5) -> None:
    """Waits until the resident set stops shrinking. JAX's runtime frees buffers on a background
    thread: a free of an earlier runner's buffers still in flight during the probe would offset the
    step's own allocations (seen: 40 MB instead of 120 MB for an undonated Adam step on 10M params)."""
    with contextlib.suppress(OSError, KeyError):
        time.sleep(at_least_s)
        deadline = time.perf_counter() + at_most_s
        size = _status_bytes("VmRSS")
        while time.perf_counter() < deadline:
            time.sleep(0.01)
            size, previous = _status_bytes("VmRSS"), size
            if size >= previous:
                return


def _release_free_memory() -> None:
    """Returns the pages that malloc keeps from freed blocks to the system (glibc's malloc_trim), so
    that a block the step allocates in them counts as new resident memory; a no-op off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class ResidentPeak:
    """`with ResidentPeak() as peak: ...`, then `peak.growth`: how far the resident set rose, inside the
    block, above its level at entry (bytes; None when disabled or where Linux's counters are missing)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.growth: int | None = None
        self._before: int | None = None

    def __enter__(self) -> ResidentPeak:
        if self.enabled:
            _settle()
            _release_free_memory()
            try:
                _CLEAR_REFS.write_text("5")  # resets VmHWM to the current VmRSS (Linux >= 4.0)
                self._before = _status_bytes("VmRSS")
            except (OSError, KeyError):
                self._before = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._before is not None:
            self.growth = max(0, _status_bytes("VmHWM") - self._before)
