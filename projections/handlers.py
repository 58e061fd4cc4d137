"""The shape every projection's fold step has, shared so ``state.py`` can compose them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from projections.envelope import Envelope
from projections.events import Event

Handler = Callable[[Any, int, Envelope, Any], None]
"""``handler(projection, seq, envelope, event)``; ``event`` is ``envelope.event``, passed again
so each handler can declare its concrete event type without a cast or isinstance per call."""

Handlers = dict[type[Event], Handler]


class HasJobId(Protocol):
    """Any event about one job; lets one handler serve every event that only needs the id."""

    @property
    def job_id(self) -> str: ...
