"""Power cuts, simulated: a real run of the engine is recorded through its filesystem seam, and
the states a power cut could leave at many points of it are built (tests/eventlog/powercut/
crash.py has the model) and opened with the real engine. Every one must open with every
acknowledged record and nothing that was never written; none may be refused, since in none of
them is an acknowledged byte damaged.

SIGKILL (tests/eventlog/test_crash.py) never loses page-cache data, so it cannot tell a missing
fsync from a present one; these states can, and the tests below prove it with writers that
are deliberately broken. REWIND_POWERCUT_STATES sets how many states (default 1200);
REWIND_POWERCUT_SEED picks other ones.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import EventLog, LogFailedError
from tests.eventlog.powercut.check import SCRATCH, check_run
from tests.eventlog.powercut.crash import durable_state
from tests.eventlog.powercut.recorder import (
    NoDatasync,
    NoDirSyncAfterNewSegment,
    NoSyncBeforeJudging,
    RecordingFS,
)
from tests.eventlog.powercut.workload import Run, record

STATES = int(os.environ.get("REWIND_POWERCUT_STATES", "1200"))
SEED = int(os.environ.get("REWIND_POWERCUT_SEED", "2026"))
MUTANT_STATES = 400


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def recorded() -> Iterator[Run]:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as directory:
        yield record(Path(directory) / "run")


def test_the_workload_goes_through_everything(recorded: Run) -> None:
    facts = recorded.facts
    assert facts["segments"] >= 10, "rotations"
    assert facts["snapshots"] == 1
    assert facts["torn_bytes_cut"] > 0, "the reopen cut a torn write"
    assert facts["failed_appends"] > 0, "an fdatasync failed"
    assert facts["acked"] > 1000


def test_every_power_cut_state_opens_with_every_acknowledged_record(recorded: Run) -> None:
    summary = check_run(recorded, STATES, SEED)
    print(
        f"{summary.states} power-cut states from {len(recorded.trace)} recorded operations "
        f"checked in {summary.seconds:.1f}s; {summary.cut} cut a torn write, "
        f"{summary.from_snapshot} opened at a snapshot's checkpoint"
    )
    assert summary.states == STATES
    assert not summary.problems, "\n".join(summary.problems[:10])
    assert summary.cut > 0 and summary.from_snapshot > 0, "the states exercise the repair paths"


@pytest.mark.parametrize("mutant", [NoDatasync, NoDirSyncAfterNewSegment])
def test_the_checker_catches_a_broken_writer(mutant: type[RecordingFS], scratch: Path) -> None:
    """The deliberately broken variants: a writer whose fdatasync does nothing, and one that
    skips the directory fsync after creating a segment. Both acknowledge records a power cut
    can take back; the same states, checked the same way, must show it."""
    run = record(scratch / "run", mutant)
    summary = check_run(run, MUTANT_STATES, SEED)
    lost = [p for p in summary.problems if "acknowledged records lost" in p]
    print(f"{mutant.__name__}: {len(lost)} of {summary.states} states lost acknowledged records")
    assert lost, f"{mutant.__name__} was not caught"


def _fail_a_batch(log_dir: Path, fs: RecordingFS) -> None:
    """Three durable appends, then a group whose fdatasync fails with EIO: its bytes are in the
    page cache only, and the log is closed without ever syncing them."""

    async def go() -> None:
        with EventLog.open(log_dir, fs=fs) as log:
            for i in range(3):
                await log.append(b"durable %d" % i)
            fs.fail_datasync_after = 0
            with pytest.raises(LogFailedError):
                await log.append_many([b"outcome", b"unknown"])
        fs.fail_datasync_after = None

    asyncio.run(go())


@pytest.mark.parametrize("opener", ["writer", "read-only"])
@pytest.mark.parametrize("fs_class", [RecordingFS, NoSyncBeforeJudging])
def test_open_makes_durable_what_it_reports(
    scratch: Path, opener: str, fs_class: type[RecordingFS]
) -> None:
    """Regression (defect 4): after an append failed with EIO, the next open reported its
    records (read back from the page cache) in `last_seq` and the checkpoint, which a snapshot
    could then store. Open now makes the newest segment durable first: a power cut right after
    it keeps everything it reported. The broken variant (that fsync skipped) must lose them."""
    root = scratch / "run"
    root.mkdir()
    fs = fs_class(root)
    log_dir = root / "log"
    _fail_a_batch(log_dir, fs)
    if opener == "writer":
        with EventLog.open(log_dir, fs=fs) as log:
            reported = log.last_seq
            assert log.checkpoint is not None and log.checkpoint.seq == reported
    else:
        with EventLog.open_readonly(log_dir, fs=fs) as log:
            reported = log.last_seq
    assert reported == 5, "the failed group reached the page cache whole"
    state = durable_state(fs.trace, len(fs.trace))
    state.materialize(scratch / "after")
    with EventLog.open_readonly(scratch / "after" / "log") as log:
        survived = log.last_seq
    if fs_class is RecordingFS:
        assert survived == reported
    else:
        assert survived == 3, "the broken variant must lose what it reported"
