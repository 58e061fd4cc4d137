"""Checks on what clients hand to git: repository URLs and branch names.

A URL reaches `git clone` as an argument, so it must never be read as an option (`-u...`,
`--upload-pack=...`) nor name a transport that runs a program (`ext::sh -c ...`, `fd::`).
Git itself refuses `ext::` by default and `GIT_ALLOW_PROTOCOL` is set for every call, but a
client deserves a clear 422 at registration rather than a git error in the background.
Unencrypted `http://` and `git://` are refused: code fetched over them can be altered in transit.
Credentials in an `https://` URL are split off at registration (`split_credentials`): the log
records the URL with `***`, the secrets store keeps them, and git gets them from there.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from projections.branches import branch_problem
from projections.redact import HIDDEN, redact_url

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SSH_SCHEMES = {"ssh", "git+ssh", "ssh+git"}
_PLAIN_SCHEMES = {"http", "git"}


class InvalidGitUrlError(ValueError):
    """The repository URL is not one rewind will pass to git."""


class InvalidBranchError(ValueError):
    """The branch name is not a valid git branch name."""


def validate_url(url: str) -> str:
    """Return the URL as git should get it (local paths made absolute), or raise InvalidGitUrlError.

    Accepted: a local path, `file:///abs`, `https://host/...`, `ssh://[user@]host/...` and the
    scp-like `[user@]host:path`.
    """
    if not url:
        raise InvalidGitUrlError("the git URL is empty")
    if url != url.strip():
        raise InvalidGitUrlError("the git URL has leading or trailing whitespace")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidGitUrlError("the git URL contains control characters")
    if url.startswith("-"):
        raise InvalidGitUrlError(f"the git URL {url!r} starts with '-' (read as an option)")
    if _TRANSPORT.match(url):
        raise InvalidGitUrlError(f"the git URL {url!r} names a '<transport>::' helper; not allowed")
    scheme = _SCHEME.match(url)
    if scheme:
        return _validate_scheme_url(url, scheme.group(1).lower())
    colon, slash = url.find(":"), url.find("/")
    if colon > 0 and (slash == -1 or colon < slash):
        return _validate_scp_like(url, url[:colon], url[colon + 1 :])
    return os.path.abspath(url)


def _validate_scheme_url(url: str, scheme: str) -> str:
    parts = urlsplit(url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidGitUrlError(f"a file:// URL needs an absolute local path: {url!r}")
        return url
    if scheme in _PLAIN_SCHEMES:
        raise InvalidGitUrlError(f"{scheme}:// is unencrypted; use https:// or ssh://")
    if scheme != "https" and scheme not in _SSH_SCHEMES:
        raise InvalidGitUrlError(f"unsupported git URL scheme {scheme!r}")
    if not parts.hostname:
        raise InvalidGitUrlError(f"the git URL {redact_url(url)!r} has no host")
    if parts.hostname.startswith("-") or (parts.username or "").startswith("-"):
        raise InvalidGitUrlError("a git URL's host or user may not start with '-'")
    if scheme in _SSH_SCHEMES and parts.password is not None:
        raise InvalidGitUrlError("an ssh:// URL takes no password: ssh authenticates with keys")
    return url


def _validate_scp_like(url: str, authority: str, path: str) -> str:
    user, _, host = authority.rpartition("@")
    if not host or not path:
        raise InvalidGitUrlError(f"the git URL {url!r} needs a host and a path (host:path)")
    if host.startswith("-") or user.startswith("-"):
        raise InvalidGitUrlError("a git URL's host or user may not start with '-'")
    return url


def split_credentials(url: str) -> tuple[str, str | None]:
    """A validated URL as the log may record it, and the credentials it held, which may not.

    The credentials of an `https://` URL are its userinfo (`user:password`, or a token alone:
    `https://<token>@github.com/...`), kept as written (percent-encoded); the recorded URL
    shows them as `***`, the user of `user:password` kept. Other URLs carry no secret
    (`ssh://git@host` names an account; ssh authenticates with keys) and come back whole.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{HIDDEN}" if colon else HIDDEN
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}")), userinfo


def without_userinfo(url: str) -> str:
    """The URL git is given when the credentials come from the secrets store."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def validate_branch(branch: str) -> str:
    """Return `branch` if the domain's rule accepts it (`git check-ref-format --branch`
    would), else raise: the git layer's defensive check, with the rule ``decide`` applies."""
    problem = branch_problem(branch)
    if problem:
        raise InvalidBranchError(problem)
    return branch
