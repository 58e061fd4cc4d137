"""`rewind bench api`, briefly: the shape and sanity of its result, never its timings.

One short run of the real thing (rewind serve, the baseline, the generator, all subprocesses)
checks the keys clients of the JSON rely on, that every rate and latency is a positive number,
that the generator's capacity check was made, and that the production install serves with
uvloop and httptools. The load generator's reading of answers is checked on its own against a
tiny asyncio server: what it counts, and what it refuses to guess at.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.bench_api_load import LoadResult, LoadSpec, drive
from tools.cli import app

POSITIVE = (
    "creates_per_s",
    "p50_ms",
    "p99_ms",
    "baseline_per_s",
    "baseline_p50_ms",
    "baseline_p99_ms",
    "ratio_vs_baseline",
    "generator_capacity_per_s",
    "generator_headroom",
    "generator_cpu_us_per_request",
    "rewind_cpu_us_per_create",
    "baseline_cpu_us_per_create",
    "cpu_ratio_vs_baseline",
    "generator_ceiling_per_s",
    "jobs_created",
)


def test_short_run_json_keys_and_sanity(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(
        app,
        [
            "bench",
            "api",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--clients",
            "8",
            "--json",
            "--dir",
            str(tmp_path),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    for key in POSITIVE:
        assert result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["baseline_p50_ms"] <= result["baseline_p99_ms"]
    assert result["ratio_vs_baseline"] == pytest.approx(
        result["creates_per_s"] / result["baseline_per_s"], rel=0.01
    )
    assert isinstance(result["generator_capacity_ok"], bool)
    assert result["generator_capacity_ok"] == (
        result["generator_capacity_per_s"]
        >= 2 * max(result["creates_per_s"], result["baseline_per_s"])
    )
    assert result["clients"] == 8
    for key in ("creates_per_s_rounds", "baseline_per_s_rounds", "generator_capacity_per_s_rounds"):
        assert len(result[key]) == 1, key
    assert result["uvloop_installed"] and result["httptools_installed"]
    assert result["rewind_uses_uvloop"] is True
    assert result["rewind_uses_httptools"] is True
    assert result["baseline_uses_uvloop"] is True
    assert result["baseline_uses_httptools"] is True
    assert list(tmp_path.iterdir()) == [], "the scratch directory is removed"


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _answering(answer: bytes) -> Handler:
    """A keep-alive server giving `answer` to every request (it reads up to the blank line)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


async def _drive_against(answer: bytes, seconds: float = 0.3) -> LoadResult:
    server = await asyncio.start_server(_answering(answer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        spec = LoadSpec(
            host="127.0.0.1",
            port=port,
            method="GET",
            path="/ping",
            clients=4,
            warmup=0.1,
            seconds=seconds,
        )
        return await drive(spec)
    finally:
        server.close()
        await server.wait_closed()


def test_generator_counts_every_answer_in_the_window() -> None:
    result = asyncio.run(_drive_against(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong"))
    assert result.requests > 0
    assert result.statuses == {"200": result.requests}
    assert len(result.latencies_us) == result.requests
    assert result.total_requests > result.requests, "warm-up answers are not counted"
    assert result.per_s == pytest.approx(result.requests / 0.3)
    assert result.unexpected_sample is None


def test_generator_tallies_errors_with_a_sample() -> None:
    body = b'{"detail":"the log failed"}'
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    result = asyncio.run(_drive_against(answer))
    assert result.statuses == {"503": result.requests}
    assert result.unexpected_sample is not None
    assert "the log failed" in result.unexpected_sample


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npong\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\npong",
        b"HTTP/1.1 200 OK\r\n\r\npong",
    ],
    ids=["chunked", "connection-close", "no-length"],
)
def test_generator_refuses_answers_it_would_have_to_guess_at(answer: bytes) -> None:
    with pytest.raises(RuntimeError, match="unsupported answer"):
        asyncio.run(_drive_against(answer))
