"""The domain's memory: the event catalogue and the pure folds that turn events into state.

Nothing here performs I/O, reads a clock or draws random numbers (``simulate`` takes an explicit
seed): the same events always give the same state, byte for byte.
"""

from projections.codec import STATE_VERSION, decode_state, encode_state
from projections.envelope import SCHEMA_VERSION, Envelope, decode, encode
from projections.errors import ProjectionError, StateVersionError, UnknownEventError
from projections.events import Event
from projections.invariants import check
from projections.state import State, evolve

__all__ = [
    "SCHEMA_VERSION",
    "STATE_VERSION",
    "Envelope",
    "Event",
    "ProjectionError",
    "State",
    "StateVersionError",
    "UnknownEventError",
    "check",
    "decode",
    "decode_state",
    "encode",
    "encode_state",
    "evolve",
]
