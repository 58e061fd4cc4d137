"""A workload for the crash suite: clients submitting jobs of known behaviour to a real
server that keeps being killed, and a record of every request the server acknowledged.

Only acknowledged (2xx) requests count: a request cut short by a kill may or may not have
happened, and the checks allow both. What was acknowledged must survive every crash.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Final

import httpx

from tests.support.server import RewindServer

KINDS: Final = {
    "quick": ("--print quick", {"completed"}, 0),
    "slow": ("--lines 12 --interval 0.5", {"completed"}, 0),
    "failing": ("--print boom --exit 3", {"failed"}, 3),
    "sidecar": ("--print sidecar", {"failed", "completed"}, None),
}
"""kind -> (fake agent options, the statuses it may end in, its exit code). A sidecar job
fails where containers cannot start (this machine), and completes where they can."""


@dataclass
class Submitted:
    job_id: str
    kind: str
    repo: str
    prompt: str
    callback: bool
    started: bool = False
    cancel_acked: bool = False
    cancel_tried: bool = False
    """A cancel was sent but its answer was lost to a kill: it may or may not have happened."""

    @property
    def expected(self) -> set[str]:
        if self.cancel_acked:
            return {"cancelled"}
        natural = KINDS[self.kind][1]
        return natural | {"cancelled"} if self.cancel_tried else natural


@dataclass
class Workload:
    server: RewindServer
    repos: list[str]
    hook_url: str
    rng: random.Random
    sidecar_image: str | None = None
    jobs: dict[str, Submitted] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, client: httpx.Client) -> Submitted | None:
        """Create and start one job; None as soon as the server does not answer."""
        kinds = [k for k in KINDS if k != "sidecar" or self.sidecar_image]
        kind = self.rng.choice(kinds)
        repo = self.rng.choice(self.repos)
        prompt = f"{KINDS[kind][0]} --print {self.rng.getrandbits(32):08x}"
        callback = self.rng.random() < 0.5
        body: dict[str, object] = {
            "prompt": prompt,
            "repository": repo,
            "agent": "fake",
            "options": {"autoCleanup": True, "timeoutSeconds": 120},
        }
        if callback:
            body["callbacks"] = [{"url": self.hook_url}]
        if kind == "sidecar":
            body["options"] = {
                "autoCleanup": True,
                "sidecars": [{"name": "cidx", "image": self.sidecar_image}],
            }
        try:
            created = client.post("/jobs", json=body)
        except httpx.HTTPError:
            return None
        if created.status_code != 201:
            raise AssertionError(f"create refused: {created.status_code} {created.text}")
        job = Submitted(created.json()["id"], kind, repo, prompt, callback)
        with self.lock:
            self.jobs[job.job_id] = job
        try:
            started = client.post(f"/jobs/{job.job_id}/start")
        except httpx.HTTPError:
            return None
        if started.status_code == 200:
            job.started = True
        return job

    def cancel_one(self, client: httpx.Client) -> None:
        with self.lock:
            candidates = [j for j in self.jobs.values() if j.started and not j.cancel_acked]
        if not candidates:
            return
        job = self.rng.choice(candidates)
        job.cancel_tried = True
        try:
            answer = client.post(f"/jobs/{job.job_id}/cancel")
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            job.cancel_acked = True

    def run_until_killed(self, stop: threading.Event, most: int = 3) -> None:
        """Submit up to ``most`` jobs (and now and then cancel one) until the server stops
        answering or ``stop``: enough to keep it busy at every kill, few enough to drain."""
        submitted = 0
        with self.server.client(timeout=10) as client:
            while not stop.is_set() and submitted < most:
                if self.rng.random() < 0.15:
                    self.cancel_one(client)
                elif self.submit(client) is None:
                    return
                else:
                    submitted += 1
                stop.wait(self.rng.uniform(0.02, 0.15))
