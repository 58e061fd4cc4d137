"""Turning a raw log payload into something a person or a JSON consumer can read."""

from __future__ import annotations

from typing import Any

import msgspec

from projections import ProjectionError, decode


def describe(seq: int, payload: bytes) -> dict[str, Any]:
    """The record as a dict: decoded envelope when it is an event, hex otherwise."""
    try:
        envelope = decode(payload)
    except (ProjectionError, msgspec.MsgspecError, IndexError) as err:
        return {"seq": seq, "size": len(payload), "hex": payload.hex(), "undecodable": str(err)}
    event: dict[str, Any] = msgspec.to_builtins(envelope.event)
    return {
        "seq": seq,
        "size": len(payload),
        "ts": envelope.ts,
        "actor": envelope.actor,
        "request": envelope.request,
        "type": event.pop("type"),
        "event": event,
    }


def as_dict(value: Any) -> Any:
    """Plain data with field names, even for array-like Structs (which encode as lists)."""
    if isinstance(value, msgspec.Struct):
        return {name: as_dict(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(key): as_dict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_dict(item) for item in value]
    return msgspec.to_builtins(value)
