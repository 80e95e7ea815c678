"""The MongoDB API for local runs: SecantusDB's Rust server, `secantusd-rs` (MongoDB wire
protocol over WiredTiger), built once per machine by ketenbus.devstack.engines.

SecantusDB is GPL-2.0 and only a development and test server: it runs as its own process and
is never linked into Ketenbus code. It answers everything the services use (CRUD, bulk writes,
indexes, multi-document transactions, aggregation); it has no `configureFailPoint`
(CommandNotFound), so failure tests stop and start the server instead of arming failpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ketenbus.devstack import engines, ports
from ketenbus.devstack.processes import PendingStart, RunningProcess

# An explicit config file stops secantusd from auto-discovering ./secantusd.toml or
# ~/.secantus/secantusd.toml, so every developer's stack runs with the same settings.
_CONFIG = "# Written by ketenbus.devstack. Settings are passed as flags; this file stays empty.\n"


def mongo_url(port: int) -> str:
    # directConnection: SecantusDB advertises itself as a one-node replica set; connect to it
    # as it is instead of trying to discover other members.
    return f"mongodb://{ports.LOOPBACK}:{port}/?directConnection=true"


def begin_mongo(
    data_dir: Path,
    log_path: Path,
    *,
    port: int | None = None,
    cache_size: str = "256M",
    timeout: float = 60.0,
    outlive_caller: bool = True,
) -> PendingStart:
    """Start secantusd-rs with its data in `data_dir` (kept across restarts); `url` is for
    PyMongo."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / f"{data_dir.name}.secantusd.toml"
    config.write_text(_CONFIG)
    binary = str(engines.secantus_binary())

    def argv(chosen: int) -> list[str]:
        return [
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
            # The write-ahead log file is allocated in full; tests make many small stores.
            "--log-file-max",
            "32MB",
        ]

    return PendingStart(
        "mongo",
        argv,
        log_path=log_path,
        ready=ports.accepts_connections,
        url_for=mongo_url,
        ready_line="secantusd-rs listening on",
        port=port,
        timeout=timeout,
        outlive_caller=outlive_caller,
    )


def start_mongo(*args: Any, **kwargs: Any) -> RunningProcess:
    """begin_mongo(...) and wait until it is ready."""
    return begin_mongo(*args, **kwargs).wait()
