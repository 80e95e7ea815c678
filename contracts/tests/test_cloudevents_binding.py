"""Every event type conforms to the CloudEvents Kafka protocol binding, as the CloudEvents
SDK reads and writes it: what our producers put on Kafka the SDK reads as the same event,
and what the SDK puts on Kafka, in binary or structured mode, our readers read as ours."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketenbus.contracts.asyncapi import build_asyncapi
from ketenbus.contracts.envelope import (
    Envelope,
    InvalidEventData,
    MalformedEnvelope,
    UnknownEventType,
    decode,
    is_binary_mode,
    structured_headers,
    type_in_headers,
)
from ketenbus.contracts.events import ALL_EVENTS, REGISTRY

from .examples import envelopes

EVENT_TYPES = sorted(REGISTRY)
FORMAT = JSONFormat()
each_example = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def our_record(envelope: Envelope[Any]) -> kafka.KafkaMessage:
    """The record our outbox relay publishes for the envelope."""
    headers = {name: value.encode() for name, value in structured_headers(envelope).items()}
    return kafka.KafkaMessage(headers=headers, key=envelope.data.key, value=envelope.to_bytes())


def as_cloudevent(envelope: Envelope[Any]) -> CloudEvent:
    """The same event built with the SDK, from its attributes, not from our bytes."""
    attributes = envelope.model_dump(exclude={"data"}, exclude_none=True)
    return CloudEvent(attributes, json.loads(envelope.data.model_dump_json()))


def keyed(event: Any) -> str:
    return event.get_subject()


def headers_of(message: kafka.KafkaMessage) -> list[tuple[str, bytes]]:
    return list(message.headers.items())


def draw(data: st.DataObject, event_type: str) -> Envelope[Any]:
    return data.draw(envelopes(REGISTRY[event_type]), label="envelope")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@each_example
@given(data=st.data())
def test_what_we_publish_the_sdk_reads_as_the_same_structured_event(event_type, data):
    envelope = draw(data, event_type)
    record = our_record(envelope)

    # from_kafka: the SDK's own choice of mode, from the headers alone.
    read = kafka.from_kafka(record, FORMAT)

    assert read.get_attributes() == {
        **envelope.model_dump(exclude={"data"}),
        # The binding gives the record's key to the reader as the partitionkey extension.
        "partitionkey": envelope.data.key,
    }
    assert read.get_data() == json.loads(envelope.data.model_dump_json())
    assert type_in_headers(headers_of(record)) == envelope.type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@each_example
@given(data=st.data())
def test_what_the_sdk_publishes_in_either_mode_we_read_as_our_event(event_type, data):
    envelope = draw(data, event_type)
    event = as_cloudevent(envelope)

    binary = kafka.to_binary(event, FORMAT, key_mapper=keyed)
    structured = kafka.to_structured(event, FORMAT, key_mapper=keyed)

    assert is_binary_mode(headers_of(binary)) and not is_binary_mode(headers_of(structured))
    assert decode(binary.value, REGISTRY, headers_of(binary)) == envelope
    assert decode(structured.value, REGISTRY, headers_of(structured)) == envelope
    assert type_in_headers(headers_of(binary)) == envelope.type
    assert binary.key == structured.key == envelope.subject


def sdk_binary(envelope: Envelope[Any]) -> kafka.KafkaMessage:
    return kafka.to_binary(as_cloudevent(envelope), FORMAT, key_mapper=keyed)


@given(data=st.data())
@each_example
def test_a_binary_record_is_told_apart_by_its_headers_not_its_value(data):
    envelope = draw(data, "nl.ketenbus.trajectory.AppointmentMissed.v1")
    binary = sdk_binary(envelope)

    # Without its headers the value is data, not an envelope.
    with pytest.raises(MalformedEnvelope):
        decode(binary.value, REGISTRY)
    # The binding's rule: a CloudEvents content-type means structured, whatever else is there.
    structured = our_record(envelope)
    mixed = [*headers_of(structured), ("ce_specversion", b"1.0")]
    assert decode(structured.value, REGISTRY, mixed) == envelope


@given(data=st.data())
@each_example
def test_a_binary_record_that_cannot_be_read_says_why_without_its_content(data):
    envelope = draw(data, "nl.ketenbus.trajectory.AppointmentMissed.v1")
    binary = sdk_binary(envelope)
    headers = headers_of(binary)

    with pytest.raises(MalformedEnvelope, match="data is not JSON"):
        decode(b"\xff" + binary.value, REGISTRY, headers)
    with pytest.raises(InvalidEventData) as invalid:
        decode(b'{"client_ref": 12}', REGISTRY, headers)
    assert invalid.value.event_type == envelope.type
    assert "12" not in invalid.value.reason
    without_source = [(name, value) for name, value in headers if name != "ce_source"]
    with pytest.raises(MalformedEnvelope, match="source"):
        decode(binary.value, REGISTRY, without_source)
    renamed = [
        (name, b"nl.ketenbus.trajectory.Unheard.v1" if name == "ce_type" else value)
        for name, value in headers
    ]
    with pytest.raises(UnknownEventType) as unknown:
        decode(binary.value, REGISTRY, renamed)
    assert unknown.value.event_type == "nl.ketenbus.trajectory.Unheard.v1"


@given(data=st.data())
@each_example
def test_the_asyncapi_document_says_what_the_records_carry(data):
    document = build_asyncapi("chain", sends=ALL_EVENTS)
    messages = {m["name"]: m for m in document["components"]["messages"].values()}
    assert sorted(messages) == EVENT_TYPES

    event_type = data.draw(st.sampled_from(EVENT_TYPES))
    envelope = draw(data, event_type)
    message = messages[event_type]
    headers = structured_headers(envelope)
    described = message["headers"]["properties"]
    assert message["contentType"] == headers["content-type"] == "application/cloudevents+json"
    assert sorted(described) == sorted(headers)
    assert all(headers[name] == p["const"] for name, p in described.items() if "const" in p)
    assert "structured content mode" in message["description"].lower()
