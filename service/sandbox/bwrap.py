"""Starting a command inside its sandbox with bubblewrap (see the package docstring).

Nothing the agent must not see travels in a command line: bwrap's own arguments (they carry the
agent's environment, which may hold credentials) go through `--args`, the seccomp program
through `--seccomp`, both as memory files.

The job's directories live in the data directory, which only the server's user may traverse;
bwrap runs as the agent's uid and must find them. So, when the server is root, the child that
becomes bwrap first makes a private mount namespace of its own (still root), binds the three
directories under a staging tmpfs on /run, and only then drops to the agent's uid and executes
bwrap, which binds them from there. The host's mounts never change,
and inside the sandbox /run is an empty tmpfs again.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from service.sandbox import tools
from service.sandbox.lifetime import die_with_parent
from service.sandbox.network import RESOLV_CONF, Network, NetworkSetupError
from service.sandbox.seccomp import no_unix_sockets
from service.sandbox.spec import AGENT_HOME, SandboxSpec

BWRAP = "bwrap"
"""Named in messages; run by its absolute path (`tools.path`)."""
STAGE = "/run"
"""Where the child that becomes bwrap binds the job's directories (its own mount namespace)."""
_ALWAYS_HIDDEN = ("/home", "/root", "/run", "/var/run", "/var/tmp", "/tmp", "/dev/shm")
"""Where the host keeps users' files, sockets and temporary files: empty in every sandbox."""
_INFO_TIMEOUT_S = 10.0
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


class SandboxStartError(RuntimeError):
    """The sandbox could not be built; the command did not start."""


class Sandboxed:
    """A running sandboxed agent: the bwrap process (the agent's stand-in for the wrapper) and
    its network, which `close()` ends once the agent has exited."""

    def __init__(self, process: subprocess.Popen[bytes], network: Network) -> None:
        self.process = process
        self.network = network

    def close(self) -> None:
        self.network.close()


class _Dirs:
    """The job's directories as bwrap finds them: their own paths when bwrap runs as the
    server's user, else their staged names (see `_child_setup`)."""

    def __init__(self, spec: SandboxSpec) -> None:
        own = {"workspace": spec.workspace, "home": spec.home, "tmp": spec.tmp}
        self.sources = {name: path for name, path in own.items() if path is not None}
        self.staged = spec.uid is not None

    def source(self, name: str) -> str | None:
        if name not in self.sources:
            return None
        return f"{STAGE}/{name}" if self.staged else self.sources[name]


def _arguments(
    spec: SandboxSpec,
    env: Mapping[str, str],
    dirs: _Dirs,
    *,
    seccomp_fd: int,
    resolv_fd: int,
    sync: tuple[int, int] | None,
) -> list[str]:
    """bwrap's arguments, in the order its mounts must happen (later ones on top)."""
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--hostname",
        "rewind-agent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    for path in _ALWAYS_HIDDEN:
        args += _hidden(path)
    args += _own_dir(dirs.source("home"), AGENT_HOME) + _own_dir(dirs.source("tmp"), "/tmp")
    args += _private_parents([*spec.hide, spec.workspace])
    hidden = [(path, _hidden(path)) for path in spec.hide]
    for _, mounts in hidden:
        args += mounts
    args += ["--ro-bind-data", str(resolv_fd), os.path.realpath("/etc/resolv.conf")]
    args += ["--bind", dirs.source("workspace") or spec.workspace, spec.workspace]
    for path, mounts in hidden:  # empty and read-only, but for the path to the workspace
        if "--tmpfs" in mounts:
            args += ["--remount-ro", path]
    args += ["--chdir", spec.workspace, "--seccomp", str(seccomp_fd), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if sync is not None:
        args += ["--info-fd", str(sync[0]), "--block-fd", str(sync[1])]
    return args


def _hidden(path: str) -> list[str]:
    """Mounts that make `path` look empty: a tmpfs on a directory, /dev/null on a file."""
    if os.path.islink(path) or not os.path.lexists(path):
        return []
    if os.path.isdir(path):
        return ["--tmpfs", path]
    return ["--ro-bind", "/dev/null", path]


def _private_parents(paths: list[str]) -> list[str]:
    """Mount points bwrap would otherwise create 0755 inside the job's own /tmp or home (a
    data directory under /tmp puts the path to the workspace there): made 0700 first, so
    nothing in the data directory is open to others, not even an empty directory."""
    made: list[str] = []
    for path in paths:
        parts = Path(path).parts
        for depth in range(2, len(parts)):
            parent = str(Path(*parts[:depth]))
            if parent not in made and _under(parent, ("/tmp", AGENT_HOME)):
                made.append(parent)
    return [arg for parent in made for arg in ("--perms", "0700", "--dir", parent)]


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path.startswith(root + "/") for root in roots)


def _own_dir(source: str | None, where: str) -> list[str]:
    """The job's own directory at `where`, or an empty one the command may write."""
    if source is None:
        return ["--perms", "0700", "--tmpfs", where]
    return ["--bind", source, where]


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("rewind-sandbox", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _child_setup(spec: SandboxSpec, dirs: _Dirs) -> Callable[[], None]:
    """The preexec function of the bwrap process: stage the directories (as root), drop to
    the agent's uid, die with the parent. Runs between fork and exec: no allocation-heavy
    work, and any failure exits 126 (bwrap never runs half-prepared)."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    staged = [(path.encode(), f"{STAGE}/{name}".encode()) for name, path in dirs.sources.items()]

    def setup() -> None:
        try:
            os.setpgid(0, 0)  # see service.agents.wrapper: the wrapper forwards stop signals
            if spec.uid is not None:
                _stage(libc, staged)
                os.setgroups([])
                os.setgid(spec.gid if spec.gid is not None else spec.uid)
                os.setuid(spec.uid)
            die_with_parent(libc, parent)
        except OSError as exc:
            os.write(2, f"rewind-sandbox: {exc}\n".encode())
            os._exit(126)

    return setup


def _stage(libc: ctypes.CDLL, staged: list[tuple[bytes, bytes]]) -> None:
    """Bind each source at its target under a fresh tmpfs on `STAGE`, in a mount namespace of
    this process alone. The sources are opened first (a source may lie under `STAGE`), and
    after the unshare: a mount of another namespace cannot be bound here."""
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    fds = [os.open(source, os.O_PATH | os.O_DIRECTORY) for source, _ in staged]
    if libc.mount(b"tmpfs", STAGE.encode(), b"tmpfs", 0, b"mode=0755") != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs {STAGE}")
    for fd, (_, target) in zip(fds, staged, strict=True):
        os.mkdir(target, 0o755)
        if libc.mount(f"/proc/self/fd/{fd}".encode(), target, None, _MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), f"bind {target.decode()}")
        os.close(fd)


def _spawn(
    spec: SandboxSpec,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int,
    stderr: int,
    sync: tuple[int, int] | None,
) -> subprocess.Popen[bytes]:
    """bwrap running `argv` in `spec`; waiting on the block fd of `sync` when given."""
    dirs = _Dirs(spec)
    seccomp_fd = _memfd(no_unix_sockets())
    resolv_fd = _memfd(RESOLV_CONF)
    args_fd = -1
    try:
        arguments = _arguments(
            spec, env, dirs, seccomp_fd=seccomp_fd, resolv_fd=resolv_fd, sync=sync
        )
        args_fd = _memfd(b"".join(arg.encode() + b"\0" for arg in arguments))
        inherited = (seccomp_fd, resolv_fd, args_fd, *(sync or ()))
        try:
            return subprocess.Popen(
                [tools.path(BWRAP), "--args", str(args_fd), "--", *argv],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                pass_fds=inherited,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                cwd="/",
                preexec_fn=_child_setup(spec, dirs),  # noqa: PLW1509 (async-signal-safe enough: no locks taken)
            )
        except subprocess.SubprocessError as exc:
            raise SandboxStartError(f"cannot prepare the sandbox: {exc}") from exc
        except OSError as exc:
            raise SandboxStartError(f"cannot start {BWRAP}: {exc.strerror or exc}") from exc
    finally:
        for fd in (seccomp_fd, resolv_fd, args_fd):
            if fd >= 0:
                os.close(fd)


def start(
    spec: SandboxSpec, argv: Sequence[str], env: Mapping[str, str], *, output: int
) -> Sandboxed:
    """Start `argv` in the sandbox `spec` with exactly `env`, stdout and stderr to `output`.

    Returns once the agent runs inside a finished sandbox (network and rules in place).
    SandboxStartError if any part could not be built: then nothing of the agent ran.
    """
    if not spec.network:
        process = _spawn(spec, argv, env, stdout=output, stderr=output, sync=None)
        return Sandboxed(process, Network.none())
    info_r, info_w = os.pipe2(os.O_CLOEXEC)
    block_r, block_w = os.pipe2(os.O_CLOEXEC)
    try:
        process = _spawn(spec, argv, env, stdout=output, stderr=output, sync=(info_w, block_r))
        os.close(info_w)
        os.close(block_r)
        info_w = block_r = -1
        try:
            pid = _read_child_pid(info_r, process)
            _await_loopback(pid, process)
            network = Network.attach(pid, spec.allow, spec.deny)
            os.write(block_w, b"1")
        except BaseException as exc:
            process.kill()
            process.wait()
            if isinstance(exc, NetworkSetupError):
                raise SandboxStartError(str(exc)) from exc
            raise
        return Sandboxed(process, network)
    finally:
        for fd in (info_r, info_w, block_r, block_w):
            if fd >= 0:
                os.close(fd)


def run(
    spec: SandboxSpec, argv: Sequence[str], env: Mapping[str, str], *, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` to completion in a sandbox without network; its stdout and stderr.

    Blocking. On timeout the sandbox is killed (bwrap's death takes the whole PID namespace
    with it) and `subprocess.TimeoutExpired` propagates."""
    if spec.network:
        raise ValueError("a command run to completion gets no network")
    process = _spawn(spec, argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, sync=None)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)


def _read_child_pid(fd: int, process: subprocess.Popen[bytes]) -> int:
    """The sandbox's first process, from bwrap's info fd (JSON, written once it exists)."""
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], _INFO_TIMEOUT_S)
        if not ready:
            raise SandboxStartError(f"{BWRAP} did not report its namespaces in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        try:
            return int(json.loads(b"".join(chunks))["child-pid"])
        except ValueError:
            continue
    code = process.wait()
    raise SandboxStartError(f"{BWRAP} failed before the command started (exit {code})")


def _await_loopback(pid: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until bwrap has brought up the namespace's loopback. bwrap reports the namespace
    before it configures it; slirp4netns configuring the same namespace meanwhile makes
    bwrap's netlink request fail now and then."""
    deadline = time.monotonic() + _INFO_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/net/fib_trie", "rb") as routes:
                if b"127.0.0.1" in routes.read():
                    return
        except FileNotFoundError:
            break
        if process.poll() is not None:
            break
        time.sleep(0.001)
    code = process.poll()
    raise SandboxStartError(f"{BWRAP} did not bring up the sandbox's loopback (exit {code})")


def owned_by(path: Path, uid: int | None, gid: int | None) -> None:
    """Make `path` (a tree the server built) the agent's: owner and group, recursively."""
    if uid is None:
        return
    group = -1 if gid is None else gid
    os.lchown(path, uid, group)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, group)
