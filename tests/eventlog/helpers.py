"""Shared helpers for the log tests: a model of what was acknowledged, and prefix checks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eventlog import CorruptLogError, EventLog, Record

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ROOT = HERE.parents[1]

# Self-describing payloads used by the child processes: group id, index in group, group size,
# crc32 of the body, then the body. A reader can check any record on its own.
PAYLOAD_HEAD = struct.Struct("<QHHI")


def make_payload(rng: random.Random, gid: int, index: int, count: int, size: int) -> bytes:
    body = rng.randbytes(size)
    return PAYLOAD_HEAD.pack(gid, index, count, zlib.crc32(body)) + body


def check_self_describing(records: Sequence[Record]) -> None:
    """Every payload is intact and every group is whole, its members consecutive."""
    position = 0
    while position < len(records):
        gid, index, count, _ = PAYLOAD_HEAD.unpack_from(records[position].payload)
        assert index == 0, f"seq {records[position].seq} starts mid-group"
        for member in range(count):
            assert position + member < len(records), f"group {gid:x} is incomplete"
            record = records[position + member]
            head = PAYLOAD_HEAD.unpack_from(record.payload)
            assert head == (gid, member, count, head[3]), f"group {gid:x} broken at {record.seq}"
            body = record.payload[PAYLOAD_HEAD.size :]
            assert zlib.crc32(body) == head[3], f"payload of seq {record.seq} is damaged"
        position += count


def sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def read_acked(path: Path) -> dict[int, str]:
    """`seq sha256` lines a child printed after each acknowledged append (whole lines only)."""
    acked: dict[int, str] = {}
    if not path.exists():
        return acked
    text = path.read_text()
    lines = text.split("\n")
    for line in lines[:-1]:  # the last element is "" or a line cut by the kill
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            acked[int(parts[0])] = parts[1]
    return acked


@dataclass
class Model:
    """What the log should hold: payload of each seq, and which seqs end a group."""

    payloads: list[bytes] = field(default_factory=list)
    group_ends: set[int] = field(default_factory=set)

    def add_group(self, seqs: Sequence[int], payloads: Sequence[bytes]) -> None:
        assert list(seqs) == list(range(len(self.payloads) + 1, len(self.payloads) + 1 + len(seqs)))
        self.payloads.extend(payloads)
        if seqs:
            self.group_ends.add(seqs[-1])

    @property
    def last_seq(self) -> int:
        return len(self.payloads)

    def check_prefix(self, records: Sequence[Record]) -> None:
        """records are seqs 1..k with the written payloads, ending at a group boundary."""
        for index, record in enumerate(records):
            assert record.seq == index + 1, f"expected seq {index + 1}, read {record.seq}"
            assert index < len(self.payloads), f"seq {record.seq} was never written"
            assert record.payload == self.payloads[index], f"payload of seq {record.seq} differs"
        if records:
            assert records[-1].seq in self.group_ends, f"group cut at seq {records[-1].seq}"

    def check_exact(self, records: Sequence[Record], upto: int | None = None) -> None:
        upto = self.last_seq if upto is None else upto
        self.check_prefix(records)
        assert len(records) == upto, f"read {len(records)} records, expected {upto}"


def read_until_error(records: Iterator[Record]) -> tuple[list[Record], CorruptLogError | None]:
    """Drain a reader; CorruptLogError is a legal outcome, anything else propagates."""
    got: list[Record] = []
    try:
        for record in records:
            got.append(record)
    except CorruptLogError as err:
        return got, err
    return got, None


async def append_groups(log: EventLog, groups: Iterable[Sequence[bytes]]) -> list[list[int]]:
    """Append each group concurrently (one `append` for a single payload), keeping the order."""

    async def one(group: Sequence[bytes], single: bool) -> list[int]:
        if single:
            return [await log.append(group[0])]
        return await log.append_many(group)

    calls = [one(group, len(group) == 1) for group in groups]
    return list(await asyncio.gather(*calls))


def write_model(
    path: Path, groups: Sequence[Sequence[bytes]], segment_bytes: int = 64 * 2**20
) -> Model:
    """Create a log at `path` holding `groups`, appended in a few concurrent bursts."""
    model = Model()

    async def main() -> None:
        with EventLog.open(path, segment_bytes=segment_bytes) as log:
            for start in range(0, len(groups), 7):
                burst = groups[start : start + 7]
                for seqs, group in zip(await append_groups(log, burst), burst, strict=True):
                    pending.append((seqs, group))

    pending: list[tuple[list[int], Sequence[bytes]]] = []
    asyncio.run(main())
    for seqs, group in sorted(pending, key=lambda item: item[0][0] if item[0] else 0):
        model.add_group(seqs, group)
    return model


def write_sequential(
    path: Path, groups: Sequence[Sequence[bytes]], segment_bytes: int = 64 * 2**20
) -> Model:
    """Create a log at `path` appending `groups` one at a time: one write batch per group."""
    model = Model()

    async def main() -> None:
        with EventLog.open(path, segment_bytes=segment_bytes) as log:
            for group in groups:
                seqs = await append_groups(log, [group])
                model.add_group(seqs[0], group)

    asyncio.run(main())
    return model


FRAME = struct.Struct("<IIQ")
COMMIT_BIT = 1 << 30
COMMIT_FRAME = FRAME.size + 12
SEGMENT_HEADER = 20


@dataclass
class BatchInfo:
    """One write batch in a segment, parsed by hand (independent of the engine's scanner)."""

    first_seq: int
    last_seq: int
    start: int
    commit: int
    """Offset of its commit frame."""
    records: list[tuple[int, int, int]]
    """(seq, offset, end) of each record frame."""

    @property
    def end(self) -> int:
        return self.commit + COMMIT_FRAME


def batches(segment: Path) -> list[BatchInfo]:
    """The closed batches of a segment, in order (stops at zeros or at an unclosed batch)."""
    data = segment.read_bytes()
    found: list[BatchInfo] = []
    offset = start = SEGMENT_HEADER
    records: list[tuple[int, int, int]] = []
    while offset + FRAME.size <= len(data):
        word, _, seq = FRAME.unpack_from(data, offset)
        if word & COMMIT_BIT:
            if not records or offset + COMMIT_FRAME > len(data):
                break
            found.append(BatchInfo(records[0][0], records[-1][0], start, offset, records))
            offset = start = offset + COMMIT_FRAME
            records = []
            continue
        end = offset + FRAME.size + word
        if seq == 0 or end > len(data):
            break
        records.append((seq, offset, end))
        offset = end
    return found


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes, to prove that nothing was written."""
    return {
        str(file.relative_to(path)): file.read_bytes()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def segment_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.iterdir() if p.name.endswith(".seg"))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn(script: str, *args: str, stdout: Path) -> subprocess.Popen[bytes]:
    """Start `tests/eventlog/<script>` with the venv python, stdout into a file (never a pipe
    that could fill up and stall the child)."""
    with stdout.open("ab") as out:
        return subprocess.Popen(
            [PYTHON, str(HERE / script), *args],
            stdout=out,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=ROOT,
        )
