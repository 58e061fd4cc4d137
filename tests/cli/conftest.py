"""A data directory filled by the real `rewind simulate`, shared read-only by the CLI tests;
tests that change it work on a private copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.layout import DataDir
from tests.service.helpers import history, run_rewind

EVENTS = 2500
SEED = 1


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    root = tmp_path_factory.mktemp("simulated") / "data"
    result = run_rewind("simulate", root, "--events", EVENTS, "--seed", SEED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"appended {EVENTS} events to {root / 'log'}; last seq {EVENTS}"
    )
    return DataDir.at(root)


@pytest.fixture(scope="session")
def payloads() -> list[bytes]:
    """What `rewind simulate --events EVENTS --seed SEED` must have written."""
    return history(EVENTS, SEED)


@pytest.fixture
def sim(simulated: DataDir, tmp_path: Path) -> DataDir:
    """A private copy of the simulated data directory."""
    target = tmp_path / "copy"
    shutil.copytree(simulated.root, target, ignore=shutil.ignore_patterns("LOCK"))
    return DataDir.at(target)
