"""An agent's credentials (`[agents.NAME] secret_env`) reach that agent's processes only, win
over a job's own variables, and never enter the log."""

from __future__ import annotations

from pathlib import Path

from tests.support.server import RewindServer, git_repo, register, submit, wait_terminal

KEY = "sk-test-7d1c55e0a9b3"
PRINT_KEY = "import os\nprint('key=' + os.environ.get('MODEL_API_KEY', 'none'))\n"


def test_credentials_reach_their_agent_only_and_never_the_log(tmp_path: Path) -> None:
    python = ["/usr/bin/python3", "-c", "{prompt}"]
    server = RewindServer(
        tmp_path / "data",
        agents={
            "keyed": {"command": python, "secret_env": {"MODEL_API_KEY": KEY}},
            "plain": {"command": python},
        },
    ).start()
    try:
        admin = server.client()
        register(admin, "demo", git_repo(tmp_path / "src"))
        keyed = submit(
            admin, PRINT_KEY, "demo", agent="keyed", options={"env": {"MODEL_API_KEY": "mine"}}
        )
        plain = submit(admin, PRINT_KEY, "demo", agent="plain")
        for job in (keyed, plain):
            assert wait_terminal(admin, job)["status"] == "completed"
        assert f"key={KEY}" in admin.get(f"/jobs/{keyed}/output").text
        assert "key=none" in admin.get(f"/jobs/{plain}/output").text
        server.stop()
        for segment in (server.data_dir / "log").glob("*.seg"):
            assert KEY.encode() not in segment.read_bytes(), segment
    finally:
        server.kill()
