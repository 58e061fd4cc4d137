"""The one progress display of the CLI: a bar by records, on stderr, for a person watching.

Drawn only when stderr is an interactive terminal, so pipes, files and `--json` consumers
never see control sequences. Commands hand `callback` to whatever walks the records; it is None
when nothing is drawn, so a walk without a watcher pays nothing per record.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from eventlog import CheckpointMismatchError, CorruptLogError, EventLog
from service.layout import DataDir
from service.state_store import snapshot_store
from tools.output import errors

STEP = 4096
"""Records between two updates of the bar: rich's update takes a lock and some arithmetic, a
few microseconds; a fold costs about 3. The bar redraws 10 times a second anyway."""


class RecordProgress:
    """`with RecordProgress("verifying", total=last_seq) as bar: walk(on_record=bar.callback)`.

    Positions are seqs: a walk that starts at a snapshot's seq starts the bar there. `total`
    may be None when the end is unknown (a damaged tail): the bar then pulses and counts.
    """

    def __init__(self, description: str, total: int | None) -> None:
        self.enabled = self.watched()
        self._progress = Progress(
            TextColumn(description),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
            redirect_stdout=False,  # rich would print stdout above the bar, on stderr
            redirect_stderr=False,
            disable=not self.enabled,
        )
        self._task: TaskID = self._progress.add_task(description, total=total)
        self._next = 0
        self._last = 0

    @staticmethod
    def watched() -> bool:
        """Whether a bar would be drawn: worth paying for a total that costs a scan."""
        return errors.is_interactive

    @property
    def callback(self) -> Callable[[int], None] | None:
        return self.at if self.enabled else None

    def at(self, seq: int) -> None:
        """The walk has reached `seq`."""
        self._last = seq
        if seq >= self._next:
            self._next = seq + STEP
            self._progress.update(self._task, completed=seq)

    def __enter__(self) -> RecordProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.update(self._task, completed=self._last)
        self._progress.stop()


def log_end(data_dir: DataDir) -> int | None:
    """The log's last seq, as a bar's end; None when no terminal watches (nothing to pay for)
    or when the newest segment is damaged (the bar then counts without an end).

    Finding it scans the newest segment: from the newest snapshot's checkpoint when there is
    one (the events since that snapshot), else from the segment's start, which on a log
    without snapshots costs about as much as a third of `verify`.
    """
    if not RecordProgress.watched():
        return None
    newest = snapshot_store(data_dir).latest()
    try:
        if newest is not None and newest.checkpoint is not None:
            try:
                return EventLog.open_readonly(data_dir.log, checkpoint=newest.checkpoint).last_seq
            except CheckpointMismatchError:
                pass  # a snapshot of another history: scan from the start
        return EventLog.open_readonly(data_dir.log).last_seq
    except CorruptLogError:
        return None
