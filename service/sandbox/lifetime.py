"""Tying a child process's life to its parent's, between fork and exec."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(libc: ctypes.CDLL, parent: int) -> None:
    """In a forked child (a preexec function): the kernel SIGKILLs this process when
    `parent` dies. If the parent died before the request took effect, the child exits 1 at
    once. OSError if the kernel refused the request."""
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)
