"""Tail classification: zero fill is preallocated space, a torn tail is cut into `.broken`,
lengths are never trusted beyond the record limit, and an oversized payload is refused without
a trace."""

from __future__ import annotations

import asyncio
import os
import struct
import tracemalloc
from pathlib import Path

import pytest

from eventlog import MAX_PAYLOAD, CorruptLogError, EventLog, RecordTooLargeError
from eventlog.frame import HEADER_SIZE, frame_parts
from eventlog.log import PREALLOCATE_STEP
from eventlog.segment import SEGMENT_HEADER_SIZE
from tests.eventlog.helpers import Model, segment_files, tree, write_model

GROUPS = [[b"one"], [b"two-a", b"two-b", b"two-c"], [b"three" * 50], [b"four"]]


def _log(path: Path) -> tuple[Model, Path]:
    """A one-segment log whose file ends exactly at its last record (its preallocated zeros cut
    off, as a writer on a filesystem without fallocate leaves it), so that bytes appended to the
    file land right after the last frame, where a torn write would."""
    model = write_model(path, GROUPS)
    segment = segment_files(path)[-1]
    used = SEGMENT_HEADER_SIZE + sum(HEADER_SIZE + len(p) for p in model.payloads)
    os.truncate(segment, used)
    return model, segment


def _offsets(model: Model) -> list[int]:
    """Offset of each seq's frame in a single-segment log."""
    offsets, offset = [], SEGMENT_HEADER_SIZE
    for payload in model.payloads:
        offsets.append(offset)
        offset += HEADER_SIZE + len(payload)
    return offsets


def _reopen(path: Path) -> tuple[EventLog, list[bytes]]:
    log = EventLog.open(path)
    return log, [r.payload for r in log.read()]


@pytest.mark.parametrize("how", ["append zeros", "fallocate"])
def test_zero_fill_after_last_frame_is_preallocated_space(tmp_path: Path, how: str) -> None:
    """Zeros after the last frame (the writer's own preallocation, or more) are not damage:
    nothing is cut, and the next append lands right after the last record."""
    model, segment = _log(tmp_path)
    size = segment.stat().st_size
    if how == "append zeros":
        with segment.open("ab") as handle:
            handle.write(bytes(5000))
    else:
        fd = os.open(segment, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, size + (1 << 16))
        finally:
            os.close(fd)
    grown = segment.stat().st_size
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        assert log.recovery.bytes_cut == 0
        assert log.recovery.broken_file is None
        assert log.recovery.cut_reason is None

        async def append() -> int:
            return await log.append(b"next")

        assert asyncio.run(append()) == len(model.payloads) + 1
        assert [r.payload for r in log.read()] == [*model.payloads, b"next"]
    assert segment.stat().st_size >= grown
    assert not list(tmp_path.glob("*.broken*"))


def test_torn_tail_is_cut_into_broken_file_and_reported(tmp_path: Path) -> None:
    model, segment = _log(tmp_path)
    size = segment.stat().st_size
    original = segment.read_bytes()
    header, body = frame_parts(len(model.payloads) + 1, b"x" * 400, False)
    torn = header + body[:123]
    with segment.open("ab") as handle:
        handle.write(torn)
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        recovery = log.recovery
        assert recovery.bytes_cut == len(torn)
        assert recovery.broken_file == str(segment) + ".broken"
        assert Path(recovery.broken_file).read_bytes() == torn
        assert recovery.cut_reason is not None and "torn" in recovery.cut_reason
        assert recovery.last_seq == len(model.payloads)
    kept = segment.read_bytes()  # the records, then the writer's preallocated zeros
    assert kept[:size] == original
    assert not kept[size:].strip(b"\0")
    # A second torn tail keeps the first `.broken` file and adds another.
    with segment.open("ab") as handle:
        handle.write(b"\x07" * 9)
    with EventLog.open(tmp_path) as log:
        assert log.recovery.broken_file == str(segment) + ".broken.1"
    assert (tmp_path / (segment.name + ".broken")).read_bytes() == torn


def test_unfinished_group_at_the_end_is_cut_whole(tmp_path: Path) -> None:
    model, segment = _log(tmp_path)
    next_seq = len(model.payloads) + 1
    partial = b"".join(frame_parts(next_seq, b"g0", True) + frame_parts(next_seq + 1, b"g1", True))
    with segment.open("ab") as handle:
        handle.write(partial)
    with EventLog.open_readonly(tmp_path) as reader:  # a group still being written: not there
        assert [r.payload for r in reader.read()] == model.payloads
    log, payloads = _reopen(tmp_path)
    with log:
        assert payloads == model.payloads
        assert log.recovery.bytes_cut == len(partial)
        assert log.recovery.cut_reason == "unfinished group at the end"


def test_zeros_followed_by_valid_frames_are_corruption(tmp_path: Path) -> None:
    model, segment = _log(tmp_path)
    offsets = _offsets(model)
    data = bytearray(segment.read_bytes())
    data[offsets[1] : offsets[1] + HEADER_SIZE] = bytes(HEADER_SIZE)  # zero seq 2's header
    segment.write_bytes(bytes(data))
    before = tree(tmp_path)
    with pytest.raises(CorruptLogError) as caught:
        EventLog.open(tmp_path)
    assert caught.value.seq == 2
    assert caught.value.offset == offsets[1]
    assert caught.value.file == segment
    assert "rewind log verify" in str(caught.value)
    assert tree(tmp_path) == before, "a refused open must not touch the files"


def test_durable_floor_refuses_a_cut_below_it(tmp_path: Path) -> None:
    model, segment = _log(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # tears the last record, seq 6
    before = tree(tmp_path)
    with pytest.raises(CorruptLogError, match="snapshot covers"):
        EventLog.open(tmp_path, durable_floor=len(model.payloads))
    assert tree(tmp_path) == before
    with EventLog.open(tmp_path, durable_floor=len(model.payloads) - 1) as log:
        assert log.last_seq == len(model.payloads) - 1


@pytest.mark.parametrize("where", ["middle", "last"])
@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, (1 << 30) - 1, (1 << 30) | 5])
def test_length_beyond_the_limit_is_damage_not_an_allocation(
    tmp_path: Path, where: str, length: int
) -> None:
    model, segment = _log(tmp_path)
    offsets = _offsets(model)
    seq = 2 if where == "middle" else len(model.payloads)
    data = bytearray(segment.read_bytes())
    (word,) = struct.unpack_from("<I", data, offsets[seq - 1])
    struct.pack_into("<I", data, offsets[seq - 1], (word & (1 << 31)) | length)
    segment.write_bytes(bytes(data))
    file_size = segment.stat().st_size
    tracemalloc.start()
    try:
        if where == "middle":
            for opener in (EventLog.open_readonly, EventLog.open):
                with pytest.raises(CorruptLogError) as caught:
                    # a read-only log scans its newest segment when its end is first asked for
                    opener(tmp_path).last_seq  # noqa: B018
                assert caught.value.seq == seq
                assert caught.value.offset == offsets[seq - 1]
                assert caught.value.kind == "length beyond limit"
        else:
            log, payloads = _reopen(tmp_path)
            with log:
                assert payloads == model.payloads[:-1]
                assert log.recovery.bytes_cut == len(data) - offsets[seq - 1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # reading the file (and the space the writer preallocates) is all it may cost; trusting a
    # flipped length would cost up to a gigabyte
    assert peak < file_size + PREALLOCATE_STEP + 2**20, f"opening allocated {peak} bytes"


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
