"""The property every change keeps (DESIGN.md): snapshot(at k) + replay(k..n) == replay(1..n),
checked on real logs in real data directories, with snapshots taken the way the server takes
them (the writer's checkpoint at k, the state folded so far), across segment rotations and
append_many groups. Also: replay is the same in every process, whatever its hash seed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventlog import EventLog
from eventlog.segment import list_segments
from projections import encode_state
from projections.plain import as_plain
from service.layout import DataDir
from service.state_store import load_state
from tests.service.helpers import ROOT, fold, full_replay, history, make_with_snapshots
from tools.cli import app

PROPERTY = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    n = draw(st.integers(1, 220))
    k = draw(st.integers(0, n))
    seed = draw(st.integers(0, 10_000))
    group_seed = draw(st.integers(0, 10_000))
    segment_bytes = draw(st.sampled_from([600, 2048, 8192, 1 << 20]))
    return n, k, seed, group_seed, segment_bytes


@PROPERTY
@given(scenarios(), st.data())
def test_snapshot_at_k_plus_tail_equals_full_replay(
    scenario: tuple[int, int, int, int, int], data: st.DataObject
) -> None:
    n, k, seed, group_seed, segment_bytes = scenario
    payloads = history(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, checkpoints = make_with_snapshots(
            Path(tmp) / "data",
            payloads,
            [k] if k else [],
            rng=random.Random(group_seed),
            segment_bytes=segment_bytes,
        )
        expected = encode_state(fold(payloads))
        assert full_replay(data_dir) == expected

        state, report = load_state(data_dir)
        assert encode_state(state) == expected
        assert report.events_replayed == n - k
        assert report.snapshot_seq == (k or None)
        assert report.skipped_snapshots == []
        assert report.last_seq == n

        # The server's path: a writer opened at the snapshot's checkpoint, then load_state on it.
        checkpoint = checkpoints.get(k)
        with EventLog.open(data_dir.log, segment_bytes=segment_bytes, checkpoint=checkpoint) as log:
            assert log.last_seq == n
            if checkpoint is not None and checkpoint.segment == list_segments(log.path)[-1][0]:
                assert log.recovery.scanned_from_seq == k, "open should start at the checkpoint"
            state, report = load_state(data_dir, log=log)
        assert encode_state(state) == expected
        assert report.events_replayed == n - k

        # Any earlier point: the newest snapshot at or before it, then the rest.
        at = data.draw(st.integers(0, n + 3), label="at")
        state, report = load_state(data_dir, at=at)
        assert encode_state(state) == encode_state(fold(payloads, at))
        base = k if k and k <= at else 0
        assert report.snapshot_seq == (base or None)
        assert report.events_replayed == min(at, n) - base


def _cli_state(data_dir: DataDir, *args: str) -> dict[str, object]:
    command = ["state", str(data_dir.root), *args, "--json", "--show-secrets"]  # all of it
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    body = msgspec.json.decode(result.stdout.strip().splitlines()[-1])
    assert isinstance(body, dict)
    return body


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 150),
    k=st.integers(0, 150),
    seed=st.integers(0, 1000),
    at=st.integers(0, 160),
)
def test_state_at_equals_replay_of_first_events(n: int, k: int, seed: int, at: int) -> None:
    """`rewind state --at K --json` shows exactly the state after the first K events."""
    k = min(k, n)
    payloads = history(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, _ = make_with_snapshots(Path(tmp) / "data", payloads, [k] if k else [])
        body = _cli_state(data_dir, "--at", str(at))
    expected = fold(payloads, at)
    assert body["seq"] == min(at, n) == expected.last_seq
    assert body["state"] == msgspec.json.decode(msgspec.json.encode(as_plain(expected)))
    load = body["load"]
    assert isinstance(load, dict)
    assert load["events_replayed"] == min(at, n) - (k if k and k <= at else 0)


_CHILD = """
import sys
from pathlib import Path
from projections import encode_state
from service.layout import DataDir
from service.state_store import load_state
state, report = load_state(DataDir.at(Path(sys.argv[1])))
sys.stdout.write(encode_state(state).hex() + " " + str(report.events_replayed))
"""


def test_replay_is_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    payloads = history(2500, seed=99)
    data_dir, _ = make_with_snapshots(tmp_path / "data", payloads, [1200])
    expected = encode_state(fold(payloads))
    outputs = []
    for hash_seed in ("0", "1", "4242", "random"):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(data_dir.root)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)},
        )
        assert child.returncode == 0, child.stderr
        state_hex, replayed = child.stdout.split()
        assert bytes.fromhex(state_hex) == expected, f"PYTHONHASHSEED={hash_seed}"
        assert replayed == str(2500 - 1200)
        outputs.append(child.stdout)
    assert len(set(outputs)) == 1


def test_cli_state_json_is_identical_across_hash_seeds(tmp_path: Path) -> None:
    payloads = history(1500, seed=5)
    data_dir, _ = make_with_snapshots(tmp_path / "data", payloads, [])
    rewind = Path(sys.executable).with_name("rewind")
    outputs = set()
    for hash_seed in ("0", "123", "98765"):
        child = subprocess.run(
            [str(rewind), "state", str(data_dir.root), "--json", "--show-secrets"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert child.returncode == 0, child.stderr
        body = msgspec.json.decode(child.stdout)
        assert body["seq"] == 1500
        assert body["state"] == msgspec.json.decode(msgspec.json.encode(as_plain(fold(payloads))))
        body["load"].pop("seconds")
        outputs.add(msgspec.json.encode(body))
    assert len(outputs) == 1
