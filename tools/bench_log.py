"""`rewind bench log`: durable appends/s of rewind against baselines measured in the same run.

Baselines, all on the same disk and with the same payloads: a bare write+fdatasync loop (the
floor for one writer, as the targets define it); the same loop writing into preallocated space
(what rewind's segments do: its cost without any of rewind's machinery); SQLite in WAL mode
with synchronous=FULL and one transaction per event (the usual embedded choice); and one JSON
file per event written atomically (how the original server stored job state). Rounds
interleave the measurements so a drifting disk hurts all of them alike; each figure is the
median over rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eventlog import EventLog, atomic_write, fsync_dir

PAYLOAD_BYTES = 200


def run(seconds: float, directory: Path, rounds: int = 3) -> dict[str, float]:
    """Events/s per contender (median of `rounds`), plus the ratios the targets are set on."""
    payload = os.urandom(PAYLOAD_BYTES // 2).hex().encode()
    contenders: dict[str, Callable[[Path, float, bytes], float]] = {
        "rewind_64": lambda d, s, p: asyncio.run(_rewind(d, s, p, writers=64)),
        "rewind_1": lambda d, s, p: asyncio.run(_rewind(d, s, p, writers=1)),
        "raw_fsync": _raw_fsync,
        "raw_fsync_preallocated": _raw_fsync_preallocated,
        "sqlite_full": _sqlite_full,
        "atomic_json": _atomic_json,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    per_run = seconds / rounds
    for _ in range(rounds):
        for name, measure in contenders.items():
            scratch = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=directory))
            try:
                samples[name].append(measure(scratch, per_run, payload))
            finally:
                shutil.rmtree(scratch)
    result = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    result["ratio_rewind_64_vs_sqlite"] = round(result["rewind_64"] / result["sqlite_full"], 2)
    result["ratio_rewind_64_vs_atomic_json"] = round(result["rewind_64"] / result["atomic_json"], 2)
    result["ratio_rewind_1_vs_raw_fsync"] = round(result["rewind_1"] / result["raw_fsync"], 3)
    result["ratio_rewind_1_vs_raw_fsync_preallocated"] = round(
        result["rewind_1"] / result["raw_fsync_preallocated"], 3
    )
    result["payload_bytes"] = PAYLOAD_BYTES
    result["seconds_per_measurement"] = round(per_run, 3)
    return result


async def _rewind(directory: Path, seconds: float, payload: bytes, writers: int) -> float:
    log = EventLog.open(directory / "log")
    acknowledged = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal acknowledged
        while time.perf_counter() < deadline:
            await log.append(payload)
            acknowledged += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(writer() for _ in range(writers)))
    finally:
        log.close()
    return acknowledged / (time.perf_counter() - started)


def _raw_fsync(directory: Path, seconds: float, payload: bytes) -> float:
    fd = os.open(directory / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    try:
        while time.perf_counter() < deadline:
            os.write(fd, payload)
            os.fdatasync(fd)
            done += 1
    finally:
        os.close(fd)
    return done / (time.perf_counter() - started)


def _raw_fsync_preallocated(directory: Path, seconds: float, payload: bytes) -> float:
    fd = os.open(directory / "raw", os.O_WRONLY | os.O_CREAT, 0o644)
    done = offset = 0
    try:
        os.posix_fallocate(fd, 0, 64 * 2**20)
        os.fsync(fd)
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, payload, offset)
            os.fdatasync(fd)
            offset += len(payload)
            done += 1
    finally:
        os.close(fd)
    return done / (time.perf_counter() - started)


def _sqlite_full(directory: Path, seconds: float, payload: bytes) -> float:
    db = sqlite3.connect(directory / "events.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            db.execute("BEGIN")
            db.execute("INSERT INTO events (payload) VALUES (?)", (payload,))
            db.execute("COMMIT")
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        db.close()


def _atomic_json(directory: Path, seconds: float, payload: bytes) -> float:
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        document = json.dumps({"seq": done + 1, "payload": payload.decode()}).encode()
        atomic_write(directory / f"{done + 1}.json", document)
        done += 1
    fsync_dir(directory)
    return done / (time.perf_counter() - started)
