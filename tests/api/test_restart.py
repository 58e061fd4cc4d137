"""Issue 9's restart: a SIGTERM while jobs are queued, waiting for a repository's lock and
running, then a start on the same data directory.

A batch is held in its preparation by the repository's index command, which waits for a gate
file the test creates only once the comparisons are done, so nothing moves meanwhile. The
state at the clean stop (the log's end) and the state recovery handed over (at the seq of
`recovery.completed`) are compared whole: the same jobs in the same run queue order, the same
locks, waiters and batches. The agents keep running through the restart (same pid, not
relaunched: each output line once) and complete afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from projections import State, check
from service.agents.identity import ProcessIdentity, is_alive
from tests.api.helpers import log_events, state_at
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

LINES = 20
RUNNING = f"--lines {LINES} --interval 0.5"
"""10 s: outlives the stop and a slow start on a loaded machine."""


def view(state: State) -> dict[str, Any]:
    """What a restart must keep: every job's place, the queues, locks and batches."""
    return {
        "queue": list(state.jobs.queue),
        "waits": {repo: list(w) for repo, w in state.jobs.waits.items() if w},
        "active": sorted(state.jobs.active),
        "locks": {r: (lk.holder, lk.kind, lk.generation) for r, lk in state.locks.held.items()},
        "batches": {
            b.batch_id: (b.repo, b.job_ids, b.phase, b.generation)
            for b in state.batches.active.values()
        },
        "jobs": {
            j.job_id: (j.status, j.batch_id, j.process and (j.process.pid, j.process.start_time))
            for j in state.jobs.by_id.values()
        },
    }


def api_view(client: Any) -> dict[str, Any]:
    jobs = client.get("/jobs", params={"limit": 500}).json()["jobs"]
    repos = client.get("/repositories").json()
    return {
        "jobs": {j["id"]: (j["status"], j["queuePosition"], j["batch"]) for j in jobs},
        "repos": {r["name"]: (r["lockedBy"], r["waiting"]) for r in repos},
    }


def test_a_sigterm_restart_keeps_queues_locks_batches_and_agents(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    hold = ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done"]
    server = RewindServer(tmp_path / "data", max_concurrent=4).start()
    try:
        admin = server.client()
        register(admin, "slow", git_repo(tmp_path / "slow"), settings={"indexCommand": hold})
        register(admin, "fast", git_repo(tmp_path / "fast"))

        def status(job: str) -> str:
            return str(admin.get(f"/jobs/{job}").json()["status"])

        preparing = submit(admin, "--print p", "slow")
        wait_for(lambda: status(preparing) == "preparing")
        waiting = submit(admin, "--print w", "slow")
        wait_for(lambda: status(waiting) == "waiting")
        running = [submit(admin, RUNNING, "fast") for _ in range(2)]
        wait_for(lambda: all(status(job) == "running" for job in running))
        queued = [submit(admin, "--print q", repo) for repo in ("fast", "slow", "fast")]
        created = submit(admin, "--print c", "fast", start=False)
        before_api = api_view(admin)
        assert [before_api["jobs"][j][:2] for j in queued] == [("queued", n) for n in (1, 2, 3)]
        assert before_api["repos"]["slow"][1] == [waiting]
        assert before_api["jobs"][created][0] == "created"

        server.stop()
        stopped = state_at(server.data_dir)
        assert type(log_events(server.data_dir)[-1][1].event).__name__ == "ServerStopping"
        before = view(stopped)
        assert before["queue"] == queued and before["waits"] == {"slow": [waiting]}
        assert before["locks"]["slow"][1] == "prepare" and "fast" not in before["locks"]
        pids = {job: stopped.jobs.by_id[job].process for job in running}
        for identity in pids.values():  # the agents outlive the server
            assert identity is not None
            assert is_alive(ProcessIdentity(identity.pid, identity.start_time, identity.boot_id))

        server.start()
        recovered = [
            seq
            for seq, env in log_events(server.data_dir)
            if type(env.event).__name__ == "RecoveryCompleted"
        ][-1]
        handed_over = state_at(server.data_dir, recovered)
        assert view(handed_over) == before
        assert check(handed_over) == [] and handed_over.anomalies == []
        assert api_view(admin) == before_api
        report = admin.get("/api/admin/recovery").json()["latest"]
        assert (report["jobs_reattached"], report["preparations_redone"]) == (2, 1), report
        assert (report["jobs_lost"], report["jobs_relaunched"], report["locks_released"]) == (
            0,
            0,
            0,
        )

        gate.touch()
        for job in [preparing, waiting, *running, *queued]:
            shown = wait_terminal(admin, job)
            assert (shown["status"], shown["exitCode"]) == ("completed", 0), shown
        for job in running:
            output = admin.get(f"/jobs/{job}/output").text
            assert output == "".join(f"line {n}\n" for n in range(1, LINES + 1))
            types = [e["type"] for e in admin.get(f"/jobs/{job}/events").json()]
            assert types.count("job.process-started") == 1 and types.count("job.reattached") == 1
            started = next(
                e["event"]
                for e in admin.get(f"/jobs/{job}/events").json()
                if e["type"] == "job.process-started"
            )
            identity = pids[job]
            assert identity is not None and started["pid"] == identity.pid
        assert status(created) == "created"
        final = state_at(server.data_dir)
        assert check(final) == [] and final.anomalies == []
        assert not final.locks.held and not final.jobs.waits.get("slow")
    finally:
        gate.touch()
        server.kill()
