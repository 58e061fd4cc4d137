"""`rewind bench launch`: what the sandbox adds to starting an agent.

One launch is measured from the call to `launcher.launch` to the agent's first byte of output
(the agent is `echo`): what a job's start costs, wrapper and sandbox included. Three
contenders, interleaved round by round so that machine noise hits them alike: unconfined (the
baseline, the launch path before the sandbox), the sandbox without network, and the sandbox
with its network (slirp4netns and the nftables rules).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from service.agents.launcher import launch
from service.sandbox import host as sandbox_host
from service.sandbox.bwrap import owned_by
from service.sandbox.host import SandboxHost
from service.sandbox.spec import SandboxSpec

DEFAULT_ROUNDS = 40
TARGET_ADDED_S = 0.050
_POLL_S = 0.0005
_TIMEOUT_S = 30.0


def run(rounds: int, scratch: Path) -> dict[str, Any]:
    host = sandbox_host.prepare("bubblewrap", sandbox_host.DEFAULT_AGENT_USER, [])
    times: dict[str, list[float]] = {"unconfined": [], "sandbox": [], "sandbox_network": []}
    for index in range(rounds):
        for name, samples in times.items():
            samples.append(_one(scratch / f"{name}-{index}", host, name))
    result: dict[str, Any] = {"rounds": rounds}
    for name, samples in times.items():
        result[f"{name}_p50_ms"] = _ms(statistics.median(samples))
        result[f"{name}_p99_ms"] = _ms(_p99(samples))
    for name in ("sandbox", "sandbox_network"):
        result[f"{name}_added_p50_ms"] = _ms(
            statistics.median(times[name]) - statistics.median(times["unconfined"])
        )
        result[f"{name}_added_p99_ms"] = _ms(_p99(times[name]) - _p99(times["unconfined"]))
    return result


def verdicts(result: dict[str, Any]) -> list[str]:
    added = result["sandbox_network_added_p50_ms"]
    met = "met" if added <= TARGET_ADDED_S * 1000 else "MISSED"
    return [f"sandbox with network adds {added} ms per launch (p50); target <= 50 ms: {met}"]


def _one(root: Path, host: SandboxHost, name: str) -> float:
    workspace, run_dir = root / "workspace", root / "run"
    workspace.mkdir(parents=True)
    spec: SandboxSpec | None = None
    if name != "unconfined":
        home, tmp = host.job_dirs(run_dir)
        owned_by(workspace, host.uid, host.gid)
        spec = host.spec(
            workspace=workspace, home=home, tmp=tmp, hide=[], network=name == "sandbox_network"
        )
    output = run_dir / "output"
    start = time.perf_counter()
    launch(
        ["echo", "started"],
        cwd=workspace,
        env={"PATH": "/usr/bin:/bin"},
        run_dir=run_dir,
        sandbox=spec,
    )
    while not (output.exists() and output.stat().st_size):
        if time.perf_counter() - start > _TIMEOUT_S:
            raise RuntimeError(f"{name}: no output from the agent in {_TIMEOUT_S} s ({run_dir})")
        time.sleep(_POLL_S)
    return time.perf_counter() - start


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
