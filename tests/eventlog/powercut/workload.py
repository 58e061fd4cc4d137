"""The recorded run the power-cut states are built from.

One data directory, through a recording filesystem: 64 concurrent writers (`append` and
`append_many` groups of self-describing payloads) over small segments, so the log rotates many
times; a snapshot taken while they write; a close, then a torn write left at the end (as a
crashed writer leaves one) and a reopen that cuts it; more writers until an fdatasync fails
with EIO; a reopen that must make what it then reports durable; a last few writes.

Acknowledgements go into the trace as they happen: every append that returned, and every
record an open exposed (open promises those are durable too).
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from eventlog import EventLog, LogClosedError, LogFailedError
from eventlog.frame import frame_parts
from eventlog.segment import segment_name
from eventlog.snapshot import SnapshotStore
from tests.eventlog.helpers import make_payload
from tests.eventlog.powercut.recorder import Op, RecordingFS

SEGMENT_BYTES = 24 * 1024
WRITERS = 64


@dataclass
class Run:
    trace: list[Op]
    written: set[bytes] = field(default_factory=set)
    """Every payload any writer ever submitted."""
    facts: dict[str, int] = field(default_factory=dict)
    """What the run went through (rotations, cut bytes, failed appends), to prove coverage."""


def record(root: Path, fs_class: type[RecordingFS] = RecordingFS, seed: int = 7) -> Run:
    """Run the workload under `root` (which must not exist) with `fs_class` recording it."""
    root.mkdir(parents=True)
    fs = fs_class(root)
    run = Run(fs.trace)
    asyncio.run(_workload(root / "data", fs, run, random.Random(seed)))
    return run


async def _workload(data: Path, fs: RecordingFS, run: Run, rng: random.Random) -> None:
    log_dir = data / "log"
    store = SnapshotStore(data / "snapshots", fs=fs)

    log = _open(log_dir, fs)
    snapshot = asyncio.create_task(_snapshot_when(log, store, 400))
    await _writers(log, fs, run, rng, rounds=10)
    await snapshot
    checkpoint = log.checkpoint
    log.close()

    assert checkpoint is not None
    fd = fs.open(log_dir / segment_name(checkpoint.segment), os.O_RDWR)
    fake = [rng.randbytes(300) for _ in range(2)]  # never submitted: must never be read back
    torn = b"".join(b"".join(frame_parts(checkpoint.seq + 1 + i, p)) for i, p in enumerate(fake))
    fs.pwrite(fd, torn[: len(torn) * 3 // 4], checkpoint.end)
    fs.close(fd)

    log = _open(log_dir, fs)
    run.facts["torn_bytes_cut"] = log.recovery.torn_bytes
    fs.fail_datasync_after = 30
    failed = await _writers(log, fs, run, rng, rounds=12)
    run.facts["failed_appends"] = failed
    fs.fail_datasync_after = None
    log.close()

    log = _open(log_dir, fs)
    await _writers(log, fs, run, rng, rounds=2)
    log.close()
    run.facts["segments"] = len([p for p in log_dir.iterdir() if p.name.endswith(".seg")])
    run.facts["snapshots"] = len(store.files())
    run.facts["acked"] = log.last_seq


def _open(log_dir: Path, fs: RecordingFS) -> EventLog:
    """Open as the server does, and acknowledge what open exposes."""
    log = EventLog.open(log_dir, segment_bytes=SEGMENT_BYTES, fs=fs)
    fs.note_ack({record.seq: record.payload for record in log.read()})
    return log


async def _snapshot_when(log: EventLog, store: SnapshotStore, seq: int) -> None:
    while log.last_seq < seq:
        await asyncio.sleep(0.001)
    checkpoint = log.checkpoint
    assert checkpoint is not None
    data = b"state at %d" % checkpoint.seq
    await asyncio.to_thread(store.write, checkpoint.seq, data, checkpoint)


async def _writers(
    log: EventLog, fs: RecordingFS, run: Run, rng: random.Random, rounds: int
) -> int:
    """WRITERS tasks, each appending `rounds` times; returns how many appends failed."""
    failed = 0

    async def writer(seed: int) -> None:
        nonlocal failed
        own = random.Random(seed)
        for _ in range(rounds):
            gid = own.getrandbits(64)
            count = 1 if own.random() < 0.6 else own.randrange(2, 6)
            payloads = [
                make_payload(own, gid, i, count, own.randrange(0, 400)) for i in range(count)
            ]
            run.written.update(payloads)
            try:
                if count == 1:
                    seqs = [await log.append(payloads[0])]
                else:
                    seqs = await log.append_many(payloads)
            except (LogFailedError, LogClosedError):
                failed += 1
                return
            fs.note_ack(dict(zip(seqs, payloads, strict=True)))
            await asyncio.sleep(own.random() * 0.003)

    await asyncio.gather(*(writer(rng.getrandbits(32)) for _ in range(WRITERS)))
    return failed
