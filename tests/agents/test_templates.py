"""Templates: values become whole argv elements, byte for byte, and bad configs name the field."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from collections.abc import Callable
from contextlib import nullcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.agents.identity import ExitStatus
from service.agents.templates import (
    BUILTIN_TEMPLATES,
    PLACEHOLDERS,
    AgentTemplate,
    TemplateError,
    parse_agents,
    render,
)
from tests.agents.conftest import Agents
from tests.support.fake_agent import FAKE_AGENT

TRICKY = "; rm -rf / $(touch CANARY) `touch CANARY` \"quoted\" 'single' && echo $HOME"
ECHO = AgentTemplate(
    command=[
        sys.executable, str(FAKE_AGENT), "--echo-argv", "--",
        "{prompt}", "--model={model}", "{workspace}", "{session}",
    ]
)  # fmt: skip

Render = Callable[..., list[str]]
values = st.text(st.characters(codec="utf-8", exclude_characters="\0"))  # no surrogates


def naive_render(template: AgentTemplate, **fields: str) -> list[str]:
    """Broken: joins the template into one string and splits it again, as a shell would."""
    return shlex.split(" ".join(template.command).format(**fields))


@pytest.mark.parametrize(
    ("prompt", "model", "session"),
    [
        (TRICKY, "--exit 3", "a b"),
        ("line 1\nline 2\ttab", "{prompt} }{ {{x}}", ""),
        ("-rf --exit 3", "été 🚀 \u202e", "\\x00-not-a-nul"),
    ],
)
def test_values_reach_the_real_process_byte_for_byte(
    agents: Agents, prompt: str, model: str, session: str
) -> None:
    workspace = "/work space/with 'quotes'"
    argv = render(ECHO, prompt=prompt, model=model, workspace=workspace, session=session)
    agent = agents.start(argv=argv)
    assert agent.wait() == ExitStatus(code=0, signal=None)
    echoed = json.loads(agent.output())["argv"]
    assert echoed == ["--echo-argv", "--", prompt, f"--model={model}", workspace, session]
    assert not agent.path("CANARY").exists()  # nothing was run by a shell


@pytest.mark.parametrize("renderer", [render, naive_render])
def test_a_value_is_one_element_whatever_it_contains(renderer: Render) -> None:
    template = AgentTemplate(command=["agent", "--print", "{prompt}"])
    argv = renderer(template, prompt=TRICKY, model="m", workspace="/w", session="s")
    with nullcontext() if renderer is render else pytest.raises(AssertionError):
        assert argv == ["agent", "--print", TRICKY]


Part = tuple[bool, str]
"""(True, placeholder name) or (False, literal text)."""
parts = st.one_of(
    st.tuples(st.just(True), st.sampled_from(PLACEHOLDERS)),
    st.tuples(st.just(False), values),
)


@st.composite
def templates(draw: st.DrawFn) -> list[list[Part]]:
    """Template elements, each as the parts it is made of: the oracle needs no parser."""
    middle = draw(st.lists(st.lists(parts, min_size=1, max_size=4), min_size=1, max_size=6))
    return [[(False, "agent")], *middle, [(True, "prompt")]]


def _template_text(element: list[Part]) -> str:
    return "".join(
        f"{{{text}}}" if slot else text.replace("{", "{{").replace("}", "}}")
        for slot, text in element
    )


@given(templates(), values, values, values, values)
def test_every_element_renders_to_its_parts_with_values_verbatim(
    elements: list[list[Part]], prompt: str, model: str, workspace: str, session: str
) -> None:
    fields = {"prompt": prompt, "model": model, "workspace": workspace, "session": session}
    expected = ["".join(fields[t] if slot else t for slot, t in element) for element in elements]
    template = AgentTemplate(command=[_template_text(element) for element in elements])
    argv = render(template, prompt=prompt, model=model, workspace=workspace, session=session)
    assert argv == expected


@given(values, st.booleans())
def test_an_absent_model_drops_its_element_and_the_flag_before_it(prompt: str, glued: bool) -> None:
    command = ["agent", "--model={model}"] if glued else ["agent", "--model", "{model}"]
    template = AgentTemplate(command=[*command, "--session", "{session}", "--", "{prompt}"])
    argv = render(template, prompt=prompt, model=None, workspace="/w", session="s")
    assert argv == ["agent", "--session", "s", "--", prompt]
    assert render(template, prompt=prompt, model=None, workspace="/w", session=None) == [
        "agent", "--", prompt,
    ]  # fmt: skip


def test_escaped_braces_are_literal() -> None:
    template = AgentTemplate(command=["agent", '--json={{"p": 1}}', "{prompt}"])
    assert render(template, prompt="x", model=None, workspace="/w", session=None) == [
        "agent", '--json={"p": 1}', "x",
    ]  # fmt: skip


def test_a_nul_in_a_value_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"prompt.*NUL"):
        render(ECHO, prompt="a\0b", model=None, workspace="/w", session=None)


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_each_builtin_renders(name: str) -> None:
    template = BUILTIN_TEMPLATES[name]
    program = {"claude-code": "claude"}.get(name, name)
    for resume in (False, True):
        with_model = render(
            template, prompt=TRICKY, model="some-model", workspace="/w", session="s", resume=resume
        )
        without = render(
            template, prompt=TRICKY, model=None, workspace="/w", session="s", resume=resume
        )
        for argv in (with_model, without):
            assert argv[0] == program
            carriers = [a for a in argv if a == TRICKY or a.endswith(f"={TRICKY}")]
            assert len(carriers) == 1 and argv[-1] == carriers[0]
            assert not any("{" in a and a != argv[-1] for a in argv)
        assert with_model[with_model.index("--model") + 1] == "some-model"
        assert "--model" not in without and "some-model" not in without


def test_resuming_needs_a_resume_command_and_claude_needs_its_session() -> None:
    with pytest.raises(TemplateError, match="cannot resume"):
        render(ECHO, prompt="p", model=None, workspace="/w", session="s", resume=True)
    with pytest.raises(TemplateError, match="needs the session"):
        render(
            BUILTIN_TEMPLATES["claude-code"],
            prompt="p", model=None, workspace="/w", session=None, resume=True,
        )  # fmt: skip


def test_toml_agents_table_adds_and_replaces() -> None:
    config = tomllib.loads(
        """
        [agents.fake]
        command = ["python3", "fake.py", "--", "{prompt}"]
        env = { FAKE_AGENT = "--exit 3" }

        [agents.claude-code]
        command = ["claude", "-p", "{prompt}"]
        resume_command = ["claude", "-p", "--resume", "{session}", "{prompt}"]
        """
    )
    agents = parse_agents(config["agents"])
    assert agents["fake"] == AgentTemplate(
        command=["python3", "fake.py", "--", "{prompt}"], env={"FAKE_AGENT": "--exit 3"}
    )
    assert agents["claude-code"].command == ["claude", "-p", "{prompt}"]
    assert agents["codex"] is BUILTIN_TEMPLATES["codex"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"command": ["x", "{promt}"]}, r"^agents\.a\.command\[1\]: unknown placeholder \{promt\}"),
        ({"command": ["x", "{prompt}", "a}b"]}, r"^agents\.a\.command\[2\]: unmatched '\}'"),
        ({"command": ["x"]}, r"^agents\.a\.command: no \{prompt\}"),
        ({"command": []}, r"^agents\.a\.command: empty"),
        ({"command": ["{model}", "{prompt}"]}, r"^agents\.a\.command\[0\]: .*client-supplied"),
        ({"command": ["x", 3]}, r"^agents\.a\.command\[1\]: Expected `str`, got `int`"),
        ({"command": "x {prompt}"}, r"^agents\.a\.command: Expected `array`, got `str`"),
        ({"comand": ["x"]}, r"^agents\.a: unknown field `comand`"),
        ({"env": {}}, r"^agents\.a: missing required field `command`"),
        ({"command": ["x", "{prompt}"], "env": {"A=B": "1"}}, r"^agents\.a\.env: invalid"),
        ({"command": ["x", "{prompt}"], "resume_command": ["x"]}, r"^agents\.a\.resume_command"),
    ],
)
def test_config_errors_name_the_field(entry: dict[str, object], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_agents({"a": entry})


def test_config_errors_for_the_table_itself() -> None:
    with pytest.raises(TemplateError, match=r"^agents\.x y: invalid agent name"):
        parse_agents({"x y": {"command": ["x", "{prompt}"]}})
    with pytest.raises(TemplateError, match=r"^agents\.a: expected a table, got str"):
        parse_agents({"a": "claude"})
