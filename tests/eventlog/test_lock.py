"""One writer per data directory: a second process gets LogLockedError naming the owner, and
writes nothing; the lock dies with its owner, even by SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from eventlog import EventLog, LogLockedError
from tests.eventlog.helpers import PYTHON, ROOT, child_env, tree, write_model

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from eventlog import EventLog
    log = EventLog.open(sys.argv[1])
    asyncio.run(log.append(b"from the holder"))
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    """
)

CONTENDER = textwrap.dedent(
    """
    import asyncio, sys
    from eventlog import EventLog, LogLockedError
    try:
        log = EventLog.open(sys.argv[1])
    except LogLockedError as err:
        print(f"locked {err.pid} | {err}", flush=True)
        sys.exit(3)
    asyncio.run(log.append(b"from the contender"))
    print("opened", flush=True)
    """
)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )


def _start_holder(log_dir: Path) -> subprocess.Popen[str]:
    holder = _python(HOLDER, str(log_dir))
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line == "holding\n", holder.stderr.read() if holder.stderr else line
    return holder


def test_second_process_gets_log_locked_error_naming_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log_dir = data_dir / "log"
    write_model(log_dir, [[b"before"]])
    holder = _start_holder(log_dir)
    try:
        before = tree(data_dir)
        assert (log_dir / "LOCK").read_text().strip() == str(holder.pid)

        contender = _python(CONTENDER, str(log_dir))
        out, err = contender.communicate(timeout=60)
        assert contender.returncode == 3, err
        assert out.startswith(f"locked {holder.pid} |"), out
        assert f"process {holder.pid}" in out

        with pytest.raises(LogLockedError) as caught:  # and from this process, too
            EventLog.open(log_dir)
        assert caught.value.pid == holder.pid
        assert str(holder.pid) in str(caught.value)

        assert tree(data_dir) == before, "a refused open wrote something"
        with EventLog.open_readonly(log_dir) as reader:  # tools still read
            assert [r.payload for r in reader.read()] == [b"before", b"from the holder"]
        assert tree(data_dir) == before
    finally:
        holder.kill()
        holder.communicate()


def test_lock_is_released_when_the_owner_is_killed(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    holder = _start_holder(log_dir)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    started = time.monotonic()
    with EventLog.open(log_dir) as log:
        assert time.monotonic() - started < 5
        assert [r.payload for r in log.read()] == [b"from the holder"]
    contender = _python(CONTENDER, str(log_dir))
    out, err = contender.communicate(timeout=60)
    assert contender.returncode == 0, err
    assert out == "opened\n"


def test_clean_close_releases_the_lock_in_process(tmp_path: Path) -> None:
    first = EventLog.open(tmp_path)
    with pytest.raises(LogLockedError):
        EventLog.open(tmp_path)
    first.close()
    first.close()  # idempotent
    with EventLog.open(tmp_path) as second:
        assert second.last_seq == 0
