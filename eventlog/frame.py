"""Record framing: `word u32 | crc32c u32 | seq u64 | payload`, little-endian.

`word` holds the payload length in its low 30 bits and, in bit 31, the *continues* flag: the
record is part of a multi-record group (`append_many`) and is not the group's last. A group is
all-or-nothing: a reader never yields a group whose last record is missing, and tail repair cuts
an unfinished group whole. The CRC covers payload, word and seq (in that order, so
the writer needs no copy of the payload), so a flipped flag or length is caught like any other
damage.
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
_SEQ = struct.Struct("<Q")
_WORD_SEQ = struct.Struct("<IQ")

MAX_PAYLOAD = 16 * 2**20
CONTINUES = 1 << 31
LENGTH_MASK = (1 << 30) - 1
_RESERVED = 1 << 30


def frame_parts(seq: int, payload: bytes, continues: bool) -> tuple[bytes, bytes]:
    """Header and payload of one frame, ready for `b"".join` without an extra payload copy."""
    word = (len(payload) | CONTINUES) if continues else len(payload)
    crc = _crc_extend(_crc_value(payload), _WORD_SEQ.pack(word, seq))
    return HEADER.pack(word, crc, seq), payload


def frame_size(payload: bytes) -> int:
    return HEADER_SIZE + len(payload)


def _checksum(word: int, seq: int, payload: bytes) -> int:
    """The frame CRC, computed exactly as frame_parts computes it."""
    return int(_crc_extend(_crc_value(payload), _WORD_SEQ.pack(word, seq)))


class Stop(enum.Enum):
    """Why a scan stopped. END is the only clean reason."""

    END = "end"
    SHORT = "short frame"
    LENGTH = "length beyond limit"
    CRC = "checksum mismatch"
    SEQ = "wrong seq"


class Record(NamedTuple):
    """One record as stored: its seq and payload, and where it sits (offset and CRC, which is
    all a checkpoint needs). `continues` marks a record of an unfinished append_many group."""

    seq: int
    payload: bytes
    continues: bool
    offset: int
    crc: int


class FrameScan:
    """Iterates the valid, consecutive records of a buffer, complete append_many groups only.

    A group's records are held back until its last frame has been validated, so no consumer
    ever sees half a group. A length field is never trusted past MAX_PAYLOAD or the buffer's
    end, so a flipped bit cannot make a reader allocate gigabytes or swallow the records after.

    Once the iteration has run to its end: `stop` says why it stopped (END is the only clean
    reason) at `stop_offset`; `next_seq` is the seq the next frame would need; `good_end` and
    `good_seq` mark the end of the last complete group (short of `stop_offset` when an
    unfinished group trails). This loop is the whole cost of a replay's read side, hence the
    local aliases and the inlined checksum.
    """

    def __init__(self, buf: bytes, offset: int, next_seq: int) -> None:
        self.buf = buf
        self.next_seq = next_seq
        self.stop = Stop.END
        self.stop_offset = offset
        self.good_end = offset
        self.good_seq = next_seq - 1

    def __iter__(self) -> Iterator[Record]:
        buf = self.buf
        end = len(buf)
        offset = good_end = self.stop_offset
        seq = self.next_seq
        good_seq = seq - 1
        unpack = HEADER.unpack_from
        pack_word_seq = _WORD_SEQ.pack
        crc_value = _crc_value
        crc_extend = _crc_extend
        stop = Stop.END
        group: list[Record] = []
        try:
            while offset != end:
                if offset + HEADER_SIZE > end:
                    stop = Stop.SHORT
                    break
                word, crc, frame_seq = unpack(buf, offset)
                length = word & LENGTH_MASK
                if length > MAX_PAYLOAD or word & _RESERVED:
                    stop = Stop.LENGTH
                    break
                body_end = offset + HEADER_SIZE + length
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
                record = Record(seq, payload, word >= CONTINUES, offset, crc)
                seq += 1
                offset = body_end
                if record.continues:
                    group.append(record)
                    continue
                good_end, good_seq = offset, record.seq
                if group:
                    yield from group
                    group = []
                yield record
        finally:
            self.stop = stop
            self.stop_offset = offset
            self.next_seq = seq
            self.good_end = good_end
            self.good_seq = good_seq


def frame_at(buf: bytes, offset: int, seq: int) -> Record | None:
    """The whole, valid frame with exactly this seq starting at offset, if there is one."""
    if offset < 0 or offset + HEADER_SIZE > len(buf):
        return None
    word, crc, frame_seq = HEADER.unpack_from(buf, offset)
    length = word & LENGTH_MASK
    if frame_seq != seq or length > MAX_PAYLOAD or word & _RESERVED:
        return None
    body_end = offset + HEADER_SIZE + length
    if body_end > len(buf):
        return None
    payload = buf[offset + HEADER_SIZE : body_end]
    if _checksum(word, frame_seq, payload) != crc:
        return None
    return Record(seq, payload, word >= CONTINUES, offset, crc)


_SEARCH_BUDGET = 512 * 2**20


def find_frame_after(buf: bytes, start: int, next_seq: int) -> int | None:
    """Offset of a valid frame beyond damage at `start`, or None if the rest holds none.

    A torn write leaves nothing valid after it; a valid frame after the damage means acknowledged
    records sit behind it, so the damage is corruption. Frames keep their positions, so we search
    for the exact seq bytes of the next few expected records (a C-speed `find` per candidate)
    rather than trying every offset in Python. The candidate count shrinks with the tail's size to
    bound the work; a span of damage that swallows more records than that is not recognised here,
    which is why open also refuses to cut below a seq a snapshot already covers.
    """
    end = _data_end(buf, start)
    tail = end - start
    if tail <= HEADER_SIZE:
        return None
    candidates = max(16, min(4096, _SEARCH_BUDGET // tail))
    best: int | None = None
    for seq in range(next_seq, next_seq + candidates):
        needle = _SEQ.pack(seq)
        position = buf.find(needle, start + 8, end)
        while position != -1:
            header = position - 8
            if best is not None and header >= best:
                break
            if frame_at(buf, header, seq) is not None:
                best = header
                break
            position = buf.find(needle, position + 1, end)
    return best


_ZERO_CHUNK = 1 << 20


def _data_end(buf: bytes, start: int) -> int:
    """Offset just past the last non-zero byte at or after `start` (preallocated zeros hold no
    frame, and skipping them keeps the search cheap in a mostly empty segment)."""
    end = len(buf)
    while end > start:
        low = max(start, end - _ZERO_CHUNK)
        kept = len(buf[low:end].rstrip(b"\0"))
        if kept:
            return low + kept
        end = low
    return start


def is_zero_fill(buf: bytes, start: int) -> bool:
    """Preallocated or never-written space: not damage. Checked a chunk at a time, since the
    preallocated tail of a fresh segment is most of its 64 MiB."""
    for offset in range(start, len(buf), _ZERO_CHUNK):
        chunk = buf[offset : offset + _ZERO_CHUNK]
        if chunk.count(0) != len(chunk):
            return False
    return True
