"""Turning a raw log payload into something a person or a JSON consumer can read."""

from __future__ import annotations

from typing import Any

import msgspec

from projections import ProjectionError, decode
from projections.events import tag_of
from projections.plain import fields_of


def describe(seq: int, payload: bytes) -> dict[str, Any]:
    """The record as a dict: decoded envelope when it is an event, hex otherwise."""
    try:
        envelope = decode(payload)
    except (ProjectionError, msgspec.MsgspecError, IndexError) as err:
        return {"seq": seq, "size": len(payload), "hex": payload.hex(), "undecodable": str(err)}
    return {
        "seq": seq,
        "size": len(payload),
        "ts": envelope.ts,
        "actor": envelope.actor,
        "request": envelope.request,
        "type": tag_of(type(envelope.event)),
        "event": fields_of(envelope.event),
    }
