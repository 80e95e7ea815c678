"""JSON Schema export of every event, as published and committed in contracts/schemas/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ketenbus.contracts.envelope import Envelope, Event
from ketenbus.contracts.events import ALL_EVENTS
from ketenbus.contracts.topics import Topic

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


def envelope_schema(event_class: type[Event]) -> dict[str, Any]:
    schema = Envelope[event_class].model_json_schema(mode="validation")  # type: ignore[valid-type]
    schema["title"] = event_class.event_type()
    schema["description"] = (event_class.__doc__ or event_class.name).strip().splitlines()[0]
    schema["x-ketenbus-topic"] = destination_pattern(event_class)
    return schema


def destination_pattern(event_class: type[Event]) -> str:
    if isinstance(event_class.stream, Topic):
        return event_class.stream.name
    owner = "inbound" if event_class.owner == "partners" else "outbound"
    return f"ketenbus.partners.{{organisation}}.{owner}.v1"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {cls.event_type(): envelope_schema(cls) for cls in ALL_EVENTS}


def _dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write one schema file per event type; files of types no longer known are left alone
    so that the compatibility check can still complain about their removal."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in current_schemas().items():
        path = directory / f"{event_type}.json"
        path.write_text(_dumps(schema), encoding="utf-8")
        written.append(path)
    return written


def published_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }
