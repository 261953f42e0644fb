"""Repeated, interleaved timing for the benchmarks: every figure with its spread.

``interleaved({"ours": f, "baseline": g}, repeats=3)`` runs each function once per round,
``repeats`` rounds, rotating the order every round, so that a load that drifts during the
run (the machine is shared) falls on all of them alike. Each run records wall and CPU
seconds (this process, its threads and its reaped children). ``spread`` prints
min / median / max; ratios are taken between medians.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and of its reaped children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


@dataclass
class Runs:
    """The repeated measurements of one contender."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    result: Any = None  # what the last run returned

    def median(self, what: str = "wall") -> float:
        return statistics.median(getattr(self, what))


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 3) -> dict[str, Runs]:
    """Run every function ``repeats`` times, one of each per round, the order rotating."""
    names = list(fns)
    runs = {n: Runs() for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = cpu_seconds(), time.perf_counter()
            runs[name].result = fns[name]()
            runs[name].wall.append(time.perf_counter() - t0)
            runs[name].cpu.append(cpu_seconds() - c0)
    return runs


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """min / median / max."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def rates(amount: float, seconds: list[float]) -> list[float]:
    """Throughputs (amount per second) of repeated runs."""
    return [amount / s for s in seconds]
