"""Counters the server keeps in memory and serves at /metrics in Prometheus' text format.

Everything that describes the jobs themselves (counts by status, queue depth, lock waits) is
read from the state at scrape time; only what the state cannot know (how long commits and
fsyncs take) is counted here, and is lost on restart like any process metric.
"""

from __future__ import annotations

from typing import Final

from eventlog import LatencyHistogram

Labels = tuple[tuple[str, str], ...]
Gauges = dict[str, tuple[str, dict[Labels, float]]]
"""name -> (help text, {labels: value}), read from the state at scrape time."""

COMMIT_BUCKETS: Final = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.events = 0
        self.commits = LatencyHistogram(COMMIT_BUCKETS)

    def observe_commit(self, seconds: float, events: int) -> None:
        """One command's events became durable ``seconds`` after they were submitted."""
        self.events += events
        self.commits.observe(seconds)

    def render(self, gauges: Gauges, fsyncs: LatencyHistogram) -> str:
        """Prometheus text: this process's counters, the log's fsync latency, and ``gauges``."""
        lines = [
            "# HELP rewind_commits_total Commands whose events were made durable.",
            "# TYPE rewind_commits_total counter",
            f"rewind_commits_total {self.commits.count}",
            "# HELP rewind_events_appended_total Events appended to the log by this process.",
            "# TYPE rewind_events_appended_total counter",
            f"rewind_events_appended_total {self.events}",
            *self.commits.prometheus(
                "rewind_commit_seconds",
                "Time from submitting a command's events to their fsync (group commit: "
                "includes waiting for the batch).",
            ),
            *fsyncs.prometheus("rewind_fsync_seconds", "Time each write batch's fdatasync took."),
        ]
        for name, (help_text, samples) in gauges.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples.items():
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n"
