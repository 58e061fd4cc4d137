"""Running coding agents so that they survive a crash of the server and can be re-attached.

- `templates`: agent command templates and their placeholders (`render`, `parse_agents`).
- `launcher.launch`: start an agent detached under a wrapper; returns its `ProcessIdentity`.
- `wrapper`: the supervisor process itself (identity, heartbeat, output, exit files).
- `identity`: the run directory's files, `is_alive`, `read_identity`, `read_exit`.
- `watch`: from any process: `terminate`, `kill_group_now`, `heartbeat_age`, `read_output`
  (`service.reconcile.watching` polls `identity.is_alive` and reads the exit file).
- `procfs`: the /proc facts everything above relies on.

Imported by module, not re-exported here: the wrapper runs as `python -m
service.agents.wrapper` for every job and should load only what it uses.
"""
