"""The TOML keys of issue 14: ``job_env_allow`` and ``sandbox`` reach the recorded settings,
and a wrong value is a ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_config


def test_defaults_allow_every_name_not_denied_and_want_bubblewrap() -> None:
    settings = load_config(None).settings()
    assert (settings.job_env_allow, settings.sandbox) == (["*"], "bubblewrap")


def test_the_keys_become_settings(tmp_path: Path) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text('job_env_allow = ["APP_*", "DEBUG"]\nsandbox = "none"\n')
    settings = load_config(path).settings()
    assert (settings.job_env_allow, settings.sandbox) == (["APP_*", "DEBUG"], "none")
    assert load_config(None, job_env_allow=[]).settings().job_env_allow == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('job_env_allow = "APP_*"', r"job_env_allow: Expected `array`, got `str`"),
        ("job_env_allow = [1]", r"job_env_allow\[0\]: Expected `str`, got `int`"),
        ('job_env_allow = ["APP_*", ""]', r"job_env_allow: every pattern must be a non-empty"),
        ('sandbox = "docker"', r"sandbox: Invalid enum value 'docker'"),
    ],
)
def test_a_wrong_value_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
