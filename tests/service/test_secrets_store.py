"""Secrets live outside the log, readable by the server's user only, from the moment their file
exists: webhook secrets at the top of the store, other kinds each in a directory of their own."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from eventlog import CorruptFileError
from service.secrets_store import SecretsStore


def test_secrets_are_private_checksummed_and_removable(tmp_path: Path) -> None:
    store = SecretsStore(tmp_path / "secrets")
    store.put("job-1-cb0", "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
    path = tmp_path / "secrets" / "job-1-cb0"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.get("job-1-cb0") == "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    assert store.ids() == ["job-1-cb0"]
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(CorruptFileError):
        store.get("job-1-cb0")
    store.remove("job-1-cb0")
    assert store.get("job-1-cb0") is None and store.ids() == []


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden"])
def test_a_callback_id_cannot_name_another_file(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="bad secret name"):
        SecretsStore(tmp_path).put(bad, "whsec_x")
    with pytest.raises(ValueError, match="bad secret name"):
        SecretsStore(tmp_path).kind(bad)


def test_a_kind_has_its_own_private_directory_beside_the_webhook_secrets(tmp_path: Path) -> None:
    store = SecretsStore(tmp_path / "secrets")
    store.put("job-1-cb0", "whsec_x")
    repos = store.kind("repo")
    repos.put("demo", '{"credentials":"bob:pw"}')
    path = tmp_path / "secrets" / "repo" / "demo"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.ids() == ["job-1-cb0"] and repos.ids() == ["demo"]
    assert repos.get("demo") == '{"credentials":"bob:pw"}' and store.get("job-1-cb0") == "whsec_x"
