"""The MongoDB API for local runs: SecantusDB (MongoDB wire protocol over WiredTiger).

SecantusDB is GPL-2.0 and only a development and test server: it runs as its own process
(`secantusd-py`) and is never imported, so no Ketenbus code links against it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from ketenbus.devstack import ports
from ketenbus.devstack.errors import StartFailed
from ketenbus.devstack.processes import PendingStart, RunningProcess

# An explicit config file stops secantusd from auto-discovering ./secantusd.toml or
# ~/.secantus/secantusd.toml, so every developer's stack runs with the same settings.
_CONFIG = "# Written by ketenbus.devstack. Settings are passed as flags; this file stays empty.\n"


def daemon_binary() -> str:
    """secantusd-py from the same environment as this Python (the venv), else from PATH."""
    beside_python = Path(sys.executable).parent / "secantusd-py"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("secantusd-py")
    if found is None:
        raise StartFailed("secantusd-py not found; install SecantusDB (uv sync)")
    return found


def mongo_url(port: int) -> str:
    # directConnection: SecantusDB advertises itself as a one-node replica set; connect to it
    # as it is instead of trying to discover other members.
    return f"mongodb://{ports.LOOPBACK}:{port}/?directConnection=true"


def begin_mongo(
    data_dir: Path,
    log_path: Path,
    *,
    port: int | None = None,
    test_commands: bool = False,
    cache_size: str = "256M",
    timeout: float = 60.0,
    outlive_caller: bool = True,
) -> PendingStart:
    """Start SecantusDB with its data in `data_dir` (kept across restarts); `url` is for PyMongo.

    `test_commands` enables configureFailPoint, which tests use for fault injection; it is off
    by default because any client on the port could then break the server.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / f"{data_dir.name}.secantusd.toml"
    config.write_text(_CONFIG)
    binary = daemon_binary()

    def argv(chosen: int) -> list[str]:
        args = [
            binary,
            "--config",
            str(config),
            "--host",
            ports.LOOPBACK,
            "--port",
            str(chosen),
            "--storage-path",
            str(data_dir),
            "--cache-size",
            cache_size,
        ]
        if test_commands:
            args.append("--enable-test-commands")
        return args

    return PendingStart(
        "mongo",
        argv,
        log_path=log_path,
        ready=ports.accepts_connections,
        url_for=mongo_url,
        ready_line="secantus listening on",
        port=port,
        timeout=timeout,
        outlive_caller=outlive_caller,
    )


def start_mongo(*args: Any, **kwargs: Any) -> RunningProcess:
    """begin_mongo(...) and wait until it is ready."""
    return begin_mongo(*args, **kwargs).wait()
