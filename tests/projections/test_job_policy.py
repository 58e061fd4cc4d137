"""Issue 14, agents are untrusted code: a job's environment is data (the deny list, then the
admin's allowlist, ``projections/env_policy.py``), and a server without a sandbox creates only
admins' jobs. Everything goes through ``decide`` in a ``World``, like the service drives it."""

from __future__ import annotations

from typing import Any, Final

import msgspec
import pytest

from projections import commands as c
from projections.env_policy import DENIED, Denied, denied
from projections.events import AgentSpec, JobCreated, RepoSettings
from tests.projections.world import SETTINGS, World

ISSUE_NAMES: Final = [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "LOCPATH", "NLSPATH",
    "MALLOC_CHECK_", "GLIBC_TUNABLES", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN",
    "BASH_ENV", "ENV", "BASH_FUNC_ls", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS",
    "CDPATH", "GLOBIGNORE", "ZDOTDIR", "PATH", "HOME", "SHELL", "TMPDIR", "USER", "LOGNAME", "PWD",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONBREAKPOINT", "PYTHONWARNINGS",
    "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_REPL_EXTERNAL_MODULE", "NPM_CONFIG_REGISTRY", "PERL5LIB", "PERL5OPT", "PERLLIB",
    "PERLIO", "RUBYOPT", "RUBYLIB", "GEM_HOME", "BUNDLE_GEMFILE", "LUA_INIT", "TCLLIBPATH",
    "PHPRC", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
    "DOTNET_STARTUP_HOOKS", "CORECLR_PROFILER_PATH", "COMPlus_EnableDiagnostics",
    "GODEBUG", "GOFLAGS", "RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_HOME", "CC", "CXX", "LDFLAGS",
    "CFLAGS", "MAKEFLAGS", "GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "GIT_DIR", "GIT_ASKPASS",
    "SSH_AUTH_SOCK", "SSH_ASKPASS", "SUDO_ASKPASS", "EDITOR", "VISUAL", "PAGER",
    "XDG_CONFIG_HOME", "OPENSSL_CONF", "OPENSSL_MODULES", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "SSLKEYLOGFILE", "http_proxy", "HTTP_PROXY", "https_proxy",
    "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "ANTHROPIC_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL", "OPENAI_BASE_URL", "REWIND_JOB_ID", "IS_SANDBOX",
]  # fmt: skip
"""The names issue 14 asks for, and a few more of the same families."""

IN_ANY_CASE: Final = [
    "ld_preload",
    "Path",
    "pythonpath",
    "Https_Proxy",
    "npm_config_script_shell",
    "git_ssh_command",
]
"""Lowercase and mixed-case twins: some programs read names in any case (urllib, npm)."""

NEAR_MISSES: Final = [
    "LDAP_URI",
    "MYPATH",
    "PATH_PREFIX",
    "HOMEBREW_NO_ANALYTICS",
    "USERNAME",
    "ENVIRONMENT",
    "GITHUB_TOKEN",
    "NODEJS_VERSION",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "JAVA_VERSION",
    "PROXY_URL",
    "PS5",
    "CI",
    "DEBUG",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_MODEL",
    "NODE_ENV",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
]
"""Allowed: names next to a row that no program reads as code, trust or identity (the last
ones are a row's ``unless``)."""

PATTERNS: Final = [(pattern, row) for row in DENIED for pattern in row.patterns]


def booted(**settings: Any) -> World:
    """A booted world whose server settings differ from the tests' usual ones by ``settings``."""
    w = World().boot()
    if settings:
        w.do(c.Configure(settings=msgspec.structs.replace(SETTINGS, **settings)))
    return w


def create(env: dict[str, str], owner: str = "bob", job_id: str = "j1") -> c.CreateJob:
    return c.CreateJob(job_id=job_id, owner=owner, prompt="fix it", repo="api", env=env)


def created(w: World, command: c.CreateJob) -> JobCreated:
    [event] = w.do(command)
    assert isinstance(event, JobCreated)
    return event


@pytest.fixture(scope="module")
def world() -> World:
    """One world for the refusals: a refusal changes nothing (``World.refuse`` checks it)."""
    return booted()


# -- the deny list ---------------------------------------------------------------------------


def _example(pattern: str) -> str:
    """A name a glob of the table matches."""
    return pattern.replace("[0-4]", "4").replace("*", "X")


@pytest.mark.parametrize(("pattern", "row"), PATTERNS, ids=[p for p, _ in PATTERNS])
def test_every_pattern_of_the_table_refuses_in_any_case(pattern: str, row: Denied) -> None:
    """No row is shadowed by an earlier one (each gives its own reason), none lacks one."""
    assert row.reason.strip()
    name = _example(pattern)
    assert denied(name) is row
    assert denied(name.lower()) is row
    assert denied(name.swapcase()) is row


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_the_deny_list_refuses(world: World, name: str) -> None:
    refusal = world.refuse(create({"APP_MODE": "ci", name: "x"}), "invalid", "env_denied")
    assert repr(name) in refusal.message
    row = denied(name)
    assert row is not None and row.reason in refusal.message


@pytest.mark.parametrize("name", IN_ANY_CASE)
def test_the_deny_list_ignores_case(world: World, name: str) -> None:
    world.refuse(create({name: "x"}), "invalid", "env_denied")


@pytest.mark.parametrize("name", NEAR_MISSES)
def test_near_misses_are_allowed(name: str) -> None:
    assert denied(name) is None
    event = created(booted(), create({name: "v"}))
    assert event.options.env == {name: "v"}


def test_an_exported_bash_function_is_refused_by_its_syntax_first(world: World) -> None:
    """``%%`` never passes the name syntax; the table refuses it all the same."""
    world.refuse(create({"BASH_FUNC_ls%%": "() { id; }"}), "invalid", "invalid_env")
    assert denied("BASH_FUNC_ls%%") is denied("ls%%") is not None


def test_the_allowlist_cannot_let_a_denied_name_through() -> None:
    w = booted(job_env_allow=["*", "LD_PRELOAD", "PATH"])
    w.refuse(create({"LD_PRELOAD": "/tmp/x.so"}), "invalid", "env_denied")
    w.refuse(create({"PATH": "/tmp/bin"}), "invalid", "env_denied")


# -- the admin's allowlist -------------------------------------------------------------------


def test_the_allowlist_is_honoured_case_sensitively() -> None:
    w = booted(job_env_allow=["APP_*", "DEBUG"])
    assert created(w, create({"APP_MODE": "ci", "DEBUG": "1"})).options.env == {
        "APP_MODE": "ci",
        "DEBUG": "1",
    }
    for name in ("OTHER", "DEBUG2", "app_mode"):
        refusal = w.refuse(create({name: "x"}, job_id="j2"), "invalid", "env_not_allowed")
        assert repr(name) in refusal.message and "APP_*, DEBUG" in refusal.message


def test_an_empty_allowlist_allows_no_variable() -> None:
    w = booted(job_env_allow=[])
    refusal = w.refuse(create({"DEBUG": "1"}), "invalid", "env_not_allowed")
    assert "allows nothing" in refusal.message
    assert created(w, create({})).options.env == {}


def test_the_default_allows_every_name_not_denied() -> None:
    assert SETTINGS.job_env_allow == ["*"]
    assert created(booted(), create({"ANY_NAME_AT_ALL": "1"})).options.env == {
        "ANY_NAME_AT_ALL": "1"
    }


def test_template_and_repository_env_are_the_admins_and_not_judged() -> None:
    agents = {
        name: AgentSpec(command=[name, "{prompt}"], env={"PATH": "/opt/agent/bin"})
        for name in SETTINGS.agents
    }
    w = booted(job_env_allow=[], agents=agents)
    w.do(
        c.RegisterRepo(
            repo="tools",
            git_url="https://git.example/tools.git",
            branch="main",
            settings=RepoSettings(env={"LD_LIBRARY_PATH": "/opt/lib", "GIT_SSH_COMMAND": "ssh"}),
        )
    )
    w.do(c.FinishClone(repo="tools", commit="c0" * 20))
    command = c.CreateJob(job_id="j1", owner="bob", prompt="p", repo="tools", agent="codex")
    assert created(w, command).options.env == {}


# -- no sandbox, no users' jobs --------------------------------------------------------------


def test_without_a_sandbox_only_admins_create_jobs() -> None:
    w = booted(sandbox="none")
    refusal = w.refuse(create({}, owner="bob"), "forbidden", "sandbox_required")
    assert 'sandbox = "none"' in refusal.message
    assert created(w, create({}, owner="alice")).owner == "alice"


def test_with_the_default_sandbox_users_create_jobs() -> None:
    assert SETTINGS.sandbox == "bubblewrap"
    assert created(booted(), create({}, owner="bob")).owner == "bob"
