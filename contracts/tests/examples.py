"""Valid examples of any event, drawn from its own JSON Schema: every event type gets some
without a factory written for it, and a new type gets them as soon as it is registered."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

from ketenbus.contracts.envelope import Envelope, Event, wrap

SOURCES = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)


def _text(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())
    if schema.get("format") == "date":
        return st.dates().map(lambda d: d.isoformat())
    return st.text(
        min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40)
    )


def _from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return _from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([_from_schema(option, defs) for option in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return _text(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        # A JSON number is finite: infinity would travel as null.
        return st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            _from_schema(schema.get("items", {}), defs),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 3), 3),
        )
    if kind == "object":
        required = set(schema.get("required", ()))
        properties = schema.get("properties", {})
        return st.fixed_dictionaries(
            {name: _from_schema(p, defs) for name, p in properties.items() if name in required},
            optional={
                name: _from_schema(p, defs)
                for name, p in properties.items()
                if name not in required
            },
        )
    raise NotImplementedError(f"no examples for the schema {schema}")


@st.composite
def events(draw: st.DrawFn, event_class: type[Event]) -> Event:
    """A valid `event_class`: data drawn from its schema, kept when the model takes it (a
    model's own validators may ask more than the schema says)."""
    schema = event_class.model_json_schema()
    data = draw(_from_schema(schema, schema.get("$defs", {})))
    try:
        return event_class.model_validate(data)
    except ValidationError:
        assume(False)
        raise


@st.composite
def envelopes(draw: st.DrawFn, event_class: type[Event]) -> Envelope[Any]:
    """A valid `event_class` in its envelope, caused by another event or not."""
    event = draw(events(event_class))
    cause = draw(st.none() | st.uuids().map(lambda u: u.hex))
    return wrap(
        event,
        source=draw(SOURCES),
        time=draw(st.datetimes(timezones=st.just(UTC))),
        correlation_id=cause,
        causation_id=cause,
    )
