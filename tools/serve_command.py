"""`rewind serve`: the job server on a data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.config import load_config
from service.server import serve as run


def serve(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory (created if missing).")
    ] = Path("data"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)
    ] = 8080,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config (embedded defaults if absent).")
    ] = None,
) -> None:
    """Serve the HTTP API, run agents, recover from any crash at start. Stop with SIGTERM."""
    run(data_dir, host, port, load_config(config))
