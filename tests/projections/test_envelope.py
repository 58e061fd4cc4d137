"""Envelope round trips for every event type, and how unreadable payloads fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import (
    SCHEMA_VERSION,
    Envelope,
    ProjectionError,
    UnknownEventError,
    decode,
    encode,
)
from projections.envelope import UPCASTERS, register_upcaster
from projections.events import EVENT_TYPES, JobCreated, JobEnqueued
from tests.projections.helpers import created, env


def _strategy(info: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """A strategy for any type the catalogue uses, read from msgspec's own type description."""
    mi = msgspec.inspect
    if isinstance(info, mi.StrType):
        return st.text(max_size=20)
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        return st.integers(min_value=-(2**63), max_value=2**64 - 1)
    if isinstance(info, mi.FloatType):
        return st.floats(allow_nan=False)
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    if isinstance(info, mi.UnionType):
        return st.one_of([_strategy(t) for t in info.types])
    if isinstance(info, mi.ListType):
        return st.lists(_strategy(info.item_type), max_size=3)
    if isinstance(info, mi.DictType):
        return st.dictionaries(_strategy(info.key_type), _strategy(info.value_type), max_size=3)
    if isinstance(info, mi.StructType):
        fields = {f.name: _strategy(f.type) for f in info.fields}
        return st.fixed_dictionaries(fields).map(lambda kw: info.cls(**kw))
    raise AssertionError(f"no strategy for {info!r}")


def _event_strategy(cls: type) -> st.SearchStrategy[Any]:
    return _strategy(msgspec.inspect.type_info(cls))


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_event_type_round_trips(cls: type, data: st.DataObject) -> None:
    event = data.draw(_event_strategy(cls))
    request = data.draw(st.none() | st.text(max_size=10))
    envelope = Envelope(SCHEMA_VERSION, 1_700_000_000.25, "alice", request, event)
    decoded = decode(encode(envelope))
    assert decoded == envelope
    assert type(decoded.event) is cls


def test_decode_accepts_memoryview() -> None:
    envelope = env(JobEnqueued(job_id="j1", at=5.0))
    assert decode(memoryview(encode(envelope))) == envelope


def test_events_are_written_as_tag_then_fields() -> None:
    raw = msgspec.msgpack.decode(encode(env(JobEnqueued(job_id="j1", at=5.0))))
    assert raw[0] == SCHEMA_VERSION
    assert raw[4] == ["job.enqueued", "j1", 5.0], "an array: the tag, then the fields in order"


def _payload(version: int, event: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode([version, 1.0, "system", None, event])


def test_unknown_event_type_at_current_version_fails_loudly() -> None:
    with pytest.raises(UnknownEventError, match=r"'job\.teleported'"):
        decode(_payload(SCHEMA_VERSION, {"type": "job.teleported", "job_id": "j1"}))


def test_newer_schema_version_names_the_event_and_versions() -> None:
    payload = _payload(SCHEMA_VERSION + 1, {"type": "x", "job_id": "j1"})
    with pytest.raises(UnknownEventError) as info:
        decode(payload)
    assert str(info.value) == (
        f"event type 'x' at schema v{SCHEMA_VERSION + 1} was written by a newer rewind; "
        f"this build reads up to v{SCHEMA_VERSION}"
    )


def test_known_type_with_bad_fields_is_malformed_not_unknown() -> None:
    with pytest.raises(ProjectionError, match=r"malformed event 'job\.enqueued'") as info:
        decode(_payload(SCHEMA_VERSION, {"type": "job.enqueued", "job_id": 7}))
    assert not isinstance(info.value, UnknownEventError)


def test_garbage_is_a_projection_error() -> None:
    with pytest.raises(ProjectionError):
        decode(b"\x95\x01\xc1")
    with pytest.raises(ProjectionError):
        decode(b"\x81\xa1a\x01")


def test_older_version_without_upcaster_fails() -> None:
    with pytest.raises(ProjectionError, match="no upcaster from schema v0"):
        decode(_payload(0, {"type": "job.enqueued", "job_id": "j1"}))


@pytest.fixture
def v0_upcaster() -> Iterator[None]:
    """Pretend v0 called the repository field ``repository`` and had no callbacks; its
    payloads then go through the real v1 -> v2 step too."""

    def lift(raw: dict[str, Any]) -> dict[str, Any]:
        event = dict(raw["event"])
        if event["type"] == "job.created":
            event["repo"] = event.pop("repository")
            event.setdefault("callbacks", [])
        return {**raw, "event": event}

    register_upcaster(0, lift)
    try:
        yield
    finally:
        del UPCASTERS[0]


@pytest.mark.usefixtures("v0_upcaster")
def test_upcaster_lifts_old_payloads() -> None:
    old: dict[str, Any] = {
        "type": "job.created",
        "job_id": "j1",
        "owner": "alice",
        "prompt": "fix the tests",
        "repository": "api",
        "agent": "claude-code",
        "options": {},
        "idempotency_key_hash": None,
    }
    decoded = decode(_payload(0, old))
    assert decoded.v == SCHEMA_VERSION
    assert decoded.event == created("j1")
    assert isinstance(decoded.event, JobCreated)


@pytest.mark.usefixtures("v0_upcaster")
def test_upcast_to_an_unknown_type_is_unknown() -> None:
    with pytest.raises(UnknownEventError, match=r"'job\.vanished'"):
        decode(_payload(0, {"type": "job.vanished"}))


@pytest.mark.usefixtures("v0_upcaster")
def test_upcaster_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_upcaster(0, lambda raw: raw)
