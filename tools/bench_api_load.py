"""The load generator of `rewind bench api`: closed-loop HTTP/1.1 keep-alive clients.

It runs in a process of its own (``python -m tools.bench_api_load``, a `LoadSpec` as JSON on
stdin, a `LoadResult` as JSON on stdout), so its work never shares an event loop, or the GIL,
with the server it measures. httpx's AsyncClient costs so much per request that it measures
itself (about 200 requests/s here); this client is a bare asyncio ``Protocol`` per connection,
driven by callbacks: one request in flight per connection, the next one written from
``data_received`` the moment the previous answer is complete. No coroutine, no parser object,
no header dict per request: the request bytes are built once, and an answer is read by finding
the end of its head and its Content-Length. That is all the servers measured here send (no
chunked bodies, no ``Connection: close``); anything else is reported as an error rather than
guessed at.

A run opens every connection first, then sends for ``warmup`` seconds whose answers are not
counted, then counts for ``seconds``: the answers completed inside that window, with the
latency of each (from its request's write to its answer's last byte).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import sys
import time
import typing
from typing import Final

import msgspec

CONTENT_LENGTH: Final = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CLOSE_OR_CHUNKED: Final = re.compile(
    rb"\r\n(connection:[ \t]*close|transfer-encoding:)", re.IGNORECASE
)
SAMPLE_BYTES: Final = 300
"""How much of an unexpected answer is kept for the error message."""


class LoadSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    host: str
    port: int
    method: str
    path: str
    headers: dict[str, str] = {}
    body: str = ""
    clients: int
    warmup: float
    seconds: float


class LoadResult(msgspec.Struct, kw_only=True):
    requests: int
    """Answers completed inside the measured window."""
    seconds: float
    per_s: float
    latencies_us: list[int]
    """One per counted answer, in completion order."""
    statuses: dict[str, int]
    """Counted answers by HTTP status."""
    unexpected_sample: str | None
    """The first answer whose status was not 2xx, cut short: what went wrong, in its words."""
    total_requests: int
    """Every answer, warm-up included: what the server's CPU time is divided by."""
    cpu_us_per_request: float
    """The generator's own CPU time per answer: its cost, independent of the server's speed."""
    loop: str


class _Window:
    """The shared clock of one run: when counting starts and stops, and the tallies."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.unexpected: str | None = None
        self.total = 0
        self.errors: list[str] = []


class _Client(asyncio.Protocol):
    """One keep-alive connection sending `request` again and again until the window closes."""

    def __init__(self, request: bytes, window: _Window, done: asyncio.Future[None]) -> None:
        self.request = request
        self.window = window
        self.done = done
        self.buffer = bytearray()
        self.need = -1
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.WriteTransport, transport)

    def send(self) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.need < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            length = CONTENT_LENGTH.search(head)
            if length is None or CLOSE_OR_CHUNKED.search(head):
                self._stop(f"unsupported answer (needs Content-Length, keep-alive): {head!r}")
                return
            self.status = int(head[9:12])
            self.need = end + 4 + int(length.group(1))
        if len(buffer) < self.need:
            return
        now = time.perf_counter()
        window = self.window
        window.total += 1
        if window.start <= now <= window.end:
            window.latencies.append(now - self.sent)
            window.statuses[self.status] = window.statuses.get(self.status, 0) + 1
            if not 200 <= self.status < 300 and window.unexpected is None:
                window.unexpected = bytes(buffer[: min(self.need, SAMPLE_BYTES)]).decode(
                    errors="replace"
                )
        if len(buffer) > self.need:
            self._stop("the server sent bytes nobody asked for")
            return
        buffer.clear()
        self.need = -1
        if now < window.end:
            self.send()
        else:
            self._stop(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.window.errors.append(f"connection lost mid-run: {exc!r}")
            self.done.set_result(None)

    def _stop(self, error: str | None) -> None:
        if error is not None:
            self.window.errors.append(error)
        if not self.done.done():
            self.done.set_result(None)
        assert self.transport is not None
        self.transport.close()


def _same(client: _Client) -> _Client:
    """The protocol factory of an already built client (``create_connection`` wants one)."""
    return client


def encode_request(spec: LoadSpec) -> bytes:
    body = spec.body.encode()
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    if body or spec.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def drive(spec: LoadSpec) -> LoadResult:
    """Open `spec.clients` connections, then send until the window closes; the tallies."""
    loop = asyncio.get_running_loop()
    request = encode_request(spec)
    window = _Window(float("inf"), float("inf"))
    clients: list[_Client] = []
    for _ in range(spec.clients):
        client = _Client(request, window, loop.create_future())
        await loop.create_connection(functools.partial(_same, client), spec.host, spec.port)
        clients.append(client)
    cpu_before = time.process_time()
    first = time.perf_counter()
    window.start = first + spec.warmup
    window.end = window.start + spec.seconds
    for client in clients:
        client.send()
    grace = max(30.0, spec.seconds)
    await asyncio.wait_for(
        asyncio.gather(*(c.done for c in clients)), spec.warmup + spec.seconds + grace
    )
    cpu = time.process_time() - cpu_before
    if window.errors:
        raise RuntimeError(f"{len(window.errors)} connection(s) failed; first: {window.errors[0]}")
    return LoadResult(
        requests=len(window.latencies),
        seconds=spec.seconds,
        per_s=len(window.latencies) / spec.seconds,
        latencies_us=[round(latency * 1e6) for latency in window.latencies],
        statuses={str(code): count for code, count in sorted(window.statuses.items())},
        unexpected_sample=window.unexpected,
        total_requests=window.total,
        cpu_us_per_request=cpu * 1e6 / max(window.total, 1),
        loop=type(loop).__module__.split(".")[0],
    )


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=LoadSpec)
    try:
        import uvloop  # noqa: PLC0415 - optional: the fastest loop the install has
    except ImportError:
        result = asyncio.run(drive(spec))
    else:
        result = uvloop.run(drive(spec))
    # the event loop may have left stdout non-blocking: a result larger than the pipe's buffer
    # (every latency sample) would then be cut at 128 KiB
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
