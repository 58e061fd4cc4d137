"""Child process for the crash and follower tests: many concurrent writers, forever.

usage: crash_writer.py LOG_DIR SEED [SEGMENT_BYTES] [WRITERS]

Opens the log (repairing whatever the previous, killed, run left), then runs WRITERS asyncio
tasks that append self-describing payloads (see helpers.make_payload) with `append` and
`append_many`. After each acknowledged append it prints one `seq sha256(payload)` line per record
and flushes, so every line on stdout is a promise the log must keep. It never stops by itself:
the test kills it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog import EventLog
from tests.eventlog.helpers import make_payload


def _size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.75:
        return rng.randrange(0, 200)
    if roll < 0.985:
        return rng.randrange(200, 4096)
    return rng.randrange(4096, 128 * 1024)


async def _writer(log: EventLog, rng: random.Random) -> None:
    out = sys.stdout
    while True:
        gid = rng.getrandbits(64)
        count = 1 if rng.random() < 0.6 else rng.randrange(1, 6)
        payloads = [make_payload(rng, gid, i, count, _size(rng)) for i in range(count)]
        if count == 1 and rng.random() < 0.8:
            seqs = [await log.append(payloads[0])]
        else:
            seqs = await log.append_many(payloads)
        out.write(
            "".join(
                f"{seq} {hashlib.sha256(p).hexdigest()}\n"
                for seq, p in zip(seqs, payloads, strict=True)
            )
        )
        out.flush()
        # A little pacing keeps the log (which the test re-reads every round) from growing huge.
        await asyncio.sleep(rng.random() * 0.02)


async def main() -> None:
    path = Path(sys.argv[1])
    seed = int(sys.argv[2])
    segment_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 256 * 1024
    writers = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    log = EventLog.open(path, segment_bytes=segment_bytes)
    tasks = [
        asyncio.create_task(_writer(log, random.Random(f"{seed}/{i}"))) for i in range(writers)
    ]
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
