"""Counters the server keeps in memory and serves at /metrics in Prometheus' text format.

Everything that describes the jobs themselves (counts by status, queue depth, lock waits) is
read from the state at scrape time; only what the state cannot know (how long commits take)
is counted here, and is lost on restart like any process metric.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

Labels = tuple[tuple[str, str], ...]
Gauges = dict[str, tuple[str, dict[Labels, float]]]
"""name -> (help text, {labels: value}), read from the state at scrape time."""

COMMIT_BUCKETS: Final = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.commits = 0
        self.events = 0
        self.commit_seconds_sum = 0.0
        self.commit_buckets = [0] * (len(COMMIT_BUCKETS) + 1)

    def observe_commit(self, seconds: float, events: int) -> None:
        """One command's events became durable ``seconds`` after they were submitted."""
        self.commits += 1
        self.events += events
        self.commit_seconds_sum += seconds
        self.commit_buckets[bisect_left(COMMIT_BUCKETS, seconds)] += 1

    def render(
        self, gauges: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]
    ) -> str:
        """Prometheus text: this process's counters plus ``gauges`` read from the state
        (name -> (help, {labels: value}))."""
        lines = [
            "# HELP rewind_commits_total Commands whose events were made durable.",
            "# TYPE rewind_commits_total counter",
            f"rewind_commits_total {self.commits}",
            "# HELP rewind_events_appended_total Events appended to the log by this process.",
            "# TYPE rewind_events_appended_total counter",
            f"rewind_events_appended_total {self.events}",
            "# HELP rewind_commit_seconds Time from submitting a command's events to their "
            "fsync (group commit: includes waiting for the batch).",
            "# TYPE rewind_commit_seconds histogram",
        ]
        running = 0
        for bound, count in zip(COMMIT_BUCKETS, self.commit_buckets, strict=False):
            running += count
            lines.append(f'rewind_commit_seconds_bucket{{le="{bound}"}} {running}')
        lines.append(f'rewind_commit_seconds_bucket{{le="+Inf"}} {self.commits}')
        lines.append(f"rewind_commit_seconds_sum {self.commit_seconds_sum}")
        lines.append(f"rewind_commit_seconds_count {self.commits}")
        for name, (help_text, samples) in gauges.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples.items():
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n"
