"""Damage to any file gives a valid prefix or CorruptLogError, never a wrong record; and one
flip or cut has exactly the outcome the rule says.

Templates are written once; every example copies one, damages the copy (truncations, bit flips
in segment headers and bodies, older and newest segments) and opens it read-only and then as
the writer.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eventlog import CorruptLogError, EventLog
from eventlog.frame import HEADER_SIZE
from eventlog.segment import SEGMENT_HEADER_SIZE
from tests.eventlog.helpers import (
    BatchInfo,
    Model,
    batches,
    read_until_error,
    segment_files,
    write_model,
)


def _groups(seed: int, count: int, max_size: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    return [
        [rng.randbytes(rng.randrange(max_size)) for _ in range(rng.choice([1, 1, 1, 2, 3, 4]))]
        for _ in range(count)
    ]


class Template:
    def __init__(self, path: Path, model: Model) -> None:
        self.path = path
        self.model = model

    def copy(self, destination: Path) -> Path:
        shutil.copytree(self.path, destination)
        return destination

    def batches(self, segment: Path) -> list[BatchInfo]:
        return batches(self.path / segment.name)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Template]]:
    root = tmp_path_factory.mktemp("templates")
    specs = [
        (root / "many", _groups(1, 50, 700), 4096),  # a dozen small segments
        (root / "one", _groups(2, 25, 300), 64 * 2**20),  # everything in one segment
        (root / "big", _groups(3, 12, 40_000), 128 * 1024),  # large frames, a few segments
    ]
    yield [
        Template(path, write_model(path, groups, segment_bytes))
        for path, groups, segment_bytes in specs
    ]


def _apply(path: Path, kind: str, position: int) -> None:
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        del data[position:]
    else:
        data[position // 8] ^= 1 << (position % 8)
    path.write_bytes(bytes(data))


def _check_outcome(log_dir: Path, model: Model) -> list[int]:
    """The rule, for open_readonly first (it must not repair) and then for the writer."""
    before = {p.name: p.read_bytes() for p in log_dir.iterdir()}
    try:
        reader = EventLog.open_readonly(log_dir)
    except CorruptLogError:
        pass
    else:
        with reader:
            got, _ = read_until_error(reader.read())
            model.check_prefix(got)
    assert {p.name: p.read_bytes() for p in log_dir.iterdir()} == before, "read-only wrote"

    try:
        log = EventLog.open(log_dir)
    except CorruptLogError:
        return []
    with log:
        got, error = read_until_error(log.read())
        model.check_prefix(got)
        if error is not None:
            return []
        assert log.last_seq == len(got)
        recovery = log.recovery
        if recovery.broken_file is not None:
            newest = segment_files(log_dir)[-1]
            kept = Path(recovery.broken_file).read_bytes()
            assert len(kept) == recovery.torn_bytes
            original = before[newest.name]
            cut = len(original) - recovery.torn_bytes - recovery.zero_fill_bytes
            data = newest.read_bytes()
            assert original[:cut] == data[:cut]
            assert original[cut : cut + len(kept)] == kept, "cut bytes not kept whole"
            assert not original[cut + len(kept) :].strip(b"\0"), "zero fill: only zeros"
            assert not data[cut:].strip(b"\0"), "past the cut: only preallocated zeros"

        async def more() -> int:
            return await log.append(b"after damage")

        assert asyncio.run(more()) == len(got) + 1
        assert [r.seq for r in log.read()] == list(range(1, len(got) + 2))
    with EventLog.open(log_dir) as again:
        assert again.recovery.torn_bytes == 0
        assert again.last_seq == len(got) + 1
    return [r.seq for r in got]


damage = st.tuples(st.sampled_from(["truncate", "flip"]), st.integers(0, 2**40), st.booleans())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 2), damages=st.lists(damage, min_size=1, max_size=3), data=st.data())
def test_any_damage_gives_a_valid_prefix_or_corrupt_log_error(
    templates: list[Template],
    which: int,
    damages: list[tuple[str, int, bool]],
    data: st.DataObject,
) -> None:
    template = templates[which]
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = template.copy(Path(tmp) / "log")
        for kind, raw, newest in damages:
            files = segment_files(log_dir)
            index = len(files) - 1 if newest else data.draw(st.integers(0, len(files) - 1))
            path = files[index]
            size = path.stat().st_size
            if size == 0:
                continue
            # Bias positions toward headers and frame boundaries, where the logic lives.
            limit = size if kind == "truncate" else size * 8
            position = data.draw(
                st.one_of(
                    st.just(raw % limit),
                    st.integers(0, min(limit - 1, 8 * SEGMENT_HEADER_SIZE + 8 * HEADER_SIZE)),
                    st.integers(max(0, limit - 8 * HEADER_SIZE), limit - 1),
                )
            )
            _apply(path, kind, position)
        outcome = _check_outcome(log_dir, template.model)
        event("prefix" if outcome else "error or empty")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 2), data=st.data())
def test_single_damage_has_the_exact_expected_outcome(
    templates: list[Template], which: int, data: st.DataObject
) -> None:
    """Sharper than 'prefix or error': one flip or cut has exactly one right answer.

    - an older segment damaged anywhere: reading raises (open may not notice, reading must);
    - any header damage: corruption;
    - newest segment cut: exactly the batches that end before the cut survive;
    - a bit flipped in the newest segment's last batch: that batch is cut as a torn write;
    - a bit flipped in any earlier batch of it: a later commit frame proves it was synced, so
      it is corruption;
    - a bit flipped in the zeros after the last batch: garbage after the end, cut.
    """
    template = templates[which]
    model = template.model
    segments = segment_files(template.path)
    index = data.draw(st.integers(0, len(segments) - 1))
    segment = segments[index]
    newest = index == len(segments) - 1
    size = segment.stat().st_size
    kind = data.draw(st.sampled_from(["truncate", "flip"]))
    limit = size if kind == "truncate" else size * 8
    found = template.batches(segment)
    positions = st.integers(0, limit - 1)
    if newest and found:  # the last batch is where a torn write lives: aim there half the time
        last_start = found[-1].start * (1 if kind == "truncate" else 8)
        positions = st.one_of(positions, st.integers(last_start, limit - 1))
    position = data.draw(positions)
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = template.copy(Path(tmp) / "log")
        _apply(log_dir / segment.name, kind, position)
        byte = position if kind == "truncate" else position // 8
        in_header = byte < SEGMENT_HEADER_SIZE
        event(f"{kind} {'header' if in_header else 'newest' if newest else 'older'}")
        if in_header or not newest:
            try:
                log = EventLog.open(log_dir)
            except CorruptLogError:
                return
            with log, pytest.raises(CorruptLogError):
                list(log.read())
            return
        first = int(segment.name[:20])
        before = [b.last_seq for b in found]
        if kind == "truncate":
            survivors = [b.last_seq for b in found if b.end <= byte]
            expected = survivors[-1] if survivors else first - 1
            assert _check_outcome(log_dir, model) == list(range(1, expected + 1))
            return
        if not found or byte >= found[-1].end:  # in the preallocated zeros: garbage, cut
            event("flip in preallocated space")
            assert _check_outcome(log_dir, model) == list(range(1, model.last_seq + 1))
            return
        hit = next(i for i, b in enumerate(found) if b.start <= byte < b.end)
        event("flip in last batch" if hit == len(found) - 1 else "flip before last batch")
        if hit != len(found) - 1:
            with pytest.raises(CorruptLogError, match="commit frame of a later write"):
                EventLog.open(log_dir)
            return
        expected = before[-2] if len(before) > 1 else first - 1
        assert _check_outcome(log_dir, model) == list(range(1, expected + 1))
