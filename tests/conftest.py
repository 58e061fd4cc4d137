"""Hypothesis runs derandomized under CI (same examples every run, so a red build is
reproducible); locally it explores new examples each run and keeps failures in .hypothesis/."""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.support.docker_api", "tests.support.server"]

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
