"""Which branch names rewind accepts: those ``git check-ref-format --branch`` accepts, and
never one git could read as an option.

One rule: ``decide`` judges a registration with it (``invalid_branch``), and the git layer
checks again with the same function before a branch reaches git's command line.
"""

from __future__ import annotations

import re
from typing import Final

_BAD_REF_CHARS: Final = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_problem(branch: str) -> str | None:
    """Why ``branch`` is refused, as a sentence naming it; None when it is a branch name."""
    why = _why(branch)
    return None if why is None else f"invalid branch name {branch!r}: {why}"


def _why(branch: str) -> str | None:
    if not branch:
        return "empty"
    if branch.startswith("-"):
        return "starts with '-'"
    if branch == "@" or "@{" in branch:
        return "contains '@{' or is '@'"
    if _BAD_REF_CHARS.search(branch):
        return "contains a space, a control character or one of ~^:?*[\\"
    if ".." in branch or "//" in branch:
        return "contains '..' or '//'"
    if branch.startswith("/") or branch.endswith(("/", ".")):
        return "starts with '/' or ends with '/' or '.'"
    for part in branch.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "a component starts with '.' or ends with '.lock'"
    return None
