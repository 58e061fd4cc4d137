"""Stand-ins for the server in the crash tests, run as `python -m tests.agents.server_proc`.

launch RUN_DIR CWD -- ARGV...  launch ARGV, print the identity as one JSON line, then sleep
                               until killed (the test SIGKILLs it, like a crashing server)
reattach RUN_DIR               a fresh process that knows only the run directory: prints
                               {"alive": ...} at once, then {"exit": ...} when it ends
"""

from __future__ import annotations

import os
import sys
import time

import msgspec

from service.agents.identity import is_alive, read_exit, read_identity
from service.agents.launcher import launch


def _say(value: object) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    mode, run_dir = argv[0], argv[1]
    if mode == "launch":
        cwd, command = argv[2], argv[argv.index("--") + 1 :]
        _say(launch(command, cwd=cwd, env=dict(os.environ), run_dir=run_dir))
        while True:
            time.sleep(60)
    identity = read_identity(run_dir)
    if identity is None:
        _say({"error": "no identity"})
        return 1
    _say({"alive": is_alive(identity)})
    while is_alive(identity):  # as the server's watcher does: the wrapper gone, its exit file
        time.sleep(0.02)
    _say({"exit": read_exit(run_dir)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
