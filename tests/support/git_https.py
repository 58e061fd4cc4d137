"""A git repository served over HTTPS that demands HTTP basic auth, for the credential tests.

Git's dumb HTTP protocol needs nothing but static files (`git update-server-info` writes the
index of them), so a small threaded server over a bare repository is a real remote for
`git clone` and `git fetch`. Every request is checked against one user and password (401
with a Basic challenge otherwise) and recorded, with what the request carried and whether
any process's command line held the password while git waited for the answer (/proc is read
during the request, when the git processes asking are alive).
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    path: str
    authorization: str | None
    password_in_argv: bool


@dataclass
class GitHttps:
    root: Path
    """Served as `/`: the bare repository is `<root>/<name>.git`."""
    user: str
    password: str
    port: int = 0
    requests: list[Request] = field(default_factory=list)

    def url(self, name: str, userinfo: str | None = None) -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"https://{at}127.0.0.1:{self.port}/{name}.git"

    @property
    def authorized(self) -> list[Request]:
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return [r for r in self.requests if r.authorization == f"Basic {expected}"]


def publish(source: Path, root: Path, name: str) -> Path:
    """A bare copy of the repository at `source`, ready for dumb HTTP, as `<root>/<name>.git`."""
    bare = root / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
    return bare


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made by the openssl CLI."""
    cert, key = directory / "git.crt", directory / "git.key"
    command = "openssl req -x509 -nodes -days 1 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
    files = ["-keyout", str(key), "-out", str(cert)]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run([*command.split(), *files, *subject], check=True, capture_output=True)
    return cert, key


def _argv_holds(secret: bytes) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if secret in cmdline.read_bytes():
                return True
        except OSError:  # the process ended meanwhile
            continue
    return False


def _handler(served: GitHttps) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{served.user}:{served.password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            authorization = self.headers.get("authorization")
            served.requests.append(
                Request(self.path, authorization, _argv_holds(served.password.encode()))
            )
            if authorization != expected:
                self._answer(401, b"", {"WWW-Authenticate": 'Basic realm="git"'})
                return
            path = (served.root / urlsplit(self.path).path.lstrip("/")).resolve()
            if not path.is_relative_to(served.root) or not path.is_file():
                self._answer(404, b"", {})
                return
            self._answer(200, path.read_bytes(), {"Content-Type": "application/octet-stream"})

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `requests`."""

    return Handler


@contextmanager
def serving(root: Path, cert: Path, key: Path, user: str, password: str) -> Iterator[GitHttps]:
    served = GitHttps(root.resolve(), user, password)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
