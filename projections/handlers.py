"""The shape every fold step has, shared so ``state.py`` can compose the projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.events import Event

Handler = Callable[[Any, int, Any, Any], None]
"""``handler(state, seq, envelope, event)``. Each projection module owns one part of the
state but may read the others (a lock's holder, a job's status): the composite is one
in-memory object. ``event`` is ``envelope.event``, passed again so each handler can declare
its concrete event type without a cast or an isinstance per call."""

Handlers = dict[type[Event], Handler]
