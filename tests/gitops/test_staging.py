"""Staged uploads: safe names, durable files, and a consume that finishes after a crash."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.staging_files import (
    MAX_NAME_BYTES,
    BadFilenameError,
    StagedFileTooLargeError,
    consume,
    list_staging_dirs,
    remove_staging,
    sanitize_filename,
    stage_file,
)
from service.trees import DELETING, temp_sibling


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("report.csv", "report.csv"),
        ("résumé.pdf", "résumé.pdf"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),  # NFC: one é, however it was typed
        ("数据 2024.xlsx", "数据 2024.xlsx"),
        ("файл.txt", "файл.txt"),
        (".env", ".env"),
        ("  padded.txt \t", "padded.txt"),
        ("a" * MAX_NAME_BYTES, "a" * MAX_NAME_BYTES),
    ],
)
def test_names_kept(name: str, stored: str) -> None:
    assert sanitize_filename(name) == stored


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "not a file name"),
        ("..", "not a file name"),
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("/etc/passwd", "path separator"),
        ("C:\\Users\\x.txt", "path separator"),
        ("a\0b", "U\\+0000"),
        ("a\nb", "U\\+000A"),
        ("a\x7fb", "U\\+007F"),
        ("invoice\u202efdp.exe", "U\\+202E"),
        ("a\u2028b", "U\\+2028"),
        ("é" * (MAX_NAME_BYTES // 2 + 1), "over 200 bytes"),
        (".upload.txt.4242.tmp", "reserved for temp files"),
    ],
)
def test_names_refused(name: str, why: str) -> None:
    with pytest.raises(BadFilenameError, match=why):
        sanitize_filename(name)


def _sanitizer_property(sanitize: Callable[[str], str]) -> Callable[[], None]:
    tricky = st.lists(st.sampled_from(["..", ".", "/", "\\", "a", "é"])).map("".join)

    @settings(max_examples=400, deadline=None, database=None, report_multiple_bugs=False)
    @given(st.text(max_size=80) | tricky)
    def every_accepted_name_is_one_plain_component(name: str) -> None:
        try:
            stored = sanitize(name)
        except ValueError:
            return
        assert stored and stored not in (".", "..")
        assert "/" not in stored and "\\" not in stored and "\0" not in stored
        assert not any(unicodedata.category(c) == "Cc" for c in stored)
        assert len(stored.encode()) <= MAX_NAME_BYTES
        assert Path("/staging/job", stored).parent == Path("/staging/job")
        assert sanitize(stored) == stored

    return every_accepted_name_is_one_plain_component


def test_no_accepted_name_is_more_than_one_plain_component() -> None:
    _sanitizer_property(sanitize_filename)()


def test_the_property_catches_a_sanitizer_that_strips_dot_dot_slash() -> None:
    """Broken variant: the classic `name.replace("../", "")`."""
    with pytest.raises(AssertionError):
        _sanitizer_property(lambda name: name.replace("../", ""))()


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(categories=["L", "M", "N"]), min_size=1, max_size=40))
def test_letters_of_every_script_are_kept(name: str) -> None:
    normalized = unicodedata.normalize("NFC", name)
    if len(normalized.encode()) <= MAX_NAME_BYTES:
        assert sanitize_filename(name) == normalized


def test_stage_file_writes_durably_and_replaces_by_name(tmp_path: Path) -> None:
    staged = stage_file(tmp_path, "job-1", " data.csv", b"a,b\n1,2\n", 100)
    assert staged.name == "data.csv"
    assert staged.size == 8
    assert staged.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert staged.path == tmp_path / "job-1" / "data.csv"
    assert staged.path.read_bytes() == b"a,b\n1,2\n"
    again = stage_file(tmp_path, "job-1", "data.csv", b"new", 100)
    assert again.path.read_bytes() == b"new"
    assert os.listdir(tmp_path / "job-1") == ["data.csv"]


def test_uploads_of_one_name_at_once_leave_one_whole_file_for_its_owner_only(
    tmp_path: Path,
) -> None:
    """Issue 14: each upload writes a temp file of its own, so uploads of one name at once
    neither mix their bytes nor rename one another's temp file away; the file is 0600."""
    contents = [bytes([n]) * 2**22 for n in range(4)]
    with ThreadPoolExecutor(len(contents)) as pool:
        uploads = [
            pool.submit(stage_file, tmp_path, "job-1", "same.bin", c, 2**23) for c in contents
        ]
    assert {upload.result().sha256 for upload in uploads} == {
        hashlib.sha256(c).hexdigest() for c in contents
    }
    path = tmp_path / "job-1" / "same.bin"
    assert os.listdir(path.parent) == ["same.bin"]
    assert path.read_bytes() in contents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_refused_uploads_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(StagedFileTooLargeError, match="101 bytes, over the limit of 100"):
        stage_file(tmp_path, "job-1", "big.bin", b"x" * 101, 100)
    with pytest.raises(BadFilenameError):
        stage_file(tmp_path, "job-1", "../escape", b"x", 100)
    for job_id in ["../x", ".hidden", "a/b", ""]:
        with pytest.raises(BadFilenameError):
            stage_file(tmp_path, job_id, "f", b"x", 100)
    assert list(tmp_path.iterdir()) == []


def _stage_three(staging_root: Path) -> Path:
    for name, data in [("a.txt", b"A"), ("b.bin", b"\x00B"), ("c.md", b"C")]:
        stage_file(staging_root, "job-1", name, data, 100)
    return staging_root / "job-1"


def _assert_consumed(files: Path, staging: Path) -> None:
    assert {p.name: p.read_bytes() for p in files.iterdir()} == {
        "a.txt": b"A",
        "b.bin": b"\x00B",
        "c.md": b"C",
    }
    assert not os.path.lexists(staging)
    assert not os.path.lexists(temp_sibling(staging, DELETING))


def test_consume_moves_everything_and_removes_the_staging(tmp_path: Path) -> None:
    staging = _stage_three(tmp_path / "staging")
    files = tmp_path / "ws" / "files"
    consume(staging, files)
    _assert_consumed(files, staging)
    consume(staging, files)  # a rerun after it finished
    _assert_consumed(files, staging)


def test_consume_resumes_after_a_crash_half_way(tmp_path: Path) -> None:
    staging = _stage_three(tmp_path / "staging")
    files = tmp_path / "ws" / "files"
    files.mkdir(parents=True)
    (staging / "a.txt").rename(files / "a.txt")  # moved before the crash
    (staging / ".d.txt.4242.tmp").write_bytes(b"an upload the crash cut short")
    consume(staging, files)
    _assert_consumed(files, staging)


def test_consume_resumes_after_a_crash_during_removal(tmp_path: Path) -> None:
    staging = _stage_three(tmp_path / "staging")
    files = tmp_path / "ws" / "files"
    consume(staging, files)
    trash = temp_sibling(staging, DELETING)
    trash.mkdir()
    (trash / "leftover").write_text("x")
    consume(staging, files)
    _assert_consumed(files, staging)


@pytest.fixture
def other_filesystem() -> Iterator[Path]:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm to stand for another filesystem")
    directory = Path(tempfile.mkdtemp(dir="/dev/shm"))
    yield directory
    shutil.rmtree(directory)


def test_consume_across_filesystems_copies_then_removes(
    tmp_path: Path, other_filesystem: Path
) -> None:
    if os.stat(other_filesystem).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same filesystem here")
    staging = _stage_three(other_filesystem / "staging")
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_bytes(b"A")  # copied, then the crash came before the unlink
    consume(staging, files)
    _assert_consumed(files, staging)


def test_list_and_remove_staging_dirs(tmp_path: Path) -> None:
    stage_file(tmp_path, "job-1", "x", b"1", 10)
    stage_file(tmp_path, "job-2", "y", b"2", 10)
    trash = temp_sibling(tmp_path / "job-3", DELETING)  # a removal the crash interrupted
    trash.mkdir()
    (tmp_path / "stray-file").write_text("not a staging dir")
    listed = list_staging_dirs(tmp_path)
    assert [(job, path) for job, path, _ in listed] == [
        ("job-1", tmp_path / "job-1"),
        ("job-2", tmp_path / "job-2"),
        ("job-3", tmp_path / "job-3"),
    ]
    assert all(mtime > 0 for _, _, mtime in listed)
    for _, path, _ in listed:
        remove_staging(path)
        remove_staging(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stray-file"]
    assert list_staging_dirs(tmp_path / "missing") == []
