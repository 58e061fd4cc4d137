"""A fake coding agent for every test of the project: a real process that behaves as told.

Run it as a script (standard library only, any cwd): `[sys.executable, FAKE_AGENT, OPTIONS...]`,
or build that list with `fake_agent_argv(...)`. Behaviour comes from, in this order:

1. the environment variable FAKE_AGENT (options, shell-quoted: `--print hi --exit 3`), so a
   job's `options.env` can steer it under a fixed template;
2. the command line options, up to a `--`; what follows `--` is the prompt and other template
   values, ignored unless echoed (--echo-argv) or obeyed (--obey-prompt);
3. with --obey-prompt, the last argument too (shell-quoted options): the prompt says what to do.

What it does, in this order: ignore SIGTERM (--ignore-term), write its pid (--pidfile), start
other fake agents (--spawn, not waited for: grandchildren of the wrapper), echo (--echo-argv,
--echo-env, --echo-cwd: one JSON line each, ASCII-escaped so bytes survive), mark itself ready
(--ready FILE), print (--print, --stderr, --lines/--interval, --bytes), write files (--write),
sleep (--sleep), then end: by a signal to itself (--kill-self) or with --exit CODE (default 0).
Every line is flushed at once, as a real agent streaming JSON would.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

FAKE_AGENT = Path(__file__).resolve()
SHARED_COPY = Path("/usr/local/lib/rewind-tests/fake_agent.py")
"""Where sandboxed agents find the fake agent: the checkout may lie under a home directory or
/tmp, which no sandbox shows, or be unreadable by the agents' account."""


def sandboxed_agent_argv() -> list[str]:
    """The fake agent as a server's sandboxed agent runs it: the system's python (the
    project's may live in root's home) and a copy of this file that every account can read."""
    python = shutil.which("python3", path=os.defpath) or sys.executable
    data = FAKE_AGENT.read_bytes()
    if not SHARED_COPY.is_file() or SHARED_COPY.read_bytes() != data:
        SHARED_COPY.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        temp = SHARED_COPY.with_name(f".{SHARED_COPY.name}.{os.getpid()}")
        temp.write_bytes(data)
        temp.chmod(0o644)
        temp.replace(SHARED_COPY)  # atomic: parallel test workers never see half a file
    return [python, str(SHARED_COPY)]


def fake_agent_argv(*options: str) -> list[str]:
    """The argv that runs the fake agent with `options` under the current interpreter."""
    return [sys.executable, str(FAKE_AGENT), *options]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fake_agent", description=__doc__)
    add = parser.add_argument
    add("--echo-argv", action="store_true", help='print {"argv": [...]} (all arguments)')
    add("--echo-env", action="append", default=[], metavar="NAME", help='print {"env": {...}}')
    add("--echo-cwd", action="store_true", help='print {"cwd": "..."}')
    add("--print", action="append", default=[], metavar="TEXT", help="a line on stdout")
    add("--stderr", action="append", default=[], metavar="TEXT", help="a line on stderr")
    add("--lines", type=int, default=0, metavar="N", help='print "line 1" .. "line N"')
    add("--interval", type=float, default=0.0, metavar="S", help="pause after each numbered line")
    add("--bytes", type=int, default=0, metavar="N", help="write N bytes of 'x' to stdout")
    add("--write", action="append", default=[], metavar="PATH=TEXT", help="write a file in cwd")
    add("--pidfile", metavar="PATH", help="write own pid to PATH")
    add("--spawn", action="append", default=[], metavar="OPTIONS", help="start a fake agent")
    add("--ignore-term", action="store_true", help="ignore SIGTERM")
    add("--ready", metavar="PATH", help="create PATH once set up")
    add("--sleep", type=float, default=0.0, metavar="S", help="sleep before ending")
    add("--exit", type=int, default=0, metavar="CODE", help="exit code")
    add("--kill-self", metavar="SIGNAL", help="end by this signal (name or number)")
    add("--obey-prompt", action="store_true", help="read options from the last argument too")
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    split = argv.index("--") if "--" in argv else len(argv)
    own, rest = argv[:split], argv[split + 1 :]
    parser = _parser()
    options = shlex.split(os.environ.get("FAKE_AGENT", "")) + own
    args = parser.parse_args(options)
    if args.obey_prompt and rest:
        args = parser.parse_args([*options, *shlex.split(rest[-1])])
    return args


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _echo(args: argparse.Namespace, argv: list[str]) -> None:
    if args.echo_argv:
        _say(sys.stdout, json.dumps({"argv": argv}))
    if args.echo_env:
        _say(
            sys.stdout, json.dumps({"env": {name: os.environ.get(name) for name in args.echo_env}})
        )
    if args.echo_cwd:
        _say(sys.stdout, json.dumps({"cwd": os.getcwd()}))


def _produce(args: argparse.Namespace) -> None:
    for text in args.print:
        _say(sys.stdout, text)
    for text in args.stderr:
        _say(sys.stderr, text)
    for n in range(1, args.lines + 1):
        _say(sys.stdout, f"line {n}")
        time.sleep(args.interval)
    remaining = args.bytes
    while remaining > 0:
        chunk = min(remaining, 65536)
        sys.stdout.write("x" * chunk)
        sys.stdout.flush()
        remaining -= chunk
    for spec in args.write:
        name, _, text = spec.partition("=")
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main() -> int:
    argv = sys.argv[1:]
    args = _parse(argv)
    # Explicit either way: an ignored signal is inherited across exec from a spawning agent.
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_term else signal.SIG_DFL)
    if args.pidfile:
        Path(args.pidfile).write_text(str(os.getpid()))
    for options in args.spawn:
        subprocess.Popen(fake_agent_argv(*shlex.split(options)), env=_without_fake_agent_env())
    _echo(args, argv)
    if args.ready:
        Path(args.ready).touch()
    _produce(args)
    time.sleep(args.sleep)
    if args.kill_self:
        sig = args.kill_self
        os.kill(os.getpid(), int(sig) if sig.isdigit() else signal.Signals[sig].value)
        time.sleep(5)  # a handled or ignored signal: fall through to the exit code
    return int(args.exit)


def _without_fake_agent_env() -> dict[str, str]:
    """Spawned agents follow their own options, not the FAKE_AGENT meant for their parent."""
    return {key: value for key, value in os.environ.items() if key != "FAKE_AGENT"}


if __name__ == "__main__":
    sys.exit(main())
