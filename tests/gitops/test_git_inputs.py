"""Repository URLs and branch names a client may hand to git, and the ones it may not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.redact import redact_url
from service.git_inputs import (
    InvalidBranchError,
    InvalidGitUrlError,
    split_credentials,
    validate_branch,
    validate_url,
    without_userinfo,
)


@pytest.mark.parametrize(
    "url",
    [
        "/srv/repos/app",
        "file:///srv/repos/app",
        "file://localhost/srv/repos/app",
        "https://github.com/org/app.git",
        "https://user:token@example.com:8443/app.git",
        "ssh://git@example.com/org/app.git",
        "ssh://git@example.com:2222/org/app.git",
        "git@github.com:org/app.git",
        "example.com:org/app.git",
    ],
)
def test_accepted_urls_come_back_unchanged(url: str) -> None:
    assert validate_url(url) == url


def test_a_relative_local_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate_url("repos/app") == os.path.join(tmp_path, "repos/app")
    assert validate_url("./a:b") == os.path.join(tmp_path, "a:b")  # a '/' first: a path, not scp


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("-uflag", "starts with '-'"),
        ("--upload-pack=touch /tmp/x", "starts with '-'"),
        ("ext::sh -c touch% /tmp/pwned", "transport"),
        ("fd::17", "transport"),
        ("http://example.com/app.git", "unencrypted"),
        ("git://example.com/app.git", "unencrypted"),
        ("ftp://example.com/app.git", "unsupported"),
        ("file://otherhost/srv/app", "absolute local path"),
        ("https:///nohost", "no host"),
        ("ssh://-oProxyCommand=touch%20x/app", "may not start with '-'"),
        ("-oProxyCommand=x:app", "starts with '-'"),
        ("user@-host:app", "may not start with '-'"),
        ("host:", "needs a host and a path"),
        ("https://example.com/a\nb", "control"),
        (" /srv/app", "whitespace"),
    ],
)
def test_rejected_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(InvalidGitUrlError, match=why):
        validate_url(url)


def test_credentials_never_reach_a_message() -> None:
    assert (
        redact_url("fatal: https://bob:s3cret@host/x failed")
        == "fatal: https://bob:***@host/x failed"
    )
    with pytest.raises(InvalidGitUrlError) as caught:
        validate_url("https://bob:s3cret@/x")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("branch", ["main", "feature/x", "release-1.2", "fix_é", "a.b/c-d"])
def test_valid_branch_names(branch: str) -> None:
    assert validate_branch(branch) == branch


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "-b",
        "/a",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a//b",
        "a/",
        "a.",
        ".hidden",
        "x/.y",
        "x.lock",
        "@",
        "a@{1}",
        "a\x01",
    ],
)
def test_invalid_branch_names(branch: str) -> None:
    with pytest.raises(InvalidBranchError):
        validate_branch(branch)


def _git_accepts_branch(branch: str, cwd: Path) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], cwd=cwd, capture_output=True, check=False
    )
    return result.returncode == 0


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab./-@{}~^:?*[\\ é\x01\x7f", min_size=0, max_size=8))
def test_branch_rule_agrees_with_git(tmp_path_factory: pytest.TempPathFactory, branch: str) -> None:
    """Ours is git's own rule, except that we also refuse the lone '@' (HEAD's shorthand)."""
    if "\0" in branch:
        return
    ours = True
    try:
        validate_branch(branch)
    except InvalidBranchError:
        ours = False
    theirs = _git_accepts_branch(branch, tmp_path_factory.getbasetemp())
    assert ours == (theirs and branch != "@"), f"{branch!r}: ours {ours}, git {theirs}"


@pytest.mark.parametrize(
    ("url", "recorded", "credentials"),
    [
        (
            "https://bob:s3cret@example.com:8443/app.git",
            "https://bob:***@example.com:8443/app.git",
            "bob:s3cret",
        ),
        (
            "https://ghp_t0ken@github.com/org/app.git",
            "https://***@github.com/org/app.git",
            "ghp_t0ken",
        ),
        ("https://bob:p%40ss%3Aw@example.com/a", "https://bob:***@example.com/a", "bob:p%40ss%3Aw"),
        ("https://example.com/app.git", "https://example.com/app.git", None),
        ("ssh://git@example.com/org/app.git", "ssh://git@example.com/org/app.git", None),
        ("git@example.com:org/app.git", "git@example.com:org/app.git", None),
        ("file:///srv/repos/app", "file:///srv/repos/app", None),
    ],
)
def test_credentials_are_split_from_the_url_the_log_records(
    url: str, recorded: str, credentials: str | None
) -> None:
    assert split_credentials(validate_url(url)) == (recorded, credentials)
    if credentials is not None:
        assert without_userinfo(recorded) == without_userinfo(url)
        assert "@" not in without_userinfo(url)


def test_an_ssh_url_with_a_password_is_refused() -> None:
    with pytest.raises(InvalidGitUrlError, match="no password") as caught:
        validate_url("ssh://git:s3cret@example.com/org/app.git")
    assert "s3cret" not in str(caught.value)
