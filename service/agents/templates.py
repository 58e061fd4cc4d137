"""Agent command templates: how a job's prompt, model, workspace and session become an argv.

A template is an argv list whose elements may hold placeholders: `{prompt}`, `{model}`,
`{workspace}`, `{session}`. `{{` and `}}` are literal braces; any other brace is an error.

Rendering rules (what `render` guarantees):

- Substitution happens inside one argv element and the value is inserted verbatim: never split
  on spaces, never quoted, never passed to a shell, never scanned again for placeholders (a
  prompt containing `{model}` or `$(rm -rf /)` arrives as those characters).
- Every template element yields exactly one argv element, except for an absent optional value:
  `{model}` and `{session}` may be None. An element that uses an absent value is dropped; if
  that element is exactly the placeholder and the element before it is a literal option flag
  (starts with `-`, is not `-` or `--`), the flag is dropped with it. So
  `["--model", "{model}"]` disappears as a pair when no model is given, and
  `--model={model}` disappears alone. `{prompt}` and `{workspace}` are always given.
- A value containing a NUL byte is refused (no argv element can carry one).

Validation (at construction, so a bad config fails at startup with the field named):
unknown placeholders, unmatched braces, an empty command, a command without `{prompt}` (the
agent would never see the task), a program (argv[0]) built from a client-supplied value
(`{prompt}`, `{model}`, `{session}`: a client must never choose what runs), NUL bytes, and
environment names that are empty or contain `=`. Environment values are literal: no
placeholders there.

Built-in templates drive each CLI in its documented non-interactive mode; each entry's comment
says which flags and why. Where an option parser would read a prompt starting with `-` as an
option, the prompt is either behind `--` (end of options) or glued to its flag (`--flag=value`).
A `[agents.NAME]` table of the config with the same name replaces a built-in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import msgspec

PLACEHOLDERS = ("prompt", "model", "workspace", "session")
OPTIONAL = frozenset({"model", "session"})
CLIENT_SUPPLIED = frozenset({"prompt", "model", "session"})

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_KNOWN = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)


class TemplateError(ValueError):
    """A template or a value rendered into it is unusable; the message names the field."""


class Slot(NamedTuple):
    """A placeholder inside an argv element."""

    name: str


Part = str | Slot


def parse_element(text: str, where: str) -> list[Part]:
    """Split one template element into literal text and placeholders; `where` names it."""
    parts: list[Part] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is None:
            raise TemplateError(
                f"{where}: unmatched {token!r} in {text!r} (write {{{{ or }}}} for a brace)"
            )
        elif match.group(1) not in PLACEHOLDERS:
            raise TemplateError(
                f"{where}: unknown placeholder {token} in {text!r}; known: {_KNOWN}"
            )
        else:
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(Slot(match.group(1)))
    literal.append(text[position:])
    if "".join(literal):
        parts.append("".join(literal))
    return parts


class AgentTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How to run one kind of agent. Validated when built: an instance is always usable."""

    command: list[str]
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """Added to the job's environment; literal values."""
    resume_command: list[str] | None = None
    """How to continue an earlier session of this agent in the same workspace, if it can."""
    network: bool = True
    """Whether the agent's sandbox reaches the network (its model's API); False: none at all."""
    secret_env: dict[str, str] = msgspec.field(default_factory=dict)
    """Credentials (an API key): added to this agent's environment only, and unlike `env`
    never recorded in the log (the settings in force are; these stay in the config)."""

    def __post_init__(self) -> None:
        _check_command(self.command, "command")
        if self.resume_command is not None:
            _check_command(self.resume_command, "resume_command")
        for field, variables in (("env", self.env), ("secret_env", self.secret_env)):
            for key, value in variables.items():
                if not key or "=" in key or "\0" in key:
                    raise TemplateError(f"{field}: invalid variable name {key!r}")
                if "\0" in value:
                    raise TemplateError(f"{field}.{key}: contains a NUL byte")


def _check_command(command: Sequence[str], field: str) -> None:
    if not command:
        raise TemplateError(f"{field}: empty; give at least the program to run")
    uses: set[str] = set()
    for index, element in enumerate(command):
        where = f"{field}[{index}]"
        if "\0" in element:
            raise TemplateError(f"{where}: contains a NUL byte")
        names = {part.name for part in parse_element(element, where) if isinstance(part, Slot)}
        if index == 0 and names & CLIENT_SUPPLIED:
            raise TemplateError(
                f"{where}: the program may not come from a client-supplied value "
                f"({', '.join(sorted(f'{{{n}}}' for n in names & CLIENT_SUPPLIED))})"
            )
        uses |= names
    if "prompt" not in uses:
        raise TemplateError(f"{field}: no {{prompt}} placeholder, the agent would never see it")


def render(
    template: AgentTemplate,
    *,
    prompt: str,
    model: str | None,
    workspace: str | Path,
    session: str | None,
    resume: bool = False,
) -> list[str]:
    """The argv for one run (`resume=True`: the template's resume_command). See the module
    docstring for the rules; raises TemplateError for a NUL in a value, for resume on a
    template without resume_command, or for a resume that needs a session and got none."""
    command = template.resume_command if resume else template.command
    field = "resume_command" if resume else "command"
    if command is None:
        raise TemplateError("resume_command: this agent cannot resume a session")
    values: dict[str, str | None] = {
        "prompt": prompt,
        "model": model,
        "workspace": str(workspace),
        "session": session,
    }
    for name, value in values.items():
        if value is None and name not in OPTIONAL:
            raise TemplateError(f"{{{name}}} must be given")
        if value is not None and "\0" in value:
            raise TemplateError(f"{{{name}}}: contains a NUL byte, which no argv element can carry")
    argv: list[str] = []
    flag_before = False
    for index, element in enumerate(command):
        parts = parse_element(element, f"{field}[{index}]")
        absent = [p.name for p in parts if isinstance(p, Slot) and values[p.name] is None]
        if absent:
            if resume and "session" in absent:
                raise TemplateError("resume_command: resuming needs the session id")
            if flag_before and parts == [Slot(absent[0])]:
                argv.pop()
            flag_before = False
            continue
        text = "".join(p if isinstance(p, str) else values[p.name] or "" for p in parts)
        argv.append(text)
        flag_before = all(isinstance(p, str) for p in parts) and _is_flag(text)
    return argv


def _is_flag(text: str) -> bool:
    return text.startswith("-") and text not in ("-", "--")


def parse_agents(table: Mapping[str, object]) -> dict[str, AgentTemplate]:
    """The `[agents]` table of a TOML config, on top of the built-ins (same name replaces).

    Raises TemplateError naming the field: `agents.NAME.command[2]: unknown placeholder ...`.
    """
    agents = dict(BUILTIN_TEMPLATES)
    for name, entry in table.items():
        if not _AGENT_NAME.fullmatch(name):
            raise TemplateError(
                f"agents.{name}: invalid agent name (letters, digits, '_', '.', '-')"
            )
        if not isinstance(entry, Mapping):
            raise TemplateError(f"agents.{name}: expected a table, got {type(entry).__name__}")
        agents[name] = parse_template(name, entry)
    return agents


def parse_template(name: str, entry: Mapping[str, object]) -> AgentTemplate:
    """One `[agents.NAME]` table; errors are prefixed with `agents.NAME`."""
    try:
        return msgspec.convert(dict(entry), AgentTemplate)
    except msgspec.ValidationError as exc:
        raise TemplateError(_explain(name, str(exc))) from None


def _explain(name: str, message: str) -> str:
    located = re.fullmatch(r"(.*) - at `\$(.*)`", message)
    if located:
        return f"agents.{name}{located.group(2)}: {located.group(1)}"
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        allowed = ", ".join(AgentTemplate.__struct_fields__)
        return f"agents.{name}: unknown field `{unknown.group(1)}` (allowed: {allowed})"
    missing = re.fullmatch(r"Object missing required field `(.*)`", message)
    if missing:
        return f"agents.{name}: missing required field `{missing.group(1)}`"
    if re.match(r"\w+(\[\d+\]|\.\S+)?: ", message):  # a TemplateError from validation
        return f"agents.{name}.{message}"
    return f"agents.{name}: {message}"


# The built-ins. Each targets the CLI's documented non-interactive mode; cwd is the workspace.

CLAUDE_CODE = AgentTemplate(
    # `--print`: run the prompt and exit, no TTY UI. `--output-format stream-json`: one JSON
    # event per line as it happens (the output file is followed live); the CLI requires
    # `--verbose` with stream-json in print mode. `--permission-mode bypassPermissions`: no
    # human can answer a permission prompt, and in print mode an unanswered one is a refusal;
    # the workspace is a disposable copy (the CLI refuses this mode as root: run the server as
    # a normal user or override the template). `--session-id`: pin the session to the job's
    # `{session}` (must be a UUID) so `--resume {session}` continues exactly that session.
    # `--` ends the options: a prompt starting with `-` stays the prompt.
    command=[
        "claude", "--print", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "bypassPermissions",
        "--model", "{model}", "--session-id", "{session}", "--", "{prompt}",
    ],
    resume_command=[
        "claude", "--print", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "bypassPermissions",
        "--model", "{model}", "--resume", "{session}", "--", "{prompt}",
    ],
)  # fmt: skip

GEMINI = AgentTemplate(
    # `--prompt`: the headless mode (a bare positional prompt starts the interactive UI).
    # Written `--prompt={prompt}` so a prompt starting with `-` is not taken for an option.
    # `--output-format stream-json`: JSONL events (init, message, tool_use, result).
    # `--approval-mode yolo`: approve tool calls without asking (nobody is there to ask;
    # `--yolo` is its deprecated spelling). Gemini picks its own session ids, so resuming
    # uses `--resume latest`, the newest session of this project directory (the workspace).
    command=[
        "gemini", "--output-format", "stream-json", "--approval-mode", "yolo",
        "--model", "{model}", "--prompt={prompt}",
    ],
    resume_command=[
        "gemini", "--output-format", "stream-json", "--approval-mode", "yolo",
        "--model", "{model}", "--resume", "latest", "--prompt={prompt}",
    ],
)  # fmt: skip

CODEX = AgentTemplate(
    # `codex exec`: the non-interactive mode. `--json`: JSONL events on stdout.
    # `--sandbox workspace-write`: may edit the workspace and run commands in it (the default
    # is read-only; `--full-auto` is the removed older spelling). Codex picks its own session
    # ids; `exec resume --last` continues the newest session recorded for this cwd, and with
    # `--last` the positional argument is the prompt. `--` ends the options.
    command=[
        "codex", "exec", "--json", "--sandbox", "workspace-write",
        "--model", "{model}", "--", "{prompt}",
    ],
    resume_command=[
        "codex", "exec", "--json", "--sandbox", "workspace-write",
        "--model", "{model}", "resume", "--last", "--", "{prompt}",
    ],
)  # fmt: skip

AIDER = AgentTemplate(
    # `--message`: process one instruction and exit (no chat loop); glued as
    # `--message={prompt}` so argparse never reads a leading `-` as an option.
    # `--yes-always`: answer yes to every confirmation (`--yes` in older releases).
    # `--no-pretty`: no colours or cursor control in the output file. `--no-check-update`:
    # no version check or upgrade question in a batch run. Aider keeps its chat in the
    # workspace; `--restore-chat-history` continues it.
    command=[
        "aider", "--yes-always", "--no-pretty", "--no-check-update",
        "--model", "{model}", "--message={prompt}",
    ],
    resume_command=[
        "aider", "--yes-always", "--no-pretty", "--no-check-update",
        "--model", "{model}", "--restore-chat-history", "--message={prompt}",
    ],
)  # fmt: skip

OPENCODE = AgentTemplate(
    # `opencode run`: send one message and exit without the TUI. `--format json`: raw JSON
    # events. `--model` takes `provider/model`. `--continue`: the last session of this
    # directory. `--` ends the options (opencode joins its message arguments, quoting any
    # that contain spaces: the prompt still arrives as one argument).
    command=["opencode", "run", "--format", "json", "--model", "{model}", "--", "{prompt}"],
    resume_command=[
        "opencode", "run", "--format", "json", "--model", "{model}", "--continue",
        "--", "{prompt}",
    ],
)  # fmt: skip

BUILTIN_TEMPLATES: Mapping[str, AgentTemplate] = {
    "claude-code": CLAUDE_CODE,
    "gemini": GEMINI,
    "codex": CODEX,
    "aider": AIDER,
    "opencode": OPENCODE,
}
