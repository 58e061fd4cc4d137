"""Appends from several event loops: a loop that is blocked never holds up another's appends."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from eventlog import EventLog


def _wait_idle(log: EventLog) -> None:
    """The writer thread announces it is idle just after it settles a batch."""
    deadline = time.monotonic() + 10
    while not log._idle:  # the precondition of the race: a wake-up will be needed
        assert time.monotonic() < deadline, "the writer never went idle"
        time.sleep(0.001)


def test_a_blocked_loop_does_not_stall_another_loops_appends(tmp_path: Path) -> None:
    """Regression (defect 8): the "wake-up scheduled" flag was shared by every loop, so a loop
    that had scheduled the writer's wake-up and then blocked (before running it) left the
    other loop's appends waiting until it ran again (3 s in the report). Loop A submits an
    append, which schedules A's wake-up, and blocks before it runs; loop B, in another thread,
    must get its append acknowledged meanwhile."""
    other_done = threading.Event()
    other: list[int] = []

    def other_loop(log: EventLog) -> None:
        async def main() -> None:
            other.append(await log.append(b"from loop B"))

        asyncio.run(main())
        other_done.set()

    async def blocking_loop(log: EventLog) -> bool:
        await log.append(b"first")
        _wait_idle(log)
        mine = asyncio.ensure_future(log.append(b"from loop A"))
        await asyncio.sleep(0)  # A's append is submitted; its wake-up is queued behind us
        thread = threading.Thread(target=other_loop, args=(log,))
        thread.start()
        finished = other_done.wait(5)  # blocks loop A: its wake-up cannot run
        assert await mine == 2  # now A's wake-up runs (and frees B, had it been stuck)
        thread.join()
        return finished

    with EventLog.open(tmp_path) as log:
        assert asyncio.run(blocking_loop(log)), "loop B's append waited for the blocked loop A"
        assert other == [3]
        assert [r.payload for r in log.read()] == [b"first", b"from loop A", b"from loop B"]


def test_appends_from_two_loops_at_once(tmp_path: Path) -> None:
    """Two loops in two threads, appending concurrently: every seq once, every payload kept."""
    results: dict[str, list[int]] = {}

    def run(name: str, log: EventLog) -> None:
        async def main() -> list[int]:
            return list(
                await asyncio.gather(*(log.append(f"{name} {i}".encode()) for i in range(300)))
            )

        results[name] = asyncio.run(main())

    with EventLog.open(tmp_path) as log:
        threads = [threading.Thread(target=run, args=(name, log)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seqs = sorted(results["a"] + results["b"])
        assert seqs == list(range(1, 601))
        payloads = {r.seq: r.payload for r in log.read()}
    for name, got in results.items():
        assert [payloads[seq] for seq in got] == [f"{name} {i}".encode() for i in range(300)]
