"""Webhooks end to end: the real server sends them to a real HTTP receiver on loopback.

What a receiver must be able to rely on: every request is signed (Standard Webhooks) with the
secret the job's creation returned; it names a finished job; retries keep the webhook-id, so
the receiver can dedupe, including across a kill -9 of the server in the middle of an attempt;
4xx answers are not retried, 5xx and an unreachable receiver are, up to the schedule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.webhooks import WebhookVerificationError, verify
from tests.effects.receiver import Answer, Received, Receiver, closed_port, running_receiver
from tests.sideeffects.helpers import demo_repo, log_events, of_job, serving
from tests.support.server import RewindServer, wait_for, wait_terminal

SCHEDULE = [0.2, 0.2]
"""Retries 0.2 s apart: with the first attempt, three attempts before giving up."""
TOTAL_TIMEOUT = 1.0
"""callback_total_timeout of the shared server: a receiver silent longer is timed out."""
TERMINAL_EVENTS = {"job.completed", "job.failed", "job.timed-out", "job.cancelled", "job.lost"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewindServer]:
    root = tmp_path_factory.mktemp("webhooks")
    with serving(
        root / "data",
        callback_schedule=SCHEDULE,
        callback_connect_timeout=1.0,
        callback_total_timeout=TOTAL_TIMEOUT,
    ) as started:
        demo_repo(started, root)
        yield started


@pytest.fixture
def client(server: RewindServer) -> Iterator[httpx.Client]:
    with server.client() as opened:
        yield opened


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


def create(client: httpx.Client, prompt: str, url: str, **callback: Any) -> tuple[str, str]:
    """A started job of the fake agent with one callback; its id and the callback's secret."""
    answer = client.post(
        "/jobs",
        json={
            "prompt": prompt,
            "repository": "demo",
            "agent": "fake",
            "callbacks": [{"url": url, **callback}],
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    started = client.post(f"/jobs/{body['id']}/start")
    assert started.status_code == 200, started.text
    return body["id"], body["callbacks"][0]["secret"]


def delivery(client: httpx.Client, job_id: str) -> dict[str, Any]:
    listed = client.get(f"/jobs/{job_id}/callbacks")
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()
    assert len(found) == 1
    return found[0]


def settled(client: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
    """The job's delivery once it is in one of ``statuses`` (delivered, gave_up)."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: (d := delivery(client, job_id))["status"] in statuses and d, timeout=30
    )


def independent_signature(secret: str, request: Received) -> str:
    """The Standard Webhooks signature computed from the spec, sharing no code with service/."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = b".".join(
        [
            request.headers["webhook-id"].encode(),
            request.headers["webhook-timestamp"].encode(),
            request.body,
        ]
    )
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def assert_authentic(secret: str, request: Received) -> None:
    verify(secret, request.headers, request.body)
    assert request.headers["webhook-signature"] == independent_signature(secret, request)


def assert_only_after_the_end(server: RewindServer, job_id: str) -> None:
    """In the log, every attempt of the job's callbacks follows its terminal event."""
    rows = of_job(log_events(server.data_dir), job_id)
    terminal = [row["seq"] for row in rows if row["type"] in TERMINAL_EVENTS]
    callback_ids = {row["event"]["callback_id"] for row in rows if row["type"] == "callback.due"}
    attempts = [
        row["seq"]
        for row in log_events(server.data_dir, "callback.attempt-started")
        if row["event"]["callback_id"] in callback_ids
    ]
    assert len(terminal) == 1 and attempts
    assert min(attempts) > terminal[0], "an attempt was started before the job ended"


def test_the_delivery_is_signed_names_the_finished_job_and_only_comes_after_it(
    server: RewindServer, client: httpx.Client, receiver: Receiver
) -> None:
    job_id, secret = create(client, "--print hi --sleep 1 --exit 3", receiver.url)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    deadline = time.monotonic() + 60
    while True:
        heard = len(receiver.requests)  # before the status: a request then means "not ended"
        if client.get(f"/jobs/{job_id}").json()["status"] in ("failed", "completed"):
            break
        assert heard == 0, "a receiver heard of a job that had not ended"
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)
    job = wait_terminal(client, job_id)
    assert settled(client, job_id, "delivered", "gave_up")["status"] == "delivered"
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert_authentic(secret, request)
    body = json.loads(request.body)
    assert body["type"] == "job.failed"
    assert body["data"]["id"] == job_id
    assert body["data"]["status"] == "failed" == job["status"]
    assert body["data"]["exitCode"] == 3 == job["exitCode"]
    assert body["data"]["endedAt"] == job["endedAt"]
    assert body["data"]["links"]["output"].endswith(f"/jobs/{job_id}/output")
    assert_only_after_the_end(server, job_id)
    # The secret was returned once, by the creation: never shown again, nor logged.
    assert secret not in client.get(f"/jobs/{job_id}").text
    assert secret not in client.get(f"/jobs/{job_id}/callbacks").text
    assert secret not in client.get(f"/jobs/{job_id}/events").text
    assert secret not in server.output()
    assert all(secret not in json.dumps(row) for row in log_events(server.data_dir))


def test_a_forged_or_altered_delivery_does_not_verify(
    client: httpx.Client, receiver: Receiver
) -> None:
    """The signature check of the test above can fail: with another secret, another body or
    another webhook-id, the same request is refused by both checks."""
    job_id, secret = create(client, "--exit 0", receiver.url, secret="whsec_" + "A" * 32)
    assert secret == "whsec_" + "A" * 32, "a given secret is the one used"
    settled(client, job_id, "delivered")
    [request] = receiver.requests
    assert_authentic(secret, request)
    other_secret = "whsec_" + base64.b64encode(b"x" * 24).decode()
    altered_body = Received(request.method, request.path, request.headers, request.body + b" ")
    altered_id = Received(
        request.method,
        request.path,
        {**request.headers, "webhook-id": request.headers["webhook-id"] + "x"},
        request.body,
    )
    for candidate_secret, candidate in (
        (other_secret, request),
        (secret, altered_body),
        (secret, altered_id),
    ):
        with pytest.raises(WebhookVerificationError):
            verify(candidate_secret, candidate.headers, candidate.body)
        assert candidate.headers["webhook-signature"] != independent_signature(
            candidate_secret, candidate
        )


def test_a_5xx_is_retried_under_the_same_webhook_id(
    server: RewindServer, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer(Answer(500), Answer(200))
    job_id, secret = create(client, "--exit 0", receiver.url)
    found = settled(client, job_id, "delivered", "gave_up")
    assert found["status"] == "delivered"
    first, second = found["attempts"]
    assert (first["status"], first["succeeded"]) == (500, False) and first["error"]
    assert first["nextRetryAt"] is not None
    assert (second["status"], second["succeeded"]) == (200, True)
    assert len(receiver.requests) == 2
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {found["webhookId"]}, "a retry is the same delivery for the receiver"
    for request in receiver.requests:
        assert_authentic(secret, request)
    rows = of_job(log_events(server.data_dir), job_id)
    types = [row["type"] for row in rows if row["type"].startswith("callback.attempt")]
    assert types == [
        "callback.attempt-started",
        "callback.attempt-failed",
        "callback.attempt-started",
        "callback.attempt-succeeded",
    ]
    assert_only_after_the_end(server, job_id)


def test_a_429_is_retried_no_sooner_than_its_retry_after(
    client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer(Answer(429, headers={"retry-after": "1"}))
    job_id, _ = create(client, "--exit 0", receiver.url)
    found = settled(client, job_id, "delivered", "gave_up")
    assert found["status"] == "delivered"
    first, second = found["attempts"]
    assert first["status"] == 429
    assert first["nextRetryAt"] - first["startedAt"] >= 1.0, "Retry-After: 1 not honoured"
    assert second["startedAt"] >= first["nextRetryAt"] - 0.05
    assert {r.headers["webhook-id"] for r in receiver.requests} == {found["webhookId"]}


def test_a_receiver_silent_past_the_total_timeout_is_retried(
    client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer(Answer(200, delay=10 * TOTAL_TIMEOUT))  # accepts, then says nothing
    job_id, secret = create(client, "--exit 0", receiver.url)
    found = settled(client, job_id, "delivered", "gave_up")
    assert found["status"] == "delivered"
    first, second = found["attempts"]
    assert first["status"] is None and "timed out" in first["error"]
    assert second["succeeded"]
    assert len(receiver.requests) == 2
    assert {r.headers["webhook-id"] for r in receiver.requests} == {found["webhookId"]}
    for request in receiver.requests:
        assert_authentic(secret, request)


def test_a_4xx_is_not_retried_and_a_manual_retry_sends_it_again(
    server: RewindServer, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer(Answer(400))
    job_id, secret = create(client, "--exit 0", receiver.url)
    found = settled(client, job_id, "delivered", "gave_up")
    assert found["status"] == "gave_up"
    [attempt] = found["attempts"]
    assert attempt["status"] == 400 and attempt["nextRetryAt"] is None
    time.sleep(5 * SCHEDULE[0])
    assert len(receiver.requests) == 1, "a 4xx answer was retried"
    assert delivery(client, job_id)["status"] == "gave_up"
    assert len(log_events(server.data_dir, "callback.gave-up")) >= 1

    retried = client.post(f"/jobs/{job_id}/callbacks/0/retry")
    assert retried.status_code == 202, retried.text
    found = settled(client, job_id, "delivered")
    assert [a["succeeded"] for a in found["attempts"]] == [False, True]
    assert len(receiver.requests) == 2
    assert {r.headers["webhook-id"] for r in receiver.requests} == {found["webhookId"]}
    assert_authentic(secret, receiver.requests[1])
    again = client.post(f"/jobs/{job_id}/callbacks/0/retry")
    assert again.status_code == 409, "only a delivery that gave up can be retried"
    assert client.post(f"/jobs/{job_id}/callbacks/1/retry").status_code == 404


def test_an_unreachable_receiver_is_retried_on_schedule_then_given_up(
    server: RewindServer, client: httpx.Client
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    job_id, _ = create(client, "--exit 0", url)
    found = settled(client, job_id, "delivered", "gave_up")
    assert found["status"] == "gave_up"
    attempts = found["attempts"]
    assert len(attempts) == 1 + len(SCHEDULE)
    assert all(a["status"] is None and a["error"] and not a["succeeded"] for a in attempts)
    assert [a["nextRetryAt"] is not None for a in attempts] == [True, True, False]
    for earlier, later in itertools.pairwise(attempts):
        assert later["startedAt"] >= earlier["nextRetryAt"] - 0.05, "retried before its time"
    gave_up = [
        row
        for row in log_events(server.data_dir, "callback.gave-up")
        if row["event"]["callback_id"].startswith(job_id)
    ]
    assert len(gave_up) == 1 and "3 attempts" in gave_up[0]["event"]["reason"]


def test_callback_urls_that_are_not_http_are_refused(client: httpx.Client) -> None:
    before = len(client.get("/jobs").json()["jobs"])
    for url in ("ftp://127.0.0.1/hook", "file:///etc/passwd", "javascript:alert(1)", "hook"):
        answer = client.post(
            "/jobs",
            json={"prompt": "--exit 0", "repository": "demo", "callbacks": [{"url": url}]},
        )
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert len(client.get("/jobs").json()["jobs"]) == before, "a refused job was created"


def test_private_targets_are_refused_when_the_config_forbids_them(tmp_path: Path) -> None:
    with serving(tmp_path / "data", callback_forbid_private=True) as server:
        demo_repo(server, tmp_path)
        with server.client() as client:
            for url in (
                "http://127.0.0.1:9/hook",
                "http://localhost:9/hook",
                "http://[::1]/",
                "http://127.1/",
                "http://[::ffff:127.0.0.1]/",
                "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/",
                "http://[::a9fe:a9fe]/",  # IPv4-compatible 169.254.169.254
                "http://[::ffff:0:a9fe:a9fe]/",
                "http://[64:ff9b:1::a9fe:a9fe]/",
                "http://[2002:a9fe:a9fe::1]/",
                "http://[fec0::1]/",
            ):
                answer = client.post(
                    "/jobs",
                    json={"prompt": "--exit 0", "repository": "demo", "callbacks": [{"url": url}]},
                )
                assert answer.status_code == 422, (url, answer.text)
                assert "non-public" in answer.json()["detail"], answer.text
            assert client.get("/jobs").json()["jobs"] == []
            assert not list((server.data_dir / "secrets").glob("*")), "a refused secret was kept"
            # The control: a public address is accepted (the job is never started, so nothing
            # is ever sent there).
            public = {"url": "http://93.184.216.34/hook"}
            accepted = client.post(
                "/jobs", json={"prompt": "--exit 0", "repository": "demo", "callbacks": [public]}
            )
            assert accepted.status_code == 201, accepted.text


def test_kill_9_while_the_job_runs_then_mid_attempt_delivers_once_same_webhook_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Killed while the job runs: the restarted server re-attaches it and says nothing until
    it ends. Killed again while the receiver holds the first attempt (started, no outcome):
    the next start sends it again under the same webhook-id."""
    receiver.answer(Answer(200, delay=120.0))  # the first request hangs until the test ends
    with serving(tmp_path / "data", callback_schedule=SCHEDULE) as server:
        demo_repo(server, tmp_path)
        with server.client() as client:
            job_id, secret = create(client, "--lines 16 --interval 0.5 --exit 0", receiver.url)
            wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
        server.kill()
        server.start()
        with server.client() as client:
            deadline = time.monotonic() + 60
            while True:
                heard = len(receiver.requests)
                if client.get(f"/jobs/{job_id}").json()["status"] == "completed":
                    break
                assert heard == 0, "a receiver heard of a job that had not ended"
                assert time.monotonic() < deadline, "the job did not end"
                time.sleep(0.05)
        wait_for(lambda: receiver.requests)
        rows = log_events(server.data_dir)
        assert "job.reattached" in [r["type"] for r in of_job(rows, job_id)]
        assert [r["type"] for r in rows if r["type"].startswith("callback.attempt")] == [
            "callback.attempt-started"
        ], "the attempt is in flight: started, no outcome"
        server.kill()
        server.start()
        with server.client() as client:
            found = settled(client, job_id, "delivered", "gave_up")
            report = client.get("/api/admin/recovery").json()["latest"]
        assert found["status"] == "delivered"
        first, second = found["attempts"]
        assert not first["succeeded"] and "interrupted" in first["error"]
        assert second["succeeded"] and second["status"] == 200
        assert report["callbacks_resumed"] == 1
        assert len(receiver.requests) == 2
        assert {r.headers["webhook-id"] for r in receiver.requests} == {found["webhookId"]}
        for request in receiver.requests:
            assert_authentic(secret, request)
            assert json.loads(request.body)["data"]["status"] == "completed"
        assert_only_after_the_end(server, job_id)
