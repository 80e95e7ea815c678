"""What a running stack looks like on disk (`<home>/stack.json`).

`ketenbus up` exits once the stack runs, so a later `ketenbus status` or `ketenbus down`
learns from this file which processes (pid and start time), ports and URLs belong to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.processes import ProcessRef

FILE_NAME = "stack.json"
_FORMAT = 2


@dataclass(slots=True)
class Component:
    """One process of the stack, or a server it uses without having started it (external)."""

    name: str
    kind: str  # kafka (one per broker) | mongo | mail | sms | service
    url: str
    port: int | None = None
    pid: int | None = None
    started: int | None = None  # process start time, to recognise a recycled pid
    log: str | None = None
    external: bool = False
    # For a replica of a service (`intake-2`): the service it runs (`intake`).
    service: str | None = None

    @property
    def process(self) -> ProcessRef | None:
        return ProcessRef(self.pid, self.started) if self.pid is not None else None

    def alive(self) -> bool:
        process = self.process
        return process is not None and process.alive()


@dataclass(slots=True)
class StackState:
    home: str
    kafka_bootstrap: str
    mongo_url: str
    partners: list[str] = field(default_factory=list)
    components: dict[str, Component] = field(default_factory=dict)
    # Where the Kafka users and CA live (kafka_access); None: the caller's KAFKA_* settings.
    kafka_directory: str | None = None

    def kafka(self) -> KafkaAccess:
        directory = Path(self.kafka_directory) if self.kafka_directory else None
        return KafkaAccess(self.kafka_bootstrap, directory)

    def alive_components(self) -> list[Component]:
        return [c for c in self.components.values() if c.alive()]

    def to_json(self) -> str:
        return json.dumps({"format": _FORMAT, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        raw: dict[str, Any] = json.loads(text)
        raw.pop("format", None)
        components = {
            name: Component(**fields) for name, fields in raw.pop("components", {}).items()
        }
        return cls(**raw, components=components)


def load(home: Path) -> StackState | None:
    try:
        return StackState.from_json((home / FILE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def save(home: Path, state: StackState) -> None:
    path = home / FILE_NAME
    # Renamed into place, so a concurrent `ketenbus status` never reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(state.to_json(), encoding="utf-8")
    temporary.replace(path)


def remove(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / FILE_NAME).unlink()


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """Exclusive lock on the home while a stack is being started, so two `ketenbus up` at the
    same moment cannot both decide that no stack is running."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
