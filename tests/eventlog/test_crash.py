"""SIGKILL a process with 32 concurrent writers at random moments, round after round.

Each round reopens the same log: every record the child acknowledged (printed) must be there,
byte for byte, seqs contiguous from 1, every group whole, and the tail repaired by the reopen.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from eventlog import EventLog
from eventlog.atomic import TEMP_PREFIX
from tests.eventlog.helpers import check_self_describing, read_acked, sha, spawn

ROUNDS = int(os.environ.get("REWIND_CRASH_ROUNDS", "50"))
SEGMENT_BYTES = 256 * 1024


def _verify(log_dir: Path, acked: dict[int, str]) -> tuple[int, int]:
    """Reopen, check the promise, return (last_seq, torn bytes cut)."""
    with EventLog.open(log_dir, segment_bytes=SEGMENT_BYTES) as log:
        recovery = log.recovery
        assert not list(log_dir.glob(f"{TEMP_PREFIX}*")), "open left a half-made file behind"
        records = list(log.read())
        assert [r.seq for r in records] == list(range(1, log.last_seq + 1)), "seqs not contiguous"
        assert recovery.last_seq == log.last_seq
        assert max(acked, default=0) <= log.last_seq, "an acknowledged record is missing"
        for seq, digest in acked.items():
            assert sha(records[seq - 1].payload) == digest, f"acknowledged seq {seq} differs"
        check_self_describing(records)
        if recovery.torn_bytes:  # a torn last write: its bytes are kept, whole
            assert recovery.cut_reason and recovery.cut_reason.startswith("torn write")
            assert recovery.broken_file is not None
            assert Path(recovery.broken_file).stat().st_size == recovery.torn_bytes
        else:
            assert recovery.broken_file is None and recovery.zero_fill_bytes == 0
        last = log.last_seq
    # The repair is durable and complete: a second open finds a clean tail.
    with EventLog.open(log_dir, segment_bytes=SEGMENT_BYTES) as again:
        assert again.recovery.torn_bytes == 0
        assert again.recovery.temp_files_removed == 0
        assert again.last_seq == last
    return last, recovery.torn_bytes


@pytest.mark.crash
@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_loses_no_acknowledged_record(tmp_path: Path) -> None:
    log_dir = tmp_path / "data" / "log"
    rng = random.Random(os.environ.get("REWIND_CRASH_SEED", "rewind-crash"))
    acked: dict[int, str] = {}
    cuts = 0
    started = time.monotonic()
    for round_no in range(ROUNDS):
        out = tmp_path / f"round-{round_no}.out"
        args = (str(log_dir), str(round_no), str(SEGMENT_BYTES))
        child = spawn("crash_writer.py", *args, stdout=out)
        # Mostly kill while writing; sometimes during startup and tail repair.
        delay = rng.uniform(0.0, 0.25) if rng.random() < 0.15 else rng.uniform(0.25, 1.1)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
        new = read_acked(out)
        for seq, digest in new.items():
            assert acked.get(seq, digest) == digest, f"seq {seq} acknowledged twice, differently"
        acked.update(new)
        if not log_dir.exists():
            continue  # killed before it created anything
        last, cut = _verify(log_dir, acked)
        cuts += cut > 0
        assert last >= len(acked)
    assert len(acked) > ROUNDS * 10, "the child barely wrote anything; the test proves nothing"
    elapsed = time.monotonic() - started
    print(f"{ROUNDS} rounds, {len(acked)} acknowledged, {cuts} tails cut, {elapsed:.1f}s")
