"""The newest segment's end: zeros are free space, a torn last write is cut into `.broken` and
reported (torn bytes and zero fill apart), damage before a later write's commit frame is
refused, lengths are never trusted beyond the record limit, an oversized payload is refused
without a trace."""

from __future__ import annotations

import asyncio
import os
import struct
import tracemalloc
from pathlib import Path

import pytest

from eventlog import MAX_PAYLOAD, CorruptLogError, EventLog, RecordTooLargeError
from eventlog.frame import commit_frame, frame_parts
from eventlog.log import PREALLOCATE_STEP
from tests.eventlog.helpers import (
    BatchInfo,
    Model,
    batches,
    segment_files,
    tree,
    write_model,
    write_sequential,
)

GROUPS = [[b"one"], [b"two-a", b"two-b", b"two-c"], [b"three" * 50], [b"four"]]


def _log(path: Path) -> tuple[Model, Path, list[BatchInfo]]:
    """A one-segment log, one batch per group, whose file ends exactly at its last commit frame
    (its preallocated zeros cut off, as a writer on a filesystem without fallocate leaves it),
    so that bytes appended to the file land where a torn next write would."""
    model = write_sequential(path, GROUPS)
    segment = segment_files(path)[-1]
    found = batches(segment)
    assert [b.last_seq for b in found] == [1, 4, 5, 6]
    os.truncate(segment, found[-1].end)
    return model, segment, found


def _offset(found: list[BatchInfo], seq: int) -> int:
    return next(offset for b in found for s, offset, _ in b.records if s == seq)


def _reopen(path: Path) -> tuple[EventLog, list[bytes]]:
    log = EventLog.open(path)
    return log, [r.payload for r in log.read()]


@pytest.mark.parametrize("how", ["append zeros", "fallocate"])
def test_zero_fill_after_last_batch_is_free_space(tmp_path: Path, how: str) -> None:
    """Zeros after the last commit frame (the writer's own preallocation, or more) are not
    damage: nothing is cut, and the next append lands right after the last batch."""
    model, segment, _ = _log(tmp_path)
    size = segment.stat().st_size
    if how == "append zeros":
        with segment.open("ab") as handle:
            handle.write(bytes(5000))
    else:
        fd = os.open(segment, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size + (1 << 16))
        finally:
            os.close(fd)
    grown = segment.stat().st_size
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        recovery = log.recovery
        assert (recovery.torn_bytes, recovery.zero_fill_bytes) == (0, 0)
        assert recovery.broken_file is None
        assert recovery.cut_reason is None

        async def append() -> int:
            return await log.append(b"next")

        assert asyncio.run(append()) == len(model.payloads) + 1
        assert [r.payload for r in log.read()] == [*model.payloads, b"next"]
    assert segment.stat().st_size >= grown
    assert not list(tmp_path.glob("*.broken*"))


def test_torn_tail_is_cut_into_broken_file_and_reported(tmp_path: Path) -> None:
    model, segment, _ = _log(tmp_path)
    size = segment.stat().st_size
    original = segment.read_bytes()
    header, body = frame_parts(len(model.payloads) + 1, b"x" * 400)
    torn = header + body[:123]
    with segment.open("ab") as handle:
        handle.write(torn + bytes(3000))  # then zeros: preallocated space the write never reached
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        recovery = log.recovery
        assert recovery.torn_bytes == len(torn)
        assert recovery.zero_fill_bytes == 3000
        assert recovery.broken_file == str(segment) + ".broken"
        assert Path(recovery.broken_file).read_bytes() == torn
        assert recovery.cut_reason == "torn write (checksum mismatch)"
        assert recovery.last_seq == len(model.payloads)
    kept = segment.read_bytes()  # the records, then the writer's preallocated zeros
    assert kept[:size] == original
    assert not kept[size:].strip(b"\0")
    # A second torn tail keeps the first `.broken` file and adds another.
    with segment.open("r+b") as handle:
        handle.seek(size)
        handle.write(b"\x07" * 9)
    with EventLog.open(tmp_path) as log:
        assert log.recovery.broken_file == str(segment) + ".broken.1"
        assert log.recovery.cut_reason == "torn write (length beyond limit)"
    assert (tmp_path / (segment.name + ".broken")).read_bytes() == torn


def test_only_zero_fill_after_an_unclosed_batch_is_no_broken_file(tmp_path: Path) -> None:
    """Regression (defect 7): a cut of an unfinished write followed by preallocated zeros was
    reported as "zero fill" while a `.broken` copy was written, and counted the zeros as cut."""
    model, segment, _ = _log(tmp_path)
    partial = b"".join(frame_parts(len(model.payloads) + 1, b"g0"))
    with segment.open("ab") as handle:
        handle.write(partial + bytes(PREALLOCATE_STEP))
    with EventLog.open(tmp_path) as log:
        recovery = log.recovery
        assert (recovery.torn_bytes, recovery.zero_fill_bytes) == (len(partial), PREALLOCATE_STEP)
        assert recovery.cut_reason == "torn write (unfinished batch)"
        assert Path(recovery.broken_file or "").read_bytes() == partial


def test_unclosed_batch_at_the_end_is_cut_whole(tmp_path: Path) -> None:
    """Whole, valid record frames without their commit frame: the write did not finish, so
    none of them is there (readers never see them; open cuts them together)."""
    model, segment, _ = _log(tmp_path)
    next_seq = len(model.payloads) + 1
    partial = b"".join(frame_parts(next_seq, b"g0") + frame_parts(next_seq + 1, b"g1"))
    with segment.open("ab") as handle:
        handle.write(partial)
    with EventLog.open_readonly(tmp_path) as reader:  # a write still in progress: not there
        assert [r.payload for r in reader.read()] == model.payloads
        assert reader.last_seq == len(model.payloads)
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        assert log.recovery.torn_bytes == len(partial)
        assert log.recovery.cut_reason == "torn write (unfinished batch)"


def test_zeros_followed_by_a_later_write_are_corruption(tmp_path: Path) -> None:
    model, segment, found = _log(tmp_path)
    data = bytearray(segment.read_bytes())
    at = _offset(found, 2)
    data[at : at + 16] = bytes(16)  # zero seq 2's header: batches after it are whole
    segment.write_bytes(bytes(data))
    before = tree(tmp_path)
    with pytest.raises(CorruptLogError) as caught:
        EventLog.open(tmp_path)
    assert caught.value.seq == 2
    assert caught.value.offset == at
    assert caught.value.file == segment
    assert f"offset {found[2].commit}" in str(caught.value), "names the proof"
    assert "rewind log verify" in str(caught.value)
    assert tree(tmp_path) == before, "a refused open must not touch the files"
    del model


def test_a_later_commit_frame_alone_is_proof(tmp_path: Path) -> None:
    """Damage in batch k while batch k+1 is itself torn, but its commit frame is whole: batch
    k+1 was written, so batch k had been synced: corruption, not a torn write to cut."""
    _, segment, found = _log(tmp_path)
    data = bytearray(segment.read_bytes())
    data[found[2].records[0][1] + 20] ^= 0x10  # a payload byte of seq 5, in batch 3 of 4
    data[found[3].start + 3] ^= 0x01  # and batch 4's record header: batch 4 is not complete
    segment.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as caught:
        EventLog.open(tmp_path)
    assert (caught.value.seq, caught.value.offset) == (5, found[2].start)
    assert f"offset {found[3].commit}" in str(caught.value)


def test_damage_in_the_last_batch_with_its_commit_frame_whole_is_cut(tmp_path: Path) -> None:
    """The commit frame of the torn write itself proves nothing (it closes that very write)."""
    model, segment, found = _log(tmp_path)
    data = bytearray(segment.read_bytes())
    data[found[-1].records[0][1] + 20] ^= 0x10  # seq 6's payload; its commit frame is intact
    segment.write_bytes(bytes(data))
    with EventLog.open(tmp_path) as log:
        assert log.last_seq == 5
        assert [r.payload for r in log.read()] == model.payloads[:5]
        assert log.recovery.torn_bytes == found[-1].end - found[-1].start


def test_a_whole_frame_with_the_wrong_seq_is_corruption(tmp_path: Path) -> None:
    """A frame that verifies was written whole: never a torn write, wherever it is."""
    model, segment, _ = _log(tmp_path)
    stray = b"".join(frame_parts(len(model.payloads) + 5, b"from elsewhere"))
    with segment.open("ab") as handle:
        handle.write(stray)
    with pytest.raises(CorruptLogError, match="wrong seq"):
        EventLog.open(tmp_path)


def test_a_commit_frame_that_closes_nothing_is_corruption(tmp_path: Path) -> None:
    model, segment, found = _log(tmp_path)
    commit, _ = commit_frame(len(model.payloads), found[-1].end, b"")
    with segment.open("ab") as handle:
        handle.write(commit)
    with pytest.raises(CorruptLogError, match="does not close its batch"):
        EventLog.open(tmp_path)


def test_durable_floor_refuses_a_cut_below_it(tmp_path: Path) -> None:
    model, segment, _ = _log(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # tears the last batch (seq 6's commit frame)
    before = tree(tmp_path)
    with pytest.raises(CorruptLogError, match="a snapshot covers"):
        EventLog.open(tmp_path, durable_floor=len(model.payloads))
    assert tree(tmp_path) == before
    with EventLog.open(tmp_path, durable_floor=len(model.payloads) - 1) as log:
        assert log.last_seq == len(model.payloads) - 1


def test_durable_floor_past_a_clean_end_is_refused(tmp_path: Path) -> None:
    model, _, _ = _log(tmp_path)
    with pytest.raises(CorruptLogError, match=f"seqs up to {len(model.payloads) + 3}"):
        EventLog.open(tmp_path, durable_floor=len(model.payloads) + 3)


@pytest.mark.parametrize("where", ["middle", "last"])
@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, (1 << 30) - 1, (1 << 30) | 5, 1 << 31])
def test_length_beyond_the_limit_is_damage_not_an_allocation(
    tmp_path: Path, where: str, length: int
) -> None:
    model, segment, found = _log(tmp_path)
    seq = 2 if where == "middle" else len(model.payloads)
    at = _offset(found, seq)
    data = bytearray(segment.read_bytes())
    struct.pack_into("<I", data, at, length)
    segment.write_bytes(bytes(data))
    file_size = segment.stat().st_size
    tracemalloc.start()
    try:
        if where == "middle":
            for opener in (EventLog.open_readonly, EventLog.open):
                with pytest.raises(CorruptLogError) as caught:
                    # a read-only log judges its newest segment when its end is first asked for
                    opener(tmp_path).last_seq  # noqa: B018
                assert caught.value.seq == seq
                assert caught.value.offset == at
                assert caught.value.kind == "length beyond limit"
        else:
            log, payloads = _reopen(tmp_path)
            with log:
                assert payloads == model.payloads[:-1]
                assert log.recovery.torn_bytes == len(data) - at
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # reading the file (and the space the writer preallocates) is all it may cost; trusting a
    # flipped length would cost up to a gigabyte
    assert peak < 2 * file_size + PREALLOCATE_STEP + 2**20, f"opening allocated {peak} bytes"


def test_oversized_payload_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_model(log_dir, GROUPS)
    before = tree(log_dir)
    too_big = bytes(MAX_PAYLOAD + 1)

    async def main() -> None:
        with EventLog.open(log_dir) as log:
            last = log.last_seq
            with pytest.raises(RecordTooLargeError, match="exceeds"):
                await log.append(too_big)
            with pytest.raises(RecordTooLargeError):
                await log.append_many([b"fine", too_big, b"fine"])
            assert log.last_seq == last
            assert tree(log_dir) == before  # LOCK keeps the same pid: this process
            # The refused appends took no seq; the limit itself is allowed.
            assert await log.append(bytes(MAX_PAYLOAD)) == last + 1
            assert await log.append(b"next") == last + 2
        with EventLog.open(log_dir) as log:
            records = list(log.read(last + 1))
            assert [len(r.payload) for r in records] == [MAX_PAYLOAD, 4]

    asyncio.run(main())
