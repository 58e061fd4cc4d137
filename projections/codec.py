"""Snapshot codec for ``State``: msgpack bytes that are identical for identical states.

Determinism comes from the state itself (insertion-ordered dicts and lists only, floats stored
exactly) plus one fixed encoder. The stored form is ``[STATE_VERSION, state]``; a snapshot of
another version is refused rather than guessed at, since the log can always rebuild the state.
"""

from __future__ import annotations

import msgspec

from projections.errors import ProjectionError, StateVersionError
from projections.state import State

STATE_VERSION = 3
"""Bump whenever the shape of ``State`` (or of an event it embeds) changes. 3 (issue 14):
repositories record the names of their variables and whether their URL had credentials; the
settings record `job_env_allow`, `sandbox` and each agent's `network`."""


class _Stored(msgspec.Struct, array_like=True):
    version: int
    state: State


class _Header(msgspec.Struct, array_like=True):
    version: int
    state: msgspec.Raw


_ENCODER = msgspec.msgpack.Encoder()
_HEADER_DECODER = msgspec.msgpack.Decoder(_Header)
_DECODER = msgspec.msgpack.Decoder(_Stored)


def encode_state(state: State) -> bytes:
    return _ENCODER.encode(_Stored(STATE_VERSION, state))


_CURRENT_PREFIX = bytes([0x92, STATE_VERSION])
"""msgpack of ``[STATE_VERSION, ...]`` starts with these bytes: peeking them spares a pass that
would parse (and skip) the whole state just to read the version."""


def decode_state(data: bytes | memoryview) -> State:
    """Decode a snapshot's state, refusing any other state version."""
    if bytes(data[:2]) == _CURRENT_PREFIX:
        try:
            return _DECODER.decode(data).state
        except msgspec.MsgspecError as exc:
            raise ProjectionError(f"snapshot state is malformed: {exc}") from exc
    try:
        header = _HEADER_DECODER.decode(data)
    except msgspec.MsgspecError as exc:
        raise ProjectionError(f"snapshot state is unreadable: {exc}") from exc
    if header.version != STATE_VERSION:
        raise StateVersionError(
            f"snapshot state is version {header.version}, this build uses {STATE_VERSION}; "
            "rebuild from the log"
        )
    try:
        return _DECODER.decode(data).state
    except msgspec.MsgspecError as exc:
        raise ProjectionError(f"snapshot state is malformed: {exc}") from exc
