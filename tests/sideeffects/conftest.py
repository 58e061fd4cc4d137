"""A failing side-effect test's report carries the log and output of the servers it used."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.sideeffects.helpers import STARTED, explain
from tests.support.server import RewindServer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    used = [value for value in funcargs.values() if isinstance(value, RewindServer)]
    for server in dict.fromkeys([*used, *STARTED[-3:]]):
        report.sections.append((f"rewind server {server.data_dir}", explain(server)))
