"""The same hostile probe against the sandbox of a server that does not run as root: agents
keep the server's uid, so only the namespaces (not file permissions) keep them from the
server's data, processes and sockets.

The server here is `nonroot_driver.py`, run as a dedicated unprivileged account; its "data
directory" holds the same kinds of files as a real one. Networked agents need /dev/net/tun
usable by that account (slirp4netns opens it): Debian's default mode is 0666, this machine's
is 0600, so the test opens it for the run and restores the mode after.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psutil
import pytest

import service
from tests.security.conftest import BAIT_DIR, PRIVATE_IP, Bait, probe_prompt
from tests.security.test_sandbox import ABILITIES, ESCAPES

pytestmark = pytest.mark.xdist_group("sandbox-bait")
"""One worker runs every test that uses the bait: it adds addresses to lo and owns a socket."""
USER = "rewind-nonroot-test"
TUN = Path("/dev/net/tun")
SYSTEM_PYTHON = shutil.which("python3", path=os.defpath) or "/usr/bin/python3"
"""Not the project's (it may live in root's home): the one every account can run."""


def _account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", USER], check=True
        )
        return pwd.getpwnam(USER)


def _install(root: Path) -> None:
    """`service.sandbox` and its two dependencies, readable by everyone."""
    package = Path(service.__file__).parent
    (root / "service" / "sandbox").mkdir(parents=True)
    shutil.copy(package / "__init__.py", root / "service")
    for source in (package / "sandbox").glob("*.py"):
        shutil.copy(source, root / "service" / "sandbox")
    for module in (msgspec, psutil):
        assert module.__file__ is not None
        shutil.copytree(Path(module.__file__).parent, root / module.__name__)
    shutil.copy(Path(__file__).with_name("nonroot_driver.py"), root)


@pytest.fixture(scope="module")
def attack(bait: Bait) -> Iterator[dict[str, str]]:
    account = _account()
    root = BAIT_DIR / f"nonroot-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    _install(root)
    data = root / "data"  # the server's, as a real one: 0700, its files 0600
    job = data / "runs" / "job-1"
    for path in (data / "log", job / "home", job / "tmp", data / "workspaces" / "job-1"):
        path.mkdir(parents=True)
    (data / "admin-token").write_text("secret-token\n")
    (data / "log" / "00000000000000000001.seg").write_bytes(b"\0" * 64)
    victim = data / "workspaces" / "job-0"
    victim.mkdir()
    (victim / "secret.txt").write_text("s3cret\n")
    for path in [root / "data", *(root / "data").rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    sleeper = subprocess.Popen(["sleep", "120"], user=account.pw_uid, group=account.pw_gid)
    tun_mode = stat.S_IMODE(TUN.stat().st_mode)
    TUN.chmod(0o666)
    try:
        workspace = data / "workspaces" / "job-1"
        targets = {
            "admin_token": str(data / "admin-token"),
            "data_dir": str(data),
            "segment": str(data / "log" / "00000000000000000001.seg"),
            "secrets_dir": str(data / "runs"),
            "other_secret": str(victim / "secret.txt"),
            "system_dir": str(BAIT_DIR),
            "server_pid": os.getpid(),
            "other_pid": sleeper.pid,
            "server_port": bait.bait.port,
            "bait_port": bait.bait.port,
            "allowed_port": bait.allowed.port,
            "private_ip": PRIVATE_IP,
            "host_ip": bait.host_ip,
            "unix_socket": str(BAIT_DIR / "bait.sock"),
            "marker": f"rewind-leftover-{uuid.uuid4().hex}",
        }
        request = {
            "allow": [f"{bait.host_ip}:{bait.allowed.port}"],
            "workspace": str(workspace),
            "home": str(job / "home"),
            "tmp": str(job / "tmp"),
            "hide": [str(data), str(workspace.parent)],
            "output": str(job / "output"),
            "argv": [SYSTEM_PYTHON, "-c", probe_prompt(targets)],
            "env": {"PATH": "/usr/bin:/bin", "HOME": "/home/agent", "TMPDIR": "/tmp"},
        }
        done = subprocess.run(
            [SYSTEM_PYTHON, str(root / "nonroot_driver.py"), json.dumps(request)],
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            cwd=root,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(root)},
            capture_output=True,
            timeout=180,
            check=False,
        )
        lines = [line for line in done.stdout.decode().splitlines() if line.startswith("PROBE ")]
        assert done.returncode == 0 and lines, done.stdout.decode() + done.stderr.decode()
        yield json.loads(lines[-1].removeprefix("PROBE "))
    finally:
        TUN.chmod(tun_mode)
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        shutil.rmtree(root)


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_non_root_servers_sandbox_refuses(attack: dict[str, str], escape: str) -> None:
    assert attack[escape].startswith("blocked: "), attack[escape]


@pytest.mark.parametrize("ability", ABILITIES)
def test_the_agent_of_a_non_root_server_keeps_what_it_needs(
    attack: dict[str, str], ability: str
) -> None:
    assert attack[ability].startswith("ok: "), attack[ability]
