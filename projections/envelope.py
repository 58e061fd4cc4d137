"""The envelope around every event in the log, and its (de)serialisation with schema evolution.

The payload of a log record is one msgpack array ``[v, ts, actor, request, event]``. ``v`` comes
first so a reader can tell the schema version from the first two bytes without decoding
anything: the current version (the overwhelmingly common case in a replay) goes straight to the
typed decoder, one pass. Older payloads are decoded untyped, lifted version by version through
registered upcasters, then converted. Payloads from a newer rewind fail loudly: guessing at
fields we do not know would silently corrupt the state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from projections.errors import ProjectionError, UnknownEventError
from projections.events import TAGS, Event
from projections.plain import from_plain

SCHEMA_VERSION = 2

RawEnvelope = dict[str, Any]
Upcaster = Callable[[RawEnvelope], RawEnvelope]


class Envelope(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """``ts`` is wall clock for display only; order is the log's seq, which is not stored here."""

    v: int
    ts: float
    actor: str
    request: str | None
    event: Event


ENVELOPE_FIELDS: tuple[str, ...] = Envelope.__struct_fields__

UPCASTERS: dict[int, Upcaster] = {}
"""``from_version -> fn``: fn lifts a raw envelope dict (keys ``ENVELOPE_FIELDS``, the event a
plain dict with its ``type``) from ``from_version`` to ``from_version + 1``."""

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Envelope)
_RAW_DECODER = msgspec.msgpack.Decoder()
_ARRAY_HEADER = 0x90 | len(ENVELOPE_FIELDS)


def register_upcaster(from_version: int, fn: Upcaster) -> None:
    """Register the step that lifts payloads written at ``from_version`` by one version."""
    if from_version in UPCASTERS:
        raise ValueError(f"an upcaster from v{from_version} is already registered")
    UPCASTERS[from_version] = fn


def make(event: Event, *, ts: float, actor: str, request: str | None = None) -> Envelope:
    """Wrap an event at the current schema version."""
    return Envelope(SCHEMA_VERSION, ts, actor, request, event)


def encode(env: Envelope) -> bytes:
    return _ENCODER.encode(env)


def decode(payload: bytes | memoryview) -> Envelope:
    """Decode one log payload; raises ``UnknownEventError`` for events this build cannot read."""
    if payload[0] == _ARRAY_HEADER and payload[1] == SCHEMA_VERSION:
        try:
            return _DECODER.decode(payload)
        except msgspec.MsgspecError as exc:
            raise _explain(payload, exc) from exc
    return _decode_other_version(payload)


def _decode_other_version(payload: bytes | memoryview) -> Envelope:
    raw = _decode_raw(payload)
    version = raw["v"]
    if not isinstance(version, int):
        raise ProjectionError(f"envelope version is not an integer: {version!r}")
    if version > SCHEMA_VERSION:
        raise UnknownEventError(
            f"event type {_event_type(raw)!r} at schema v{version} was written by a newer "
            f"rewind; this build reads up to v{SCHEMA_VERSION}"
        )
    while version < SCHEMA_VERSION:
        upcaster = UPCASTERS.get(version)
        if upcaster is None:
            raise ProjectionError(
                f"no upcaster from schema v{version} (event type {_event_type(raw)!r}); "
                f"this build reads v{SCHEMA_VERSION}"
            )
        raw = upcaster(raw)
        version += 1
        raw["v"] = version
    _require_known_type(raw)
    try:
        event = from_plain(raw["event"])
        return Envelope(SCHEMA_VERSION, raw["ts"], raw["actor"], raw["request"], event)
    except (msgspec.ValidationError, KeyError, TypeError) as exc:
        raise ProjectionError(f"upcast event {_event_type(raw)!r} is invalid: {exc}") from exc


def _decode_raw(payload: bytes | memoryview) -> RawEnvelope:
    try:
        raw = _RAW_DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise ProjectionError(f"payload is not msgpack: {exc}") from exc
    if not isinstance(raw, list) or not raw or len(raw) > len(ENVELOPE_FIELDS):
        raise ProjectionError("payload is not an event envelope")
    return dict(zip(ENVELOPE_FIELDS, raw, strict=False))


def _event_type(raw: RawEnvelope) -> str:
    """The tag of a raw event: a dict's ``type`` (old payloads, upcasters) or an array's
    first element (this schema)."""
    event = raw.get("event")
    if isinstance(event, dict):
        return str(event.get("type", "?"))
    if isinstance(event, list) and event:
        return str(event[0])
    return "?"


def _require_known_type(raw: RawEnvelope) -> None:
    event_type = _event_type(raw)
    if event_type not in TAGS:
        raise UnknownEventError(
            f"event type {event_type!r} at schema v{raw['v']} is unknown to this build "
            f"(reads up to v{SCHEMA_VERSION}); was it written by a newer rewind?"
        )


def _explain(payload: bytes | memoryview, exc: msgspec.MsgspecError) -> ProjectionError:
    """Turn a failed fast-path decode into the most specific error we can name."""
    raw = _decode_raw(payload)
    try:
        _require_known_type(raw)
    except UnknownEventError as unknown:
        return unknown
    return ProjectionError(f"malformed event {_event_type(raw)!r}: {exc}")
