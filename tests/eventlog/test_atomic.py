"""atomic_write replaces a file whole; sealed files detect truncation and bit flips."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import CorruptFileError, FileSystem, atomic_write, read_checked, write_checked


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_creates_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"first version")
    assert target.read_bytes() == b"first version"
    atomic_write(str(target), b"2")
    assert target.read_bytes() == b"2"
    atomic_write(target, b"")
    assert target.read_bytes() == b""
    assert _leftovers(tmp_path, {"state.json"}) == []


class Failing(FileSystem):
    """A filesystem whose `operation` fails with EIO (after doing nothing)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.operation == "write":
            raise OSError(errno.EIO, "injected")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.operation == "fsync":
            raise OSError(errno.EIO, "injected")
        super().fsync(fd)

    def rename(self, source: Path, target: Path) -> None:
        if self.operation == "rename":
            raise OSError(errno.EIO, "injected")
        super().rename(source, target)


@pytest.mark.parametrize("fail", ["write", "fsync", "rename"])
def test_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path: Path, fail: str) -> None:
    target = tmp_path / "report"
    atomic_write(target, b"old and whole")
    with pytest.raises(OSError):
        atomic_write(target, b"new" * 1000, Failing(fail))
    assert target.read_bytes() == b"old and whole"
    assert _leftovers(tmp_path, {"report"}) == []


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), damage=st.data())
def test_sealed_files_detect_any_truncation_or_bit_flip(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, damage: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("sealed")
    path = directory / "snapshot.bin"
    write_checked(path, data)
    assert read_checked(path) == data
    blob = bytearray(path.read_bytes())
    if damage.draw(st.booleans(), label="truncate"):
        cut = damage.draw(st.integers(0, len(blob) - 1), label="cut")
        del blob[cut:]
    else:
        bit = damage.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
        blob[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(blob))
    with pytest.raises(CorruptFileError) as caught:
        read_checked(path)
    assert caught.value.path == path
    assert _leftovers(directory, {"snapshot.bin"}) == []


def test_sealed_file_with_extra_bytes_or_wrong_magic_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_checked(path, b"payload")
    path.write_bytes(path.read_bytes() + b"!")
    with pytest.raises(CorruptFileError, match="length"):
        read_checked(path)
    atomic_write(path, b"plain file, never sealed, long enough")
    with pytest.raises(CorruptFileError, match="magic"):
        read_checked(path)
