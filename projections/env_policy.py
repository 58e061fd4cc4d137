"""Which environment variables a job may set: a built-in deny list, then the admin's allowlist.

A job's environment comes from its user, who is not trusted, and it reaches processes that
start before the sandbox is in force or outside it (the wrapper is a Python program; the
loader, shells and interpreters read their variables at start). So it must stay data: it
never chooses a program, a loader, a shell hook or an interpreter's startup code, never
redirects whom a program trusts or where the agent's model traffic (and the admin's API key)
goes, and never sets what the server or the sandbox set. ``DENIED`` lists those variables,
one row per reason; it wins over the allowlist, so no configuration can let a job set them.
Programs that need one of them get it from their agent template or repository settings:
those are written by the admin and not judged here.

Sources: ld.so(8) and glibc's list of variables it drops for setuid programs (unsecvars.h);
the ENVIRONMENT sections of bash(1), dash(1), zsh(1), python(1), perlrun(1), ruby(1), git(1),
ssh(1), gcc(1) and make(1); node's, the JVM's, .NET's, Go's and Cargo's documented variables.

Matching. A row's patterns are fnmatch globs, compared to the name **in any case**: some
programs read a variable in either case (Python's urllib lowercases every name before looking
for ``*_proxy``, npm reads ``npm_config_*`` in any case, curl reads ``http_proxy`` in lower
case only), so folding case leaves no spelling that some program reads and the table misses.
The price is that lowercase twins (``path``, ``home``, ``cc``) are refused too. A row's
``unless`` names the few names its glob would catch that are only data (``NODE_ENV`` is read
by libraries, never by node; ``GIT_AUTHOR_NAME`` only names a commit's author).

Not listed, on purpose: locale and terminal settings (``LANG``, ``LC_*``, ``TERM``, ``TZ``),
API keys of model providers (a user may bring their own; the endpoint they are sent to is
what matters, and those are listed), and a sidecar's environment (its user chose its image
and command already). ``KSH_*`` holds nothing that loads code: ksh's hooks are ``ENV`` and
``FPATH``, both listed.

The allowlist (``ServerSettings.job_env_allow``) is the admin's: fnmatch globs, matched case
sensitively, like the names programs read. Its default, ``["*"]``, allows every name this
table does not refuse; ``[]`` allows a job no variable at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase, translate
from typing import Final, NamedTuple


class Denied(NamedTuple):
    """Variables a job may never set, and why."""

    patterns: tuple[str, ...]
    reason: str
    unless: tuple[str, ...] = ()


DENIED: Final[tuple[Denied, ...]] = (
    # The dynamic loader and the C library.
    Denied(
        ("LD_*",),
        "the dynamic loader reads it: LD_PRELOAD, LD_AUDIT and LD_LIBRARY_PATH load code into "
        "every program, the wrapper and the sandbox's tools included",
    ),
    Denied(("GLIBC_TUNABLES",), "parsed by the loader before any program runs (CVE-2023-4911)"),
    Denied(("GCONV_PATH",), "iconv loads its conversion modules (shared objects) from there"),
    Denied(("GETCONF_DIR",), "getconf runs the programs it finds there"),
    Denied(("MALLOC_*",), "glibc's malloc debugging: MALLOC_TRACE writes a file anywhere"),
    Denied(
        ("LOCPATH", "NLSPATH", "TZDIR", "NIS_PATH"),
        "the C library reads locale data, message catalogues (format strings), time zones or "
        "NIS lookups from files this names",
    ),
    Denied(
        ("HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "RESOLV_HOST_CONF"),
        "it redirects name resolution: which hosts the agent really connects to",
    ),
    Denied(
        ("TMPDIR", "TMP", "TEMP"),
        "where programs create temporary files: the sandbox gives the job its own",
    ),
    # Shells.
    Denied(("BASH_ENV",), "a file every non-interactive bash runs at start"),
    Denied(("ENV",), "a file sh, dash, ksh and bash in POSIX mode run at start"),
    Denied(
        ("BASH_FUNC_*", "*%%*"),
        "an exported bash function (BASH_FUNC_name%%): it defines or overrides commands in "
        "every bash",
    ),
    Denied(("BASH_XTRACEFD",), "bash writes its trace to any file descriptor this names"),
    Denied(("BASH_LOADABLES_PATH",), "bash loads builtins (shared objects) from there"),
    Denied(("SHELLOPTS", "BASHOPTS"), "shell options set at start (xtrace runs PS4)"),
    Denied(("PS[0-4]", "PROMPT_COMMAND"), "expanded or run by the shell: $(...) runs commands"),
    Denied(("IFS",), "it changes how a shell splits words: scripts run other commands"),
    Denied(("CDPATH", "GLOBIGNORE"), "it changes where cd goes and what globs match in scripts"),
    Denied(("FPATH", "ZDOTDIR"), "ksh and zsh load functions or startup files (code) from there"),
    Denied(("SHELL",), "the program tools start as the shell"),
    Denied(("PATH",), "it chooses which program every command name runs"),
    Denied(
        ("HOME", "USER", "LOGNAME", "PWD", "OLDPWD"),
        "the identity, home and directory the sandbox sets: HOME is where every program reads "
        "its dotfiles",
    ),
    # Interpreters and runtimes.
    Denied(
        ("PYTHON*",),
        "PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONBREAKPOINT and PYTHONWARNINGS import code "
        "into every Python, the wrapper's included",
        unless=("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"),
    ),
    Denied(
        ("PIP_*", "UV_*"),
        "pip's and uv's settings choose where packages (code) come from and whom to trust",
    ),
    Denied(
        ("NODE_*",),
        "node reads it: NODE_OPTIONS (--require), NODE_PATH and NODE_REPL_EXTERNAL_MODULE load "
        "code; NODE_EXTRA_CA_CERTS adds a trusted CA and NODE_TLS_REJECT_UNAUTHORIZED turns TLS "
        "checks off, either lets the agent's model traffic be intercepted",
        unless=("NODE_ENV",),
    ),
    Denied(
        ("NPM_CONFIG_*", "YARN_*", "COREPACK_*"),
        "a package manager's settings: the shell scripts run in, node options, another yarn "
        "to run, where packages (code) come from",
    ),
    Denied(("DENO_*",), "deno's module cache and trusted certificates"),
    Denied(
        ("PERL*",),
        "perl reads it: PERL5LIB, PERL5OPT (-M), PERL5DB and PERLIO layers load code",
    ),
    Denied(("RUBY*",), "ruby reads it: RUBYOPT (-r) and RUBYLIB load code"),
    Denied(
        ("GEM_*", "BUNDLE_*"),
        "where gems (code) load from; BUNDLE_GEMFILE names a Gemfile, which is Ruby code",
    ),
    Denied(("PHP*",), "PHPRC and PHP_INI_SCAN_DIR load php.ini files: auto_prepend_file runs code"),
    Denied(("LUA_*",), "LUA_INIT runs code at start; LUA_PATH and LUA_CPATH load modules"),
    Denied(("TCL*",), "TCLLIBPATH and TCL_LIBRARY load Tcl code (tclsh, expect)"),
    Denied(
        ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "MAVEN_OPTS", "GRADLE_OPTS"),
        "JVM options: -javaagent loads code into every JVM",
    ),
    Denied(("CLASSPATH", "JAVA_HOME"), "which Java runs and where it loads classes (code) from"),
    Denied(("GRADLE_USER_HOME",), "gradle runs every init script it finds there"),
    Denied(
        ("DOTNET_*", "CORECLR_*", "COMPlus_*"),
        ".NET runtime settings: DOTNET_STARTUP_HOOKS and CORECLR_PROFILER_PATH load code",
    ),
    # Toolchains.
    Denied(
        ("GODEBUG", "GOFLAGS", "GOENV", "GOROOT", "GOTOOLCHAIN"),
        "go reads it: -toolexec runs a program around every compile, GOTOOLCHAIN downloads and "
        "runs another toolchain, GODEBUG changes TLS and x509 checks",
    ),
    Denied(
        ("GOPROXY", "GONOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOVCS"),
        "where Go modules (code) come from and whether their checksums are checked",
    ),
    Denied(("CGO_*",), "flags of the C compiler go runs (-fplugin loads code)"),
    Denied(
        ("RUSTC*", "RUSTDOC*", "RUSTFLAGS"),
        "the program cargo runs as the compiler (RUSTC_WRAPPER) and its flags (-C linker=)",
    ),
    Denied(
        ("CARGO_*", "RUSTUP_*"),
        "cargo's and rustup's settings: wrappers, target runners, toolchains and registries",
    ),
    Denied(("CC", "CXX", "CPP", "LD", "AR", "AS"), "the compiler, linker or archiver builds run"),
    Denied(
        ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS"),
        "compiler flags: -fplugin loads code, -B chooses the programs the compiler runs",
    ),
    Denied(
        ("GCC_EXEC_PREFIX", "COMPILER_PATH", "CCACHE_*"),
        "where the compiler finds the programs it runs (CCACHE_PREFIX runs one)",
    ),
    Denied(
        ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES"),
        "make's options; MAKEFILES names makefiles (their recipes are commands) read first",
    ),
    # Programs that start other programs.
    Denied(
        ("GIT_*",),
        "git reads it: GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_PROXY_COMMAND and GIT_CONFIG_* "
        "(core.hooksPath, core.fsmonitor) run programs, GIT_DIR redirects the repository",
        unless=("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"),
    ),
    Denied(
        ("SSH_*",),
        "ssh reads it: SSH_AUTH_SOCK hands over another agent's keys, SSH_ASKPASS runs a program",
    ),
    Denied(("*ASKPASS",), "a program run to ask for a password (sudo, git, ssh)"),
    Denied(
        ("EDITOR", "VISUAL", "SUDO_EDITOR", "PAGER", "MANPAGER", "BROWSER"),
        "a program other programs start (git commit, man, gh)",
    ),
    Denied(("LESSOPEN", "LESSCLOSE"), "less runs it as the filter of every file it shows"),
    Denied(
        ("EXINIT", "VIMINIT", "MYVIMRC", "VIMRUNTIME"),
        "vi and vim run these commands or scripts at start (:! runs programs)",
    ),
    Denied(
        ("XDG_*",),
        "where programs read their configuration and plugins (XDG_CONFIG_HOME, XDG_DATA_DIRS) "
        "and find the session's sockets (XDG_RUNTIME_DIR)",
    ),
    Denied(("DBUS_*",), "it connects programs to another message bus"),
    # Trust: certificates, proxies, endpoints.
    Denied(
        ("OPENSSL_*",),
        "OPENSSL_CONF loads engines and providers (shared objects) into every OpenSSL program",
    ),
    Denied(
        ("SSL_CERT_*", "*_CA_BUNDLE", "CURL_HOME", "WGETRC"),
        "it replaces the CAs (or the configuration) of OpenSSL, curl, wget, requests: a user's "
        "CA lets the agent's model traffic be intercepted",
    ),
    Denied(("SSLKEYLOGFILE",), "TLS libraries write their session secrets to that file"),
    Denied(
        ("*_PROXY",),
        "a proxy sees, or bypasses, the agent's model traffic (HTTP_PROXY, HTTPS_PROXY, "
        "ALL_PROXY, NO_PROXY; Python reads any *_proxy in any case)",
    ),
    Denied(
        (
            "ANTHROPIC_*BASE_URL",
            "OPENAI_BASE_URL",
            "OPENAI_API_BASE",
            "GOOGLE_GEMINI_BASE_URL",
            "GOOGLE_VERTEX_BASE_URL",
        ),
        "where the agent sends its prompts and the admin's API key",
    ),
    # The server's and the sandbox's own.
    Denied(("REWIND_*",), "set by the server (REWIND_JOB_ID)"),
    Denied(("IS_SANDBOX",), "set by the sandbox: agents trust it to allow bypassed permissions"),
)

_RULES: Final = tuple(
    (
        re.compile("|".join(translate(pattern.upper()) for pattern in row.patterns)),
        frozenset(name.upper() for name in row.unless),
        row,
    )
    for row in DENIED
)


def denied(name: str) -> Denied | None:
    """The row of the deny list that refuses ``name``, if one does (in any case)."""
    upper = name.upper()
    for pattern, unless, row in _RULES:
        if pattern.match(upper) and upper not in unless:
            return row
    return None


def allowed(name: str, patterns: Iterable[str]) -> bool:
    """Whether the admin's allowlist (fnmatch globs, case-sensitive) lets a job set ``name``."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)
