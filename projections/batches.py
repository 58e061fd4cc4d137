"""Active batches: jobs of one repository sharing a single git pull / index step."""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import BatchEnded, BatchFormed, BatchPhase, BatchPhaseChanged, JobBatched
from projections.handlers import Handlers


class Batch(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    batch_id: str
    repo: str
    job_ids: list[str]
    phase: BatchPhase
    formed_seq: int


class Batches(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    active: dict[str, Batch] = msgspec.field(default_factory=dict)
    ended: int = 0

    def of_repo(self, repo: str) -> list[Batch]:
        return [batch for batch in self.active.values() if batch.repo == repo]

    def _formed(self, seq: int, env: Envelope, ev: BatchFormed) -> None:
        self.active[ev.batch_id] = Batch(
            batch_id=ev.batch_id,
            repo=ev.repo,
            job_ids=list(ev.job_ids),
            phase="waiting",
            formed_seq=seq,
        )

    def _joined(self, seq: int, env: Envelope, ev: JobBatched) -> None:
        batch = self.active.get(ev.batch_id)
        if batch is not None and ev.job_id not in batch.job_ids:
            batch.job_ids.append(ev.job_id)

    def _phase(self, seq: int, env: Envelope, ev: BatchPhaseChanged) -> None:
        batch = self.active.get(ev.batch_id)
        if batch is not None:
            batch.phase = ev.phase

    def _ended(self, seq: int, env: Envelope, ev: BatchEnded) -> None:
        if self.active.pop(ev.batch_id, None) is not None:
            self.ended += 1


HANDLERS: Handlers = {
    BatchFormed: Batches._formed,
    JobBatched: Batches._joined,
    BatchPhaseChanged: Batches._phase,
    BatchEnded: Batches._ended,
}
