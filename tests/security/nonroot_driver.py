"""Runs the hostile probe in the real sandbox as an unprivileged server would: run by the
test as a user that is not root, with the system's python and a copy of `service.sandbox`
(which needs only msgspec and psutil), so nothing of the project's checkout or venv (which
may lie in root's home) has to be readable by that user.

    python3 nonroot_driver.py REQUEST_JSON   ->  the agent's output on stdout
"""

import json
import sys
from pathlib import Path

from service.sandbox import bwrap, host

request = json.loads(sys.argv[1])
sandbox = host.prepare("bubblewrap", "unused", request["allow"])
assert sandbox.uid is None, "not root: agents keep the server's uid"
spec = sandbox.spec(
    workspace=Path(request["workspace"]),
    home=Path(request["home"]),
    tmp=Path(request["tmp"]),
    hide=request["hide"],
    network=True,
)
output = Path(request["output"])
with output.open("wb") as sink:
    running = bwrap.start(spec, request["argv"], request["env"], output=sink.fileno())
    try:
        code = running.process.wait(timeout=120)
    finally:
        running.close()
sys.stdout.write(output.read_text())
sys.exit(code)
