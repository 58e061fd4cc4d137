"""Browsing a workspace never reaches outside it: not by '..', not by absolute paths, not by a
symlink the agent planted, not by a symlink swapped in while a file is being opened."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import paths
from service.paths import (
    Entry,
    NotRegularFileError,
    UnsafePathError,
    list_dir,
    open_inside,
    resolve_inside,
)

Resolver = Callable[[Path, str], Path]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    ws = tmp_path / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "b" / "file.txt").write_text("inside")
    (ws / "a" / "empty").mkdir()
    (ws / "in").symlink_to("a")
    (ws / "out").symlink_to(outside)
    (ws / "a" / "up").symlink_to("../..")
    (ws / "a" / "rel_out").symlink_to("../../outside/secret.txt")
    (ws / "loop").symlink_to("loop")
    os.mkfifo(ws / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:  # bound somewhere short, then moved
        bound = Path(tempfile.mkdtemp()) / "sock"
        listener.bind(str(bound))
        bound.rename(ws / "sock")
    return ws


def _naive_resolve(root: Path, relpath: str) -> Path:
    """Broken variant: textual checks only, symlinks never looked at."""
    if "\0" in relpath or relpath.startswith("/") or ".." in relpath.split("/"):
        raise UnsafePathError(relpath)
    return root / relpath


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("a/b/file.txt", "a/b/file.txt"),
        ("", "."),
        (".", "."),
        ("a//b/./file.txt", "a/b/file.txt"),
        ("in/b/file.txt", "a/b/file.txt"),
        ("a/not-yet/created.txt", "a/not-yet/created.txt"),
    ],
)
def test_paths_inside_are_allowed(root: Path, relpath: str, expected: str) -> None:
    assert resolve_inside(root, relpath) == (root / expected).resolve()


@pytest.mark.parametrize(
    ("relpath", "why"),
    [
        ("../outside/secret.txt", "'..'"),
        ("a/../../outside", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\0b", "NUL"),
    ],
)
def test_textual_escapes_are_refused(root: Path, relpath: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        resolve_inside(root, relpath)


_SYMLINK_ESCAPES = ["out", "out/secret.txt", "a/up", "a/up/outside/secret.txt", "a/rel_out"]


def _assert_symlinks_cannot_escape(resolve: Resolver, root: Path) -> None:
    for relpath in _SYMLINK_ESCAPES:
        try:
            resolved = resolve(root, relpath)
        except UnsafePathError:
            continue
        assert os.path.realpath(resolved).startswith(f"{root.resolve()}/"), relpath


@pytest.mark.parametrize("resolve", [resolve_inside, _naive_resolve], ids=["ours", "naive"])
def test_symlink_escapes_are_refused(root: Path, resolve: Resolver) -> None:
    if resolve is _naive_resolve:
        with pytest.raises(AssertionError):
            _assert_symlinks_cannot_escape(resolve, root)
    else:
        _assert_symlinks_cannot_escape(resolve, root)


_COMPONENTS = ["a", "b", "file.txt", "in", "out", "up", "rel_out", "..", ".", "", "loop", "x"]


def _confinement_property(resolve: Resolver, root: Path) -> Callable[[], None]:
    @settings(max_examples=300, deadline=None, database=None, report_multiple_bugs=False)
    @given(parts=st.lists(st.sampled_from(_COMPONENTS), max_size=6), absolute=st.booleans())
    def no_accepted_path_resolves_outside(parts: list[str], absolute: bool) -> None:
        relpath = ("/" if absolute else "") + "/".join(parts)
        try:
            resolved = resolve(root, relpath)
        except UnsafePathError:
            return
        real, base = os.path.realpath(resolved), str(root.resolve())
        assert real == base or real.startswith(f"{base}/"), f"{relpath!r} -> {real}"

    return no_accepted_path_resolves_outside


def test_no_accepted_path_resolves_outside_the_root(root: Path) -> None:
    _confinement_property(resolve_inside, root)()


def test_the_property_catches_a_textual_only_check(root: Path) -> None:
    with pytest.raises(AssertionError):
        _confinement_property(_naive_resolve, root)()


def test_open_inside_reads_only_regular_files_inside(root: Path) -> None:
    with open_inside(root, "in/b/file.txt") as file:
        assert file.read() == b"inside"
    with pytest.raises(IsADirectoryError):
        open_inside(root, "a")
    with pytest.raises(NotRegularFileError, match="not a regular file"):
        open_inside(root, "fifo")  # and never blocks waiting for a writer
    with pytest.raises(NotRegularFileError, match="socket"):
        open_inside(root, "sock")  # opening one fails with ENXIO
    with pytest.raises(OSError) as caught:
        open_inside(root, "loop")
    assert caught.value.errno == errno.ELOOP  # for the caller to judge
    with pytest.raises(UnsafePathError):
        open_inside(root, "a/rel_out")
    with pytest.raises(FileNotFoundError):
        open_inside(root, "a/none.txt")


def _swap_after_check(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent replaces `a/b` by a symlink out right after the path was checked."""
    outside = root.parent / "outside"
    (outside / "file.txt").write_text("secret behind the swap")
    checked = paths.resolve_inside

    def check_then_swap(base: Path, relpath: str) -> Path:
        result = checked(base, relpath)
        (root / "a" / "b").rename(root / "a" / "b-moved")
        (root / "a" / "b").symlink_to(outside)
        return result

    monkeypatch.setattr(paths, "resolve_inside", check_then_swap)


def _assert_never_reads_outside(read: Callable[[Path, str], BinaryIO], root: Path) -> None:
    try:
        with read(root, "a/b/file.txt") as file:
            data = file.read()
    except UnsafePathError:
        return
    assert data == b"inside", f"read {data!r} from outside"


def test_a_symlink_swapped_in_while_opening_is_caught(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _swap_after_check(root, monkeypatch)
    _assert_never_reads_outside(open_inside, root)


def test_an_open_without_the_descriptor_check_is_caught(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken variant: check the path, then open it by name."""
    _swap_after_check(root, monkeypatch)

    def open_by_name(base: Path, relpath: str) -> BinaryIO:
        return open(paths.resolve_inside(base, relpath), "rb")

    with pytest.raises(AssertionError, match="from outside"):
        _assert_never_reads_outside(open_by_name, root)


def test_list_dir(root: Path) -> None:
    (root / os.fsdecode(b"bad-\xff-name")).write_text("x")
    assert list_dir(root, "") == [
        Entry("a", "dir", 0),
        Entry("fifo", "other", 0),
        Entry("in", "symlink", 0),
        Entry("loop", "symlink", 0),
        Entry("out", "symlink", 0),
        Entry("sock", "other", 0),
    ]
    assert list_dir(root, "in/b") == [Entry("file.txt", "file", 6)]
    assert list_dir(root, "a/empty") == []
    with pytest.raises(NotADirectoryError):
        list_dir(root, "a/b/file.txt")
    with pytest.raises(UnsafePathError):
        list_dir(root, "out")
    with pytest.raises(FileNotFoundError):
        list_dir(root, "nope")
    for not_a_directory in ("sock", "loop", "loop/x"):
        with pytest.raises(OSError) as caught:
            list_dir(root, not_a_directory)
        assert caught.value.errno in (errno.ENOTDIR, errno.ELOOP), not_a_directory
