"""A seccomp filter, as raw classic BPF for `bwrap --seccomp FD`: no Unix-domain sockets.

A read-only bind mount does not stop `connect()` on a socket file, and hiding every directory
that may hold one is guesswork; refusing `socket(AF_UNIX, ...)` closes the whole class. Pairs
from `socketpair()` stay allowed (runtimes use them for their own child processes: they connect
nothing outside). `io_uring_setup` is refused because io_uring can create sockets without the
`socket` system call. A call from another ABI (x32, or 32-bit compat) kills the process: the
filter checks numbers of the native ABI only.

No library builds this: the program is thirteen instructions and is checked by the tests against
a real kernel (an agent that tries gets EPERM, and one on a compat ABI gets killed).
"""

from __future__ import annotations

import errno
import platform
import socket
import struct

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_X32_SYSCALL_BIT = 0x40000000

_NR_OFFSET = 0
_ARCH_OFFSET = 4
_ARG0_OFFSET = 16  # args[0], low 32 bits on a little-endian machine


class _Abi:
    def __init__(self, audit_arch: int, socket_nr: int, io_uring_setup_nr: int) -> None:
        self.audit_arch = audit_arch
        self.socket_nr = socket_nr
        self.io_uring_setup_nr = io_uring_setup_nr


_ABIS = {
    "x86_64": _Abi(audit_arch=0xC000003E, socket_nr=41, io_uring_setup_nr=425),
    "aarch64": _Abi(audit_arch=0xC00000B7, socket_nr=198, io_uring_setup_nr=425),
}


class SeccompUnsupportedError(RuntimeError):
    """No filter is known for this machine's architecture."""


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def no_unix_sockets(machine: str | None = None) -> bytes:
    """The filter program for this machine (or `machine`, as `platform.machine()` names it)."""
    name = machine or platform.machine()
    abi = _ABIS.get(name)
    if abi is None:
        raise SeccompUnsupportedError(f"no seccomp filter for the {name} architecture")
    program = [
        _insn(_BPF_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        _insn(_BPF_JEQ_K, 1, 0, abi.audit_arch),
        _insn(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_BPF_LD_W_ABS, 0, 0, _NR_OFFSET),
        _insn(_BPF_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        _insn(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_BPF_JEQ_K, 0, 1, abi.io_uring_setup_nr),
        _insn(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        _insn(_BPF_JEQ_K, 0, 3, abi.socket_nr),
        _insn(_BPF_LD_W_ABS, 0, 0, _ARG0_OFFSET),
        _insn(_BPF_JEQ_K, 0, 1, socket.AF_UNIX),
        _insn(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        _insn(_BPF_RET_K, 0, 0, _RET_ALLOW),
    ]
    return b"".join(program)
