"""rewind installed the way a user installs it: `pip install .` into a clean venv, no dev extra.

The dev venv holds every optional library, so it cannot see a command that imports one at start
(the replay benchmark's peer, `eventsourcing`, once killed even `rewind --help`). This test builds
a venv with the package alone, from a copy of the sources (a build writes `build/` and
`*.egg-info` next to them), and runs commands there. pip reaches PyPI here and its cache is warm;
the dev venv's pip installs into the new venv (`--python`, skipping a pip bootstrap per venv) and
skips byte-compiling 37 dependencies: about 30 s in all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.helpers import ROOT

pytestmark = pytest.mark.install

SOURCES = ("pyproject.toml", "README.md", "eventlog", "projections", "service", "tools")
BUILD_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "SetuptoolsWarning")


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=cwd,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "COLUMNS": "200"},
    )


def _pip(venv: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", *args)


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a venv where `pip install <sources>` is the only thing that happened."""
    base = tmp_path_factory.mktemp("install")
    source = base / "rewind-src"
    source.mkdir()
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    installed = _pip(venv, "install", "--no-compile", source)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    for warning in BUILD_WARNINGS:
        assert warning not in installed.stdout + installed.stderr, installed.stderr
    return venv / "bin"


def test_the_package_alone_lacks_the_optional_peer(user_venv: Path) -> None:
    probe = _run(user_venv / "python", "-c", "import eventsourcing")
    assert probe.returncode != 0 and "No module named 'eventsourcing'" in probe.stderr


def test_help_and_read_commands_run_without_optional_libraries(
    user_venv: Path, tmp_path: Path
) -> None:
    rewind = user_venv / "rewind"
    helped = _run(rewind, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Exit codes:" in helped.stdout
    data = tmp_path / "data"
    simulated = _run(rewind, "simulate", data, "--events", "300")
    assert simulated.returncode == 0, simulated.stderr
    stat = _run(rewind, "log", "stat", data)
    assert stat.returncode == 0, stat.stderr
    assert stat.stdout.strip().splitlines()[-1].startswith("300 records, ")
    state = _run(rewind, "state", data, "--at", "100")
    assert state.returncode == 0, state.stderr
    assert state.stdout.startswith("state at seq 100 ")


def test_bench_replay_says_how_to_install_its_peer(user_venv: Path, tmp_path: Path) -> None:
    result = _run(user_venv / "rewind", "bench", "replay", "--events", "10000", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("rewind: error: ") and "pip install 'rewind[bench]'" in line
    assert list(tmp_path.iterdir()) == [], "nothing measured, nothing left behind"


def test_editable_install_builds_without_setuptools_warnings(
    user_venv: Path, tmp_path: Path
) -> None:
    """`pip install -e .` in a checkout: setuptools once warned that folders named like the
    (generic) top-level packages could shadow them; the configuration now avoids that path."""
    source = user_venv.parent.parent / "rewind-src"
    editable = _pip(user_venv.parent, "install", "--no-compile", "--no-deps", "-e", source)
    assert editable.returncode == 0, editable.stdout + editable.stderr
    for warning in BUILD_WARNINGS:
        assert warning not in editable.stdout + editable.stderr, editable.stderr
    imported = _run(
        user_venv / "python", "-c", "import tools.cli; print(tools.cli.__file__)", cwd=tmp_path
    )
    assert imported.stdout.strip() == str(source / "tools" / "cli.py")
