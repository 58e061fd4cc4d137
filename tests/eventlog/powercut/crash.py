"""The states a power cut could leave, built from a recorded trace.

The model, per file (inode): bytes made durable by its last fsync/fdatasync are kept; of the
operations since (writes, truncations, allocations), a power cut keeps either nothing, all, a
prefix (the last kept write possibly cut anywhere), or any subset of the 4 KiB pages they
touched, the other pages reading as they were durably (zeros in allocated space). Per
directory: entry operations (creations, renames, unlinks) are durable once the directory is
fsynced; of later ones, any prefix survives. Files and directories choose independently, with
no ordering between them: the harshest model a POSIX filesystem permits, not what ext4 happens
to do.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.eventlog.powercut.recorder import (
    ROOT_INODE,
    Ack,
    Allocate,
    Create,
    DirSync,
    Op,
    Rename,
    SetSize,
    Sync,
    Unlink,
    Write,
)

PAGE = 4096
FileOp = Write | SetSize | Allocate


@dataclass
class _File:
    durable: bytearray = field(default_factory=bytearray)
    pending: list[FileOp] = field(default_factory=list)


@dataclass
class _Dir:
    durable: dict[str, int] = field(default_factory=dict)
    pending: list[tuple[str, int | None]] = field(default_factory=list)
    """(name, inode): a link; (name, None): an unlink."""


def _apply(buf: bytearray, op: FileOp, cut: int | None = None) -> None:
    if isinstance(op, Write):
        data = op.data if cut is None else op.data[:cut]
        if op.offset > len(buf):
            buf.extend(bytes(op.offset - len(buf)))
        buf[op.offset : op.offset + len(data)] = data
    elif isinstance(op, SetSize):
        del buf[op.size :]
        buf.extend(bytes(op.size - len(buf)))
    elif op.end > len(buf):
        buf.extend(bytes(op.end - len(buf)))


@dataclass
class State:
    """One state a power cut could leave: what to put on disk, and what was acknowledged."""

    point: int
    files: dict[str, bytes]
    """Relative path -> bytes; directories are the parents of these (and `dirs`)."""
    dirs: list[str]
    acked: dict[int, bytes]
    how: str

    def materialize(self, root: Path) -> None:
        root.mkdir(parents=True)
        for directory in sorted(self.dirs):
            (root / directory).mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


class Model:
    """The trace replayed up to a point: durable and pending state of every file and dir."""

    def __init__(self) -> None:
        self.files: dict[int, _File] = {}
        self.dirs: dict[int, _Dir] = {ROOT_INODE: _Dir()}
        self.acked: dict[int, bytes] = {}

    def step(self, op: Op) -> None:
        if isinstance(op, Create):
            self.dirs[op.directory].pending.append((op.name, op.inode))
            if op.is_dir:
                self.dirs[op.inode] = _Dir()
            else:
                self.files[op.inode] = _File()
        elif isinstance(op, Rename):
            self.dirs[op.source_dir].pending.append((op.source, None))
            self.dirs[op.target_dir].pending.append((op.target, op.inode))
        elif isinstance(op, Unlink):
            self.dirs[op.directory].pending.append((op.name, None))
        elif isinstance(op, Write | SetSize | Allocate):
            self.files[op.inode].pending.append(op)
        elif isinstance(op, Sync):
            file = self.files[op.inode]
            for pending in file.pending:
                _apply(file.durable, pending)
            file.pending.clear()
        elif isinstance(op, DirSync):
            directory = self.dirs[op.directory]
            for name, inode in directory.pending:
                _link(directory.durable, name, inode)
            directory.pending.clear()
        elif isinstance(op, Ack):
            self.acked.update(op.records)

    def durable(self, point: int) -> State:
        """The state keeping only what is durable: no pending byte, name or unlink survives."""
        files: dict[str, bytes] = {}
        dirs: list[str] = []

        def walk(inode: int, prefix: str) -> None:
            for name, child in self.dirs[inode].durable.items():
                path = f"{prefix}{name}"
                if child in self.dirs:
                    dirs.append(path)
                    walk(child, f"{path}/")
                else:
                    files[path] = bytes(self.files[child].durable)

        walk(ROOT_INODE, "")
        return State(point, files, dirs, dict(self.acked), "durable only")

    def crash(self, point: int, rng: random.Random) -> State:
        """One state a power cut at this point could leave, chosen with `rng`."""
        hows: list[str] = []
        names: dict[int, dict[str, int]] = {}
        for inode, directory in self.dirs.items():
            entries = dict(directory.durable)
            keep = rng.randint(0, len(directory.pending)) if directory.pending else 0
            for name, target in directory.pending[:keep]:
                _link(entries, name, target)
            if directory.pending:
                hows.append(f"dir{inode}:{keep}/{len(directory.pending)}")
            names[inode] = entries
        files: dict[str, bytes] = {}
        dirs: list[str] = []
        images: dict[int, bytes] = {}

        def walk(inode: int, prefix: str) -> None:
            for name, child in names[inode].items():
                path = f"{prefix}{name}"
                if child in self.dirs:
                    dirs.append(path)
                    walk(child, f"{path}/")
                    continue
                if child not in images:
                    images[child], how = self._image(self.files[child], rng)
                    if how:
                        hows.append(f"{path}:{how}")
                files[path] = images[child]

        walk(ROOT_INODE, "")
        return State(point, files, dirs, dict(self.acked), " ".join(hows))

    @staticmethod
    def _image(file: _File, rng: random.Random) -> tuple[bytes, str]:
        pending = file.pending
        if not pending:
            return bytes(file.durable), ""
        mode = rng.choices(["none", "all", "prefix", "pages"], [1, 1, 3, 4])[0]
        buf = bytearray(file.durable)
        if mode == "none":
            return bytes(buf), "none"
        if mode == "all":
            for op in pending:
                _apply(buf, op)
            return bytes(buf), "all"
        if mode == "prefix":
            keep = rng.randint(0, len(pending))
            for op in pending[:keep]:
                _apply(buf, op)
            how = f"prefix {keep}/{len(pending)}"
            if keep < len(pending) and isinstance(pending[keep], Write):
                write = pending[keep]
                assert isinstance(write, Write)
                page_cuts = [c for c in range(0, len(write.data), PAGE) if c]
                cut = rng.choice([rng.randrange(len(write.data) + 1), *page_cuts[:3]])
                _apply(buf, write, cut)
                how += f"+{cut}B"
            return bytes(buf), how
        full = bytearray(buf)
        for op in pending:
            _apply(full, op)
        touched = sorted(
            {
                page
                for op in pending
                if isinstance(op, Write) and op.data
                for page in range(op.offset // PAGE, (op.offset + len(op.data) - 1) // PAGE + 1)
            }
        )
        kept = {page for page in touched if rng.random() < rng.choice([0.2, 0.5, 0.8])}
        size = len(full) if len(full) == len(buf) or rng.random() < 0.7 else len(buf)
        out = bytearray(size)
        for page in range(0, (size + PAGE - 1) // PAGE):
            source = full if page in kept else buf
            chunk = source[page * PAGE : (page + 1) * PAGE]
            out[page * PAGE : page * PAGE + len(chunk)] = chunk
        del out[size:]
        return bytes(out), f"pages {len(kept)}/{len(touched)} size {size}"


def _link(entries: dict[str, int], name: str, inode: int | None) -> None:
    if inode is None:
        entries.pop(name, None)
    else:
        entries[name] = inode


def crash_states(trace: list[Op], count: int, seed: int) -> Iterator[State]:
    """`count` states at crash points spread over the whole trace (each point: the state after
    the operations before it; a point drawn twice gives two variants), made one at a time."""
    rng = random.Random(seed)
    points = sorted(rng.randrange(1, len(trace) + 1) for _ in range(count))
    model = Model()
    done = 0
    for index, point in enumerate(points):
        while done < point:
            model.step(trace[done])
            done += 1
        yield model.crash(point, random.Random(f"{seed}/{index}"))


def durable_state(trace: list[Op], point: int) -> State:
    """What is durable after the first `point` operations, and nothing else."""
    model = Model()
    for op in trace[:point]:
        model.step(op)
    return model.durable(point)
