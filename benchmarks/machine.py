"""What the benchmark ran on (machine, engines, libraries), and what a process cost while it
ran (CPU seconds, memory).

On a shared machine a rate alone misleads: other work takes CPU. So every phase also
records the CPU seconds each process used, and the report gives the load average.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from ketenbus.devstack import engines

_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_total_mb() -> int:
    match = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    return int(match.group(1)) // 1024 if match else 0


def os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def kafka_engine() -> str:
    return f"Apache Kafka {engines.kafka_version()} (KRaft, SASL_SSL)"


def secantus_engine() -> str:
    return f"secantusd-rs {engines.SECANTUS_VERSION}"


def java_version() -> str:
    """The JVM the broker runs on (`java -version` writes to stderr)."""
    try:
        out = subprocess.run(
            [engines.java_binary(), "-version"], capture_output=True, text=True, timeout=30
        )
        lines = (out.stderr or out.stdout).strip().splitlines()
        return lines[0] if lines else "unknown"
    except Exception as error:  # the report says so rather than failing
        return f"unknown ({type(error).__name__})"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": memory_total_mb(),
        "os": os_name(),
        "kernel": platform.release(),
        "virtualisation": _virtualisation(),
        "python": platform.python_version(),
        "kafka": kafka_engine(),
        "java": java_version(),
        "secantusdb": secantus_engine(),
        "faststream": version("faststream"),
        "aiokafka": version("aiokafka"),
        "pymongo": version("pymongo"),
        "pydantic": version("pydantic"),
    }


def _virtualisation() -> str:
    flags = _read("/proc/cpuinfo")
    return "virtual machine (hypervisor flag set)" if " hypervisor" in flags else "bare metal?"


# What identifies each engine's own process on its command line: CPU and memory are counted
# for the broker's JVM and the database server, never for a launcher in front of them.
ENGINE_PROCESSES = {"kafka": "kafka.Kafka", "mongo": "secantusd-rs"}


def _command_line(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline").replace("\0", " ")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in _read(str(tasks)).split()]
    return found


def engine_process(pid: int | None, marker: str) -> int | None:
    """`pid` or the first of its descendants whose command line names `marker`."""
    waiting = [pid] if pid is not None else []
    while waiting:
        candidate = waiting.pop(0)
        if marker in _command_line(candidate):
            return candidate
        waiting += _children(candidate)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time the process used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_mb(pid: int | None) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    found: dict[str, float] = {}
    if pid is None:
        return found
    for line in _read(f"/proc/{pid}/status").splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0]) / 1024
    return found


class CpuMeter:
    """CPU seconds used by named processes between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {
            name: round(cpu_seconds(pid) - self.before.get(name, 0.0), 3)
            for name, pid in self.pids.items()
        }
        return self.used
