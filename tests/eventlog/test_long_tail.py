"""Damage early in a newest segment with a long tail after it is refused, at any distance.

Regression (defect 1): 200 000 records of 200 bytes from 64 concurrent writers, all
acknowledged; one 4 KiB page zeroed at offset 8192 of the (single, newest) segment. Open used
to succeed with `last_seq == 37`, moving 46 MB to `.broken` and handing out seq 38 again (its
search for "valid frames after the damage" gave up after 16 seqs when more than 32 MiB
followed); written as `append_many` groups of 100, it cut back to seq 0. Now the rule has no
budget: any commit frame of a later write, found anywhere in the rest of the segment, proves
the damaged bytes had been synced.

And the other direction (defect 2): an earlier page of the last, unacknowledged batch lost
while a later page with whole frames survived is a torn write: cut, never refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventlog import CorruptLogError, EventLog
from eventlog.verify import verify_log
from tests.eventlog.helpers import (
    COMMIT_BIT,
    COMMIT_FRAME,
    FRAME,
    SEGMENT_HEADER,
    append_groups,
    batches,
    segment_files,
)
from tests.eventlog.powercut.check import SCRATCH

RECORD = 200
TAIL = 50 * 2**20
SEGMENT_BYTES = 256 * 2**20
"""One segment holds it all: the damage is in the newest segment, as in the report."""


def _write(log_dir: Path, group: int) -> int:
    """Records of RECORD bytes from 64 concurrent writers, in groups of `group` (1: `append`),
    until the segment holds more than TAIL bytes after its first 16 KiB."""
    payload = random.Random(group).randbytes(RECORD)
    per_writer = (TAIL + 2**20) // (RECORD + FRAME.size) // 64 // group + 1

    async def main(log: EventLog) -> None:
        async def writer() -> None:
            for _ in range(per_writer):
                await append_groups(log, [[payload] * group])

        await asyncio.gather(*(writer() for _ in range(64)))

    with EventLog.open(log_dir, segment_bytes=SEGMENT_BYTES) as log:
        asyncio.run(main(log))
        return log.last_seq


@pytest.fixture(scope="module", params=[1, 100], ids=["single appends", "groups of 100"])
def template(request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as directory:
        log_dir = Path(directory) / "log"
        last_seq = _write(log_dir, request.param)
        [segment] = segment_files(log_dir)
        assert segment.stat().st_size > TAIL + 16384
        assert last_seq > 200_000, "at least the report's 200 000 records"
        yield log_dir, last_seq


def _frame_at(data: bytes, offset: int) -> tuple[int, int]:
    """(offset, expected seq) of the frame holding byte `offset`, parsed by hand."""
    position, seq = SEGMENT_HEADER, FRAME.unpack_from(data, SEGMENT_HEADER)[2]
    while True:
        word, _, frame_seq = FRAME.unpack_from(data, position)
        end = position + (COMMIT_FRAME if word & COMMIT_BIT else FRAME.size + word)
        if offset < end:
            return position, seq
        if not word & COMMIT_BIT:
            seq = frame_seq + 1
        position = end


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DAMAGE: dict[str, Callable[[bytearray], tuple[int, bytes]]] = {
    "a zeroed page at 8192": lambda data: (8192, bytes(4096)),
    "a flipped bit at 10 007": lambda data: (10_007, bytes([data[10_007] ^ 0x08])),
    "64 bytes of garbage at 12 345": lambda data: (12_345, random.Random(5).randbytes(64)),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_early_damage_with_a_long_tail_is_refused(template: tuple[Path, int], how: str) -> None:
    source, last_seq = template
    with tempfile.TemporaryDirectory(dir=SCRATCH) as directory:
        log_dir = Path(directory) / "log"
        shutil.copytree(source, log_dir)
        [segment] = segment_files(log_dir)
        data = bytearray(segment.read_bytes())
        at, bad = DAMAGE[how](data)
        assert bad != data[at : at + len(bad)]
        data[at : at + len(bad)] = bad
        segment.write_bytes(bytes(data))
        assert len(data) - at > TAIL
        offset, seq = _frame_at(bytes(data), at)
        before = _digest(segment)

        with pytest.raises(CorruptLogError) as caught:
            EventLog.open(log_dir)
        err = caught.value
        assert (err.file, err.offset, err.seq) == (segment, offset, seq)
        assert f"{segment} at offset {offset} (expected seq {seq})" in str(err)
        assert "commit frame of a later write" in str(err)
        assert _digest(segment) == before, "a refused open changes nothing"
        assert not list(log_dir.glob("*.broken*"))

        with pytest.raises(CorruptLogError) as again:
            EventLog.open_readonly(log_dir).last_seq  # noqa: B018
        assert (again.value.offset, again.value.seq) == (offset, seq)
        report = verify_log(log_dir)
        assert not report.healthy
        assert [(d.offset, d.seq) for d in report.damage if d.fatal] == [(offset, seq)]
        assert report.last_seq < seq < last_seq


def test_an_earlier_page_of_the_last_batch_lost_is_a_torn_write(tmp_path: Path) -> None:
    """Regression (defect 2): the pages of one pwrite reach the disk in any order. An earlier
    page of the last batch reads as zeros while a later one, with whole frames and the batch's
    own commit frame, survived: only unacknowledged bytes are damaged. Open cuts, never refuses
    (it used to say "valid records follow", so a server could not start after a power cut)."""
    rng = random.Random(11)
    payloads = [rng.randbytes(300) for _ in range(40)]

    async def go() -> None:
        with EventLog.open(tmp_path) as log:
            for i in range(5):
                await log.append(b"acknowledged %d" % i)
            await log.append_many(payloads)  # the last batch: about 13 KiB, four pages

    asyncio.run(go())
    [segment] = segment_files(tmp_path)
    found = batches(segment)
    last = found[-1]
    assert last.end - last.start > 3 * 4096
    page = (last.start // 4096 + 1) * 4096  # the first whole page inside the last batch
    data = bytearray(segment.read_bytes())
    data[page : page + 4096] = bytes(4096)
    segment.write_bytes(bytes(data))
    whole_after = [s for s, start, _ in last.records if start >= page + 4096]
    assert len(whole_after) > 10, "whole frames survive after the lost page"
    with EventLog.open_readonly(tmp_path) as reader:
        assert reader.last_seq == 5
    with EventLog.open(tmp_path) as log:
        assert log.last_seq == 5
        assert [r.payload for r in log.read()] == [b"acknowledged %d" % i for i in range(5)]
        recovery = log.recovery
        assert recovery.torn_bytes == last.end - last.start
        assert recovery.cut_reason == "torn write (checksum mismatch)"
        assert recovery.broken_file is not None


def test_the_frame_oracle_agrees_with_the_engine(template: tuple[Path, int]) -> None:
    """`_frame_at`, which the refusal test trusts for its expected offset and seq, is itself
    checked: at every batch start it names that batch's first record."""
    source, _ = template
    [segment] = segment_files(source)
    data = segment.read_bytes()
    for batch in batches(segment)[:50]:
        assert _frame_at(data, batch.start) == (batch.start, batch.first_seq)
        assert _frame_at(data, batch.commit) == (batch.commit, batch.last_seq + 1)
