"""Turning a raw log payload into something a person or a JSON consumer can read: hashes and
secrets hidden unless the operator asks (`projections.redact`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer

from projections import ProjectionError, decode
from projections.events import tag_of
from projections.plain import fields_of
from projections.redact import redacted

ShowSecrets = Annotated[
    bool,
    typer.Option(
        "--show-secrets",
        help="Print password and token hashes (and secrets old logs hold) instead of ***.",
    ),
]


def describe(seq: int, payload: bytes, *, show_secrets: bool = False) -> dict[str, Any]:
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
        "event": shown(fields_of(envelope.event), show_secrets),
    }


def shown(plain: Any, show_secrets: bool) -> Any:
    """What an output prints of plain events or state: redacted, unless asked not to be."""
    return plain if show_secrets else redacted(plain)
