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
    "00000000000000000001.seg": "5f9088349708f4f2d3c85225cf87333304381fab3cf3b3904d9dea7736e9d9da",
    "00000000000000001661.seg": "85b2f0898901141510bb11e2f53fd3c8c4eb1f5eca6f87c02d4d7c35b3a8fecd",
    "00000000000000003457.seg": "0b75ff5ae14eb2b12d93029412cecba1b6db3f34b97cd781b23201a0e42961fe",
    "00000000000000005236.seg": "1462800b393b9eab3f0c667be7a9823160fea092008cbc21f3d1a9eab2d5dfa1",
    "00000000000000006978.seg": "2704dbd39cfc174aabe144f2c8b6cf9fc22ff44c82a409c32524637c4491fcf0",
    "00000000000000008799.seg": "eaeafec60b2d7ba42ed06655b884aebe5d277a5b14c5a3c4c82f4ae8923969ce",
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
