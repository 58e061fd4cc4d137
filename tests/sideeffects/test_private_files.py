"""Nothing in the data directory is readable, writable or enterable by anyone but the server's
user, after a full run through the real server: repositories cloned (one with credentials),
jobs with uploaded files, a signed webhook, a cleanup that archived an agent's work, a
workspace left in place, snapshots (taken every few events and at the clean stop), in a data
directory an operator made by hand with a wider mode.

No exception is made, not even for workspaces: the server's umask covers what git and the
agents create there too. (Handing a workspace to an unprivileged agent user is the sandbox's
business, done by changing its owner, not by opening its modes.)
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.effects.receiver import closed_port, running_receiver
from tests.sideeffects.helpers import demo_repo, serving
from tests.support.server import wait_for, wait_terminal


def open_to_others(root: Path) -> list[str]:
    """Every path under `root` (itself included) whose mode grants group or others anything."""
    return [
        f"{path.relative_to(root.parent)} {stat.S_IMODE(path.lstat().st_mode):04o}"
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) & 0o077
    ]


def test_every_file_and_directory_of_a_used_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # made by hand, wider than it should be: the server tightens it
    with running_receiver() as receiver, serving(data, snapshot_every=10) as server:
        demo_repo(server, tmp_path)
        with server.client() as client:
            private = f"https://bob:pw-1@127.0.0.1:{closed_port()}/x.git"
            body = {"name": "private", "gitUrl": private, "settings": {"env": {"KEY": "v"}}}
            assert client.post("/repositories", json=body).status_code == 202
            jobs = []
            for cleanup in (True, False):
                created = client.post(
                    "/jobs",
                    json={
                        "prompt": "--write README.md=changed --write new.txt=made --exit 0",
                        "repository": "demo",
                        "agent": "fake",
                        "options": {"autoCleanup": cleanup},
                        "callbacks": [{"url": receiver.url, "secret": "whsec_" + "A" * 32}],
                    },
                )
                assert created.status_code == 201, created.text
                job_id = created.json()["id"]
                upload = client.post(f"/jobs/{job_id}/files", files=[("file", ("in.txt", b"x"))])
                assert upload.status_code in (200, 201), upload.text
                assert client.post(f"/jobs/{job_id}/start").status_code == 200
                jobs.append(job_id)
            for job_id in jobs:
                assert wait_terminal(client, job_id)["status"] == "completed"
            wait_for(lambda: len(receiver.requests) >= 2)
            wait_for((data / "archive" / jobs[0] / "manifest.json").exists)
            wait_for(lambda: not (data / "workspaces" / jobs[0]).exists())
        server.stop()  # a clean stop takes a snapshot
    made = {p.relative_to(data).parts[0] for p in data.rglob("*")}
    assert {"log", "snapshots", "secrets", "repos", "workspaces", "runs", "archive"} <= made
    assert (data / "secrets" / "repo" / "private").is_file()
    assert (data / "workspaces" / jobs[1] / "files" / "in.txt").is_file()
    assert (data / "workspaces" / jobs[1] / "new.txt").is_file()
    assert open_to_others(data) == []
