"""``projections.naming``: the names the shell makes things under are the names ``decide``
records, whatever the command says (commands carry no paths or names any more)."""

from __future__ import annotations

import msgspec

from projections import commands as c
from projections import naming
from projections.events import (
    CallbackDue,
    CleanupMarked,
    JobCreated,
    JobLaunching,
    JobWorkspaceCreated,
    ServerSettings,
    StagingCreated,
)
from tests.projections.world import SETTINGS, World


def test_paths_are_relative_to_the_data_directory_unless_the_root_is_absolute() -> None:
    assert naming.workspace_path(ServerSettings(), "j1") == "workspaces/j1"
    absolute = ServerSettings(workspace_root="/srv/ws/")
    assert naming.workspace_path(absolute, "j1") == "/srv/ws/j1"
    assert naming.run_path("j1") == "runs/j1"
    assert naming.staging_path("j1") == "staging/j1"
    assert naming.clone_path("api") == "repos/api"


def test_docker_names_and_webhook_ids() -> None:
    assert naming.network_name("j1") == "rewind-j1"
    assert naming.container_name("j1", "db") == "rewind-j1-db"
    assert naming.callback_id("j1", 2) == "j1-cb2"
    assert naming.webhook_id("j1-cb2") == "msg_j1-cb2"


def test_decide_records_the_names_naming_gives() -> None:
    w = World()
    w.boot()
    settings = msgspec.structs.replace(SETTINGS, workspace_root="/srv/ws")
    w.do(c.Configure(settings=settings))
    [created] = w.create("j1", callbacks=[c.CallbackRequest(url="https://h/x")], auto_cleanup=True)
    assert isinstance(created, JobCreated)
    assert created.callbacks[0].callback_id == naming.callback_id("j1", 0)
    [staging] = w.do(c.StartStaging(job_id="j1"))
    assert staging == StagingCreated(path=naming.staging_path("j1"), job_id="j1", at=w.now)
    w.do(c.StartJob(job_id="j1"))
    w.do(c.Dispatch())
    w.prepare("j1")
    [workspace] = w.do(c.RecordWorkspace(job_id="j1"))
    assert workspace == JobWorkspaceCreated(job_id="j1", path="/srv/ws/j1")
    [launching] = w.do(c.BeginLaunch(job_id="j1"))
    assert launching == JobLaunching(job_id="j1", run_dir=naming.run_path("j1"))
    w.do(c.RecordProcessStarted(job_id="j1", pid=7, process_start_time=1.0, boot_id="b"))
    ended = w.do(c.RecordExit(job_id="j1", code=0))
    [due] = [e for e in ended if isinstance(e, CallbackDue)]
    assert due.webhook_id == naming.webhook_id("j1-cb0")
    [marked] = [e for e in ended if isinstance(e, CleanupMarked)]
    assert marked.path == "/srv/ws/j1"
