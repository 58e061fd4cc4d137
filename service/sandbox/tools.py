"""The host programs the sandbox runs, found by absolute path: nft and friends live in sbin
directories that a non-root PATH (or a service manager's) often lacks."""

from __future__ import annotations

import os
import shutil

_SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAMES = ("bwrap", "slirp4netns", "nsenter", "nft")


def find(name: str) -> str | None:
    """The program's absolute path, searching PATH then the usual system directories."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{_SBIN}")


def path(name: str) -> str:
    """Like `find`, for a program the startup check found: its bare name if it went away
    since (the error then names it)."""
    return find(name) or name
