"""A unix-socket relay in front of the real Docker API that can hold back chosen requests.

The server talks to podman through it, byte for byte. When ``hold`` names a fragment of a
request line (``/start``), the next such request is not forwarded: the relay keeps it, sets
``held``, and the server waits for an answer, frozen right after what it recorded before the
call. The test kills the server there, then ``drop`` closes the held connection without
forwarding it. This is how a test stops the server exactly between ``container.created`` and
the container's start, with no hook in the server and every call still served by podman.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from pathlib import Path


class DockerGate:
    def __init__(self, upstream_url: str) -> None:
        if not upstream_url.startswith("unix://"):
            raise AssertionError(f"the gate relays a unix socket, not {upstream_url!r}")
        self.upstream = upstream_url.removeprefix("unix://")
        # Short: a unix socket path is limited to 107 bytes, pytest's tmp_path can be longer.
        self.directory = Path(tempfile.mkdtemp(prefix="rwgate-"))
        self.path = self.directory / "docker.sock"
        self.base_url = f"unix://{self.path}"
        self.holding: bytes | None = None
        self.held = threading.Event()
        self.held_line = b""
        self._dropped = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, fragment: str) -> None:
        """Keep the next request whose request line contains ``fragment``."""
        self.held.clear()
        self._dropped.clear()
        self.holding = fragment.encode()

    def drop(self) -> None:
        """Close every connection (the held one included): nothing held is ever forwarded."""
        self.holding = None
        self._dropped.set()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def close(self) -> None:
        self.drop()
        self._listener.close()
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def _requests(self, source: socket.socket, sink: socket.socket) -> None:
        """Client to API. The docker SDK sends a request's head in one write, so a chunk that
        starts a request starts with its request line."""
        try:
            while data := source.recv(65536):
                line = data.split(b"\r\n", 1)[0]
                if self.holding is not None and self.holding in line and not self.held.is_set():
                    self.held_line = line
                    self.held.set()
                    self._dropped.wait()
                    return
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
