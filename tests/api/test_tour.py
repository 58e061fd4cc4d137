"""The README's API tour, run literally: `tests/api/tour.sh` (curl and jq) against a real
server, a real repository and the fake agent standing in for a coding agent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.server import RewindServer, git_repo

TOUR = Path(__file__).with_name("tour.sh")


def test_the_readme_tour_works_as_written(rewind_server: RewindServer, tmp_path: Path) -> None:
    for tool in ("curl", "jq"):
        assert shutil.which(tool), f"the tour needs {tool} (.ci/run installs it)"
    repo = git_repo(tmp_path / "project", {"README.md": "# a project\n"})
    env = {
        **os.environ,
        "REWIND": rewind_server.base_url,
        "DATA": str(rewind_server.data_dir),
        "REPO": str(repo),
        "AGENT": "fake",
        "PROMPT": "--lines 3 --interval 0.3 --write 'haiku.txt=logs remember all'",
    }
    done = subprocess.run(
        ["sh", str(TOUR)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == {"name": "tour", "cloneStatus": "cloning"}
    assert json.loads(lines[1])["username"] == "ada"
    started = json.loads(lines[2])
    assert started["status"] == "queued" and started["queuePosition"] == 1
    # the live output, as server-sent events, in order and each line once, then the end
    events = [line for line in lines if line.startswith(("event:", "data:"))]
    texts = "".join(
        json.loads(data.removeprefix("data:"))["text"]
        for kind, data in zip(events[::2], events[1::2], strict=True)
        if kind == "event: output"
    )
    assert texts == "line 1\nline 2\nline 3\n"
    assert events[-2] == "event: end"
    assert json.loads(events[-1].removeprefix("data:")) == {"status": "completed", "exitCode": 0}
    after = [line for line in lines[3:] if line and not line.startswith(("event:", "data:"))]
    assert json.loads(after[0]) == {"status": "completed", "exitCode": 0}
    assert {"README.md", "haiku.txt", ".git"} <= set(after[1:-1])
    assert after[-1] == "logs remember all"
