"""The committed schemas are what the code publishes, and a breaking change is caught."""

import copy

from ketenbus.contracts.compatibility import breaking_changes
from ketenbus.contracts.schemas import current_schemas, published_schemas


def test_committed_schemas_are_exactly_what_the_models_produce():
    published, current = published_schemas(), current_schemas()
    assert sorted(published) == sorted(current), "run `make schemas` and commit the result"
    stale = [t for t in current if published[t] != current[t]]
    assert not stale, f"schemas out of date, run `make schemas`: {stale}"


def test_no_published_schema_changed_incompatibly():
    assert breaking_changes(published_schemas(), current_schemas()) == []


def _missed_schema() -> tuple[str, dict]:
    schemas = current_schemas()
    event_type = "nl.ketenbus.trajectory.AppointmentMissed.v1"
    return event_type, schemas[event_type]


def _data(schema: dict) -> dict:
    ref = schema["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
    return schema["$defs"][ref]


def test_adding_an_optional_field_is_compatible():
    event_type, old = _missed_schema()
    new = copy.deepcopy(old)
    _data(new)["properties"]["room"] = {"type": "string"}
    assert breaking_changes({event_type: old}, {event_type: new}) == []


def test_removing_retyping_or_requiring_a_field_is_breaking():
    event_type, old = _missed_schema()

    removed = copy.deepcopy(old)
    del _data(removed)["properties"]["worker_id"]
    retyped = copy.deepcopy(old)
    _data(retyped)["properties"]["starts_at"] = {"type": "integer"}
    required = copy.deepcopy(old)
    _data(required)["properties"]["room"] = {"type": "string"}
    _data(required)["required"].append("room")

    assert breaking_changes({event_type: old}, {event_type: removed}) == [
        f"{event_type}: data.worker_id: removed"
    ]
    assert breaking_changes({event_type: old}, {event_type: retyped}) == [
        f"{event_type}: data.starts_at: type or constraints changed"
    ]
    assert breaking_changes({event_type: old}, {event_type: required}) == [
        f"{event_type}: data.room: added as a required field"
    ]


def test_narrowing_an_enumeration_is_breaking():
    event_type, old = _missed_schema()
    new = copy.deepcopy(old)
    kind = new["$defs"]["AppointmentKind"]
    kind["enum"] = kind["enum"][:1]
    assert breaking_changes({event_type: old}, {event_type: new}) == [
        f"{event_type}: data.kind: type or constraints changed"
    ]


def test_removing_a_published_event_type_is_breaking():
    event_type, old = _missed_schema()
    assert breaking_changes({event_type: old}, {}) == [
        f"{event_type}: published event type removed"
    ]
