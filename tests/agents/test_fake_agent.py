"""The shared fake agent does what other suites will ask of it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.fake_agent import fake_agent_argv


def _run(
    *options: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fake_agent_argv(*options),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_prints_writes_files_and_exits_as_told(tmp_path: Path) -> None:
    done = _run(
        "--print", "hi", "--stderr", "warn", "--write", "out/a.txt=x=1", "--exit", "4", cwd=tmp_path
    )
    assert (done.returncode, done.stdout, done.stderr) == (4, "hi\n", "warn\n")
    assert (tmp_path / "out/a.txt").read_text() == "x=1"


def test_behaviour_from_the_environment_and_from_the_prompt(tmp_path: Path) -> None:
    """A fixed template (`... --obey-prompt -- {prompt}`) steered per job, two ways."""
    from_env = _run("--", "any prompt", cwd=tmp_path, env={"FAKE_AGENT": "--print env --exit 2"})
    assert (from_env.returncode, from_env.stdout) == (2, "env\n")
    from_prompt = _run("--obey-prompt", "--", "--print 'from prompt' --exit 3", cwd=tmp_path)
    assert (from_prompt.returncode, from_prompt.stdout) == (3, "from prompt\n")


def test_echoes_its_arguments_exactly(tmp_path: Path) -> None:
    done = _run("--echo-argv", "--", "a b", "", "é\n", cwd=tmp_path)
    assert json.loads(done.stdout) == {"argv": ["--echo-argv", "--", "a b", "", "é\n"]}
