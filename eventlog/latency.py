"""A cumulative latency histogram, cheap enough for the writer thread's hot path.

Plain int increments under the GIL: a reader (the server's /metrics) may see one observation
half counted, never a lost one.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

SYNC_BUCKETS: Final = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0)
"""Seconds; fdatasync of a batch on an SSD takes ~0.1-1 ms, a struggling disk far more."""


class LatencyHistogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def prometheus(self, name: str, help_text: str) -> list[str]:
        """The histogram in Prometheus' text format (cumulative buckets)."""
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip(self.bounds, self.buckets, strict=False):
            running += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total}")
        lines.append(f"{name}_count {self.count}")
        return lines
