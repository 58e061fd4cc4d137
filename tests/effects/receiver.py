"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request it gets and answers
from a script, so a test says "500, then 200" and then reads exactly what arrived."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Answer:
    """One scripted answer. `delay` waits before answering; `trickle` sends the response
    headers one byte every `trickle` seconds (a receiver that is slow but never silent)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.script: deque[Answer] = deque()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.block_on_close = False
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hook"

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.script.extend(answers)

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.popleft() if self.script else Answer(200)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.requests.append(Received(self.command, self.path, headers, body))
            answer = receiver.next_answer()
            if answer.delay and receiver.release.wait(answer.delay):
                return
            if answer.trickle:
                self._trickle(answer)
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def _trickle(self, answer: Answer) -> None:
            head = f"HTTP/1.1 {answer.status} OK\r\ncontent-length: 0\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items()) + "\r\n"
            try:
                for byte in head.encode():
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if receiver.release.wait(answer.trickle):
                        return
            except OSError:
                return

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads `requests`, not stderr."""

    return Handler


@contextmanager
def running_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    receiver = Receiver(tls)
    thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (and its key), made by the openssl command line."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    command = "openssl req -x509 -nodes -days 1 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
    files = ["-keyout", str(key), "-out", str(cert)]
    subject = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    subprocess.run([*command.split(), *files, *subject], check=True, capture_output=True)
    return cert, key
