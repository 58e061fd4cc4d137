"""The golden-v2 log (tests/fixtures/golden-v2), written under the v2 rules with crashes and
every event type, replays to the stored state, byte for byte, breaking no rule, forever; and
read-only tools leave it untouched."""

from __future__ import annotations

import hashlib

import msgspec

from eventlog import EventLog
from projections import SCHEMA_VERSION, State, check, decode, encode_state, evolve
from projections.events import EVENT_TYPES, EventRetired, JobLost, JobReattached
from projections.invariants import check_structure
from tests.service.helpers import ROOT, run_rewind
from tests.service.test_golden import tree_digest

GOLDEN = ROOT / "tests" / "fixtures" / "golden-v2"
EXPECTED = GOLDEN / "expected-state.msgpack"
EVENTS = 10_001
DIGESTS = {
    "00000000000000000001.seg": "a5e2df59020058a4d4d83ee818fc10b21c0d577a2b5fdae721f6b24565faa25a",
    "00000000000000002215.seg": "6e5d6a57b4f349e88ee1029d44be96c3bc8f2b8d0bd1ebcba50d7394d873eaf7",
    "00000000000000004532.seg": "ecaa165b07b23deae48b71759858ccfc8c6d4bcfc5ca4bc9eb376ebbd59cbead",
    "00000000000000006784.seg": "556aed483123a7cca28ebaeae336810059281401b685d9f3c6760d29ca507386",
    "00000000000000009096.seg": "6a7e6532ef8167823dcee39c7b278d7b2675ead83404ed3ef0cfba7ea2878388",
}


def test_golden_v2_log_is_the_committed_one() -> None:
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (GOLDEN / "log").iterdir()}
    assert found == DIGESTS


def test_golden_v2_replays_to_the_stored_state_breaking_no_rule() -> None:
    state = State()
    seen: set[type] = set()
    with EventLog.open_readonly(GOLDEN / "log") as log:
        assert (log.first_seq, log.last_seq) == (1, EVENTS)
        for record in log.read(1):
            assert record.payload[1] == SCHEMA_VERSION
            envelope = decode(record.payload)
            evolve(state, record.seq, envelope)
            seen.add(type(envelope.event))
            assert state.anomalies == [], (record.seq, state.anomalies)
            if record.seq % 500 == 0:
                assert check_structure(state) == [], record.seq
    assert check(state) == []
    assert encode_state(state) == EXPECTED.read_bytes()
    assert set(EVENT_TYPES) - seen == {EventRetired}, "every event type of the schema is there"
    assert state.server.crash_seqs, "crashes and their recoveries"
    assert JobLost in seen and JobReattached in seen


def test_golden_v2_through_the_cli_is_clean_and_read_only() -> None:
    before = tree_digest(GOLDEN)
    deep = run_rewind("log", "verify", GOLDEN, "--deep", "--json")
    assert deep.returncode == 0, deep.stdout + deep.stderr
    body = msgspec.json.decode(deep.stdout)
    assert body["healthy"] is True and body["deep"] == [] and body["records"] == EVENTS
    crashes = run_rewind("crashes", GOLDEN, "--json")
    assert crashes.returncode == 0 and crashes.stdout.count("\n") >= 1
    state = run_rewind("state", GOLDEN, "--json")
    assert state.returncode == 0 and msgspec.json.decode(state.stdout)["seq"] == EVENTS
    assert tree_digest(GOLDEN) == before, "read-only tools modified the golden fixture"
