"""The branch-name rule (``projections.branches``): one rule for ``decide``, which refuses a
registration with it, and for the git layer, which checks again with the same function (its
agreement with ``git check-ref-format`` is tested in tests/gitops)."""

from __future__ import annotations

import pytest

from projections import commands as c
from projections.branches import branch_problem
from tests.projections.world import World


@pytest.mark.parametrize("branch", ["main", "feature/x", "release-1.2", "a.b", "u@x", "é"])
def test_branch_names_git_accepts(branch: str) -> None:
    assert branch_problem(branch) is None


@pytest.mark.parametrize(
    ("branch", "why"),
    [
        ("", "empty"),
        ("--orphan", "starts with '-'"),
        ("@", "'@{' or is '@'"),
        ("a@{1}", "'@{' or is '@'"),
        ("a b", "a space"),
        ("a~1", "one of"),
        ("main..x", "'..' or '//'"),
        ("a/", "ends with '/'"),
        ("x/.y", "a component starts with '.'"),
        ("x.lock", "ends with '.lock'"),
    ],
)
def test_branch_names_refused_with_why(branch: str, why: str) -> None:
    problem = branch_problem(branch)
    assert problem is not None
    assert problem.startswith(f"invalid branch name {branch!r}: ") and why in problem


def test_decide_refuses_a_bad_branch_before_anything_else() -> None:
    """The API used to judge the branch before decide saw the name: the order is kept."""
    w = World().boot(repos=("api",))
    for name in ("api", "not a name"):
        register = c.RegisterRepo(repo=name, git_url="https://g/x.git", branch="a..b")
        error = w.refuse(register, "invalid", "invalid_branch")
        assert error.message == branch_problem("a..b")
