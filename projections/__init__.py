"""The whole domain, not only the projections its name says: the commands (``commands``),
the rules that judge them (``decide``), the event catalogue (``events``), the pure folds of
events into state (``evolve``) and the invariants that state keeps (``invariants.check``).

Nothing here performs I/O, reads a clock or draws random numbers: the same commands at the
same times give the same events, and the same events always give the same state, byte for
byte.
"""

from projections import upcasters as _upcasters
from projections.codec import STATE_VERSION, decode_state, encode_state
from projections.commands import Command
from projections.decide import decide
from projections.envelope import SCHEMA_VERSION, Envelope, decode, encode, make
from projections.errors import DomainError, ProjectionError, StateVersionError, UnknownEventError
from projections.events import Event
from projections.invariants import check
from projections.state import State, evolve

del _upcasters  # imported for its registration of the v1 -> v2 upcaster

__all__ = [
    "SCHEMA_VERSION",
    "STATE_VERSION",
    "Command",
    "DomainError",
    "Envelope",
    "Event",
    "ProjectionError",
    "State",
    "StateVersionError",
    "UnknownEventError",
    "check",
    "decide",
    "decode",
    "decode_state",
    "encode",
    "encode_state",
    "evolve",
    "make",
]
