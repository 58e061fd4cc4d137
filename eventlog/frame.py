"""Framing: records, and the commit frames that close each write batch.

Every frame is `word u32 | crc32c u32 | seq u64 | body`, little-endian; the CRC (Castagnoli)
covers body, word and seq, in that order, so the writer never copies a payload to checksum it.

- A record: `word` is the payload length (at most MAX_PAYLOAD; bits 30 and 31 are 0), `seq` is
  the record's seq (consecutive from 1), the body is the payload.
- A commit: `word` is COMMIT (bit 30) | 12, `seq` is the seq of the last record of the batch it
  closes (a commit has no seq of its own), the body is `start u64 | batch_crc u32`: the offset
  of the batch's first frame and the CRC of every byte from there to the commit frame.

A batch is what one write put into one segment: record frames, then one commit frame. It is
*complete* when its commit frame verifies and closes exactly the frames before it (their last
seq, their start offset, their CRC). Readers yield the records of complete batches only, so a
reader never sees a write half done, and an `append_many` group (never split across batches)
is all-or-nothing without a flag of its own.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import NamedTuple

from google_crc32c import extend as _crc_extend
from google_crc32c import value as _crc_value

HEADER = struct.Struct("<IIQ")
HEADER_SIZE = HEADER.size
_WORD_SEQ = struct.Struct("<IQ")
_COMMIT_BODY = struct.Struct("<QI")

MAX_PAYLOAD = 16 * 2**20
COMMIT = 1 << 30
COMMIT_WORD = COMMIT | _COMMIT_BODY.size
COMMIT_SIZE = HEADER_SIZE + _COMMIT_BODY.size
COMMIT_MARK = struct.pack("<I", COMMIT_WORD)
"""The fixed first bytes of every commit frame; a record's word never has bit 30 set."""


def frame_parts(seq: int, payload: bytes) -> tuple[bytes, bytes]:
    """Header and payload of one record frame, ready for `b"".join` without a payload copy."""
    word = len(payload)
    crc = _crc_extend(_crc_value(payload), _WORD_SEQ.pack(word, seq))
    return HEADER.pack(word, crc, seq), payload


def commit_frame(seq: int, start: int, batch: bytes) -> tuple[bytes, int]:
    """The commit frame closing `batch` (the frames written at offset `start`, whose last record
    is `seq`), and its CRC (what a checkpoint pins)."""
    body = _COMMIT_BODY.pack(start, _crc_value(batch))
    crc = _crc_extend(_crc_value(body), _WORD_SEQ.pack(COMMIT_WORD, seq))
    return HEADER.pack(COMMIT_WORD, crc, seq) + body, crc


class Stop(enum.Enum):
    """Why a scan stopped. END is the only clean reason."""

    END = "end"
    SHORT = "short frame"
    LENGTH = "length beyond limit"
    CRC = "checksum mismatch"
    SEQ = "wrong seq"
    COMMIT = "commit frame does not close its batch"


class Record(NamedTuple):
    """One record as stored: its seq, its payload, and the offset of its frame."""

    seq: int
    payload: bytes
    offset: int


class Commit(NamedTuple):
    """A commit frame: where it is, the last seq of its batch, where the batch starts, and the
    frame's CRC (which covers the batch's CRC, so it pins every byte of the batch)."""

    offset: int
    seq: int
    start: int
    crc: int

    @property
    def end(self) -> int:
        return self.offset + COMMIT_SIZE


def commit_at(buf: bytes, offset: int) -> Commit | None:
    """The whole commit frame at `offset`, if one is there and its own CRC verifies."""
    if offset < 0 or offset + COMMIT_SIZE > len(buf):
        return None
    word, crc, seq = HEADER.unpack_from(buf, offset)
    if word != COMMIT_WORD:
        return None
    body = buf[offset + HEADER_SIZE : offset + COMMIT_SIZE]
    if _crc_extend(_crc_value(body), _WORD_SEQ.pack(word, seq)) != crc:
        return None
    start, _ = _COMMIT_BODY.unpack(body)
    return Commit(offset, seq, start, crc)


class FrameScan:
    """Iterates the records of the complete batches of a buffer, in order.

    A batch's records are held back until its commit frame has been validated, so no consumer
    ever sees part of a write. A length is never trusted past MAX_PAYLOAD or the buffer's end,
    so a flipped bit cannot make a reader allocate gigabytes or swallow the records after.

    Once the iteration has run to its end: `stop` says why it stopped (END is the only clean
    reason) at `stop_offset`, where a frame with seq `next_seq` was expected; `good_end` and
    `good_seq` mark the end of the last complete batch (short of `stop_offset` when the frames
    of an unclosed batch trail), `commit` is that batch's commit frame. This loop is the whole
    cost of a replay's read side, hence the local aliases and the inlined checksums.
    """

    def __init__(self, buf: bytes, offset: int, next_seq: int) -> None:
        self.buf = buf
        self.next_seq = next_seq
        self.stop = Stop.END
        self.stop_offset = offset
        self.good_end = offset
        self.good_seq = next_seq - 1
        self.commit: Commit | None = None

    @property
    def clean(self) -> bool:
        """Ended exactly at the end of a complete batch and of the buffer."""
        return self.stop is Stop.END and self.good_end == self.stop_offset

    def __iter__(self) -> Iterator[Record]:
        buf = self.buf
        end = len(buf)
        offset = batch_start = self.stop_offset
        seq = self.next_seq
        unpack = HEADER.unpack_from
        unpack_body = _COMMIT_BODY.unpack_from
        pack_word_seq = _WORD_SEQ.pack
        crc_value = _crc_value
        crc_extend = _crc_extend
        stop = Stop.END
        batch: list[Record] = []
        try:
            while offset != end:
                if offset + HEADER_SIZE > end:
                    stop = Stop.SHORT
                    break
                word, crc, frame_seq = unpack(buf, offset)
                if word > MAX_PAYLOAD:
                    if word != COMMIT_WORD:
                        stop = Stop.LENGTH
                        break
                    body_end = offset + COMMIT_SIZE
                    if body_end > end:
                        stop = Stop.SHORT
                        break
                    body = buf[offset + HEADER_SIZE : body_end]
                    if crc_extend(crc_value(body), pack_word_seq(word, frame_seq)) != crc:
                        stop = Stop.CRC
                        break
                    start, batch_crc = unpack_body(body)
                    if (
                        not batch
                        or frame_seq != seq - 1
                        or start != batch_start
                        or crc_value(buf[start:offset]) != batch_crc
                    ):
                        stop = Stop.COMMIT
                        break
                    self.commit = Commit(offset, frame_seq, start, crc)
                    offset = batch_start = self.good_end = body_end
                    self.good_seq = frame_seq
                    yield from batch
                    batch = []
                    continue
                body_end = offset + HEADER_SIZE + word
                if body_end > end:
                    stop = Stop.SHORT
                    break
                payload = buf[offset + HEADER_SIZE : body_end]
                if crc_extend(crc_value(payload), pack_word_seq(word, frame_seq)) != crc:
                    stop = Stop.CRC
                    break
                if frame_seq != seq:
                    stop = Stop.SEQ
                    break
                batch.append(Record(seq, payload, offset))
                seq += 1
                offset = body_end
        finally:
            self.stop = stop
            self.stop_offset = offset
            self.next_seq = seq


_ZERO_CHUNK = 1 << 20


def data_end(buf: bytes, start: int) -> int:
    """Offset just past the last non-zero byte at or after `start` (`start` if none).

    Zeros are free space: preallocated, or pages a power cut never wrote. Scanned a chunk at a
    time from the end, since the preallocated tail of a fresh segment is most of its size.
    """
    end = len(buf)
    while end > start:
        low = max(start, end - _ZERO_CHUNK)
        chunk = buf[low:end]
        if chunk.count(0) != len(chunk):
            return low + len(chunk.rstrip(b"\0"))
        end = low
    return start


def later_commit(buf: bytes, good_end: int, end: int) -> Commit | None:
    """A valid commit frame in [good_end, end) that does not close the batch starting at
    `good_end`.

    Such a frame was written by a later write, and the writer starts a write only after the
    previous one is on disk: its presence proves the bytes at `good_end` had been synced, so
    damage there is corruption, not a torn write. Candidates are found with a C-speed `find`
    of the commit frame's fixed first bytes over the whole rest of the data (no budget), each
    checked by its CRC.
    """
    position = buf.find(COMMIT_MARK, good_end, end)
    while position != -1:
        found = commit_at(buf, position)
        if found is not None and found.start != good_end:
            return found
        position = buf.find(COMMIT_MARK, position + 1, end)
    return None
