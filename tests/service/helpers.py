"""Shared builders for the service and CLI tests: real logs in real data directories.

Everything here goes through the public engine (`EventLog.open`, `append`, `append_many`) and
the real codec, so a test that uses these helpers exercises the same bytes the server writes.
The reference state is always a plain fold of every record from seq 1, computed without
`load_state`, so that snapshot shortcuts are compared against something that takes none.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from eventlog import Checkpoint, EventLog
from projections import State, decode, encode, encode_state, evolve
from service.layout import DataDir
from service.state_store import write_snapshot
from tools.simulation import realistic_history

ROOT = Path(__file__).resolve().parents[2]
REWIND = Path(sys.executable).with_name("rewind")
FRAME_HEADER = struct.Struct("<IIQ")
"""word (a record's length; bit 30: a commit frame), crc32c, seq: the frame format of DESIGN.md."""
COMMIT_BIT = 1 << 30
COMMIT_FRAME = FRAME_HEADER.size + 12
"""A commit frame closes each write batch: header, then batch start u64 and batch crc u32."""
SEGMENT_HEADER = 20
"""magic 4, version 2, reserved 2, first seq 8, crc 4."""
SMALL_SEGMENT = 16 * 1024
"""Small enough that a few hundred realistic events span several segments."""


def history(n: int, seed: int = 1) -> list[bytes]:
    """The first `n` events of a realistic history, encoded as log payloads."""
    return [encode(envelope) for envelope in realistic_history(n, seed)]


def plan_groups(count: int, rng: random.Random, max_group: int = 5) -> list[int]:
    """Split `count` records into group sizes: 1 means `append`, more means `append_many`."""
    sizes: list[int] = []
    while count:
        size = min(count, rng.choice([1, 1, 1, 2, 3, max_group]))
        sizes.append(size)
        count -= size
    return sizes


async def _append(log: EventLog, payloads: Sequence[bytes], groups: Sequence[int]) -> None:
    position = 0
    for size in groups:
        chunk = payloads[position : position + size]
        if size == 1:
            await log.append(chunk[0])
        else:
            await log.append_many(list(chunk))
        position += size
    assert position == len(payloads)


def append(log: EventLog, payloads: Sequence[bytes], groups: Sequence[int] | None = None) -> None:
    """Append in order, one durable record or group at a time (`groups`: sizes, default 1s)."""
    asyncio.run(_append(log, payloads, groups if groups is not None else [1] * len(payloads)))


def make_data_dir(
    root: Path,
    payloads: Sequence[bytes],
    *,
    groups: Sequence[int] | None = None,
    segment_bytes: int = SMALL_SEGMENT,
) -> DataDir:
    """A data directory whose log holds `payloads` as seqs 1..n."""
    data_dir = DataDir.at(root)
    with EventLog.open(data_dir.log, segment_bytes=segment_bytes) as log:
        append(log, payloads, groups)
        assert log.last_seq == len(payloads)
    return data_dir


def fold(payloads: Sequence[bytes], upto: int | None = None) -> State:
    """The state after the first `upto` payloads (all by default), folded from nothing."""
    state = State()
    for seq, payload in enumerate(payloads[:upto], start=1):
        evolve(state, seq, decode(payload))
    return state


def full_replay(data_dir: DataDir, upto: int | None = None) -> bytes:
    """Encoded state of a plain replay of the log from seq 1 (no snapshot involved)."""
    state = State()
    with EventLog.open_readonly(data_dir.log) as log:
        for record in log.read(1):
            if upto is not None and record.seq > upto:
                break
            evolve(state, record.seq, decode(record.payload))
    return encode_state(state)


def make_with_snapshots(
    root: Path,
    payloads: Sequence[bytes],
    at: Sequence[int],
    *,
    rng: random.Random | None = None,
    segment_bytes: int = SMALL_SEGMENT,
) -> tuple[DataDir, dict[int, Checkpoint]]:
    """A data directory holding `payloads`, with a real snapshot taken right after each seq in
    `at`: the log is grown in phases, and each snapshot gets the checkpoint the writer reports
    at that moment (the way the server takes them), with the state folded so far."""
    rng = rng or random.Random(0)
    data_dir = DataDir.at(root)
    checkpoints: dict[int, Checkpoint] = {}
    state = State()
    done = 0
    with EventLog.open(data_dir.log, segment_bytes=segment_bytes) as log:
        for stop in [*sorted(at), len(payloads)]:
            phase = payloads[done:stop]
            append(log, phase, plan_groups(len(phase), rng))
            for seq, payload in enumerate(phase, start=done + 1):
                evolve(state, seq, decode(payload))
            done = stop
            if stop in at and stop > 0:
                checkpoint = log.checkpoint
                assert checkpoint is not None and checkpoint.seq == stop
                checkpoints[stop] = checkpoint
                write_snapshot(data_dir, state, checkpoint)
        assert log.last_seq == len(payloads)
    return data_dir, checkpoints


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("LOCK"))
    return target


def run_rewind(
    *args: str | Path | int, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed `rewind` console script; never raises on a non-zero exit."""
    return subprocess.run(
        [str(REWIND), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        # Wide enough that rich never wraps a line (see the xfail about wrapping in tests/cli).
        env={**os.environ, "COLUMNS": "1000", **(env or {})},
        check=False,
        cwd=ROOT,
    )


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ (1 << bit)]))


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error contract: non-zero exit, one `rewind: error:` line, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rewind: error: "), result.stderr
    return lines[0]


def tree_digest(root: Path, skip: tuple[str, ...] = ("LOCK",)) -> dict[str, bytes]:
    """Every file under `root` (relative name -> bytes), to prove a tool changed nothing."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name not in skip
    }


class FrameInfo(NamedTuple):
    seq: int
    segment: Path
    offset: int
    length: int
    continues: bool
    """Another record of the same write batch follows (a cut right after this one is refused)."""
    batch_end: int
    """Offset just past the commit frame closing this record's batch: where the log ends when
    this batch is its last."""


def frames(log_dir: Path) -> list[FrameInfo]:
    """Parse every segment by hand (an oracle independent of the engine's own scanner): the
    records of every batch that a commit frame closes, as the engine shows them."""
    found: list[FrameInfo] = []
    for segment in sorted(log_dir.glob("*.seg")):
        data = segment.read_bytes()
        offset = SEGMENT_HEADER
        batch: list[FrameInfo] = []
        while offset + FRAME_HEADER.size <= len(data):
            word, _, seq = FRAME_HEADER.unpack_from(data, offset)
            if word & COMMIT_BIT:
                end = offset + COMMIT_FRAME
                if end > len(data):
                    break
                last = len(batch) - 1
                found.extend(
                    f._replace(continues=i < last, batch_end=end) for i, f in enumerate(batch)
                )
                batch = []
                offset = end
                continue
            if seq == 0:  # seqs start at 1: this is the writer's preallocated zero space
                break
            length = word & ((1 << 30) - 1)
            if offset + FRAME_HEADER.size + length > len(data):
                break
            batch.append(FrameInfo(seq, segment, offset, length, False, 0))
            offset += FRAME_HEADER.size + length
    return found
