"""AsyncAPI 3.0 documents built from the catalogue itself, so the docs cannot drift.

`build_asyncapi` documents the whole chain, or only what one service sends and receives.
Every message is a CloudEvents 1.0 event in the structured mode of the CloudEvents Kafka
protocol binding (see `ketenbus.contracts.envelope`): the envelope is the value, keyed by
the event's key; readers take the binding's binary mode as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ketenbus.contracts.envelope import (
    CONTENT_TYPE_HEADER,
    STRUCTURED_CONTENT_TYPE,
    TYPE_HEADER,
    Event,
)
from ketenbus.contracts.events import ALL_EVENTS
from ketenbus.contracts.schemas import destination_pattern, envelope_schema


def _channel_id(address: str) -> str:
    return address.replace("{organisation}", "partner").replace(".", "_").replace("-", "_")


BINDING = (
    "Structured content mode of the CloudEvents Kafka protocol binding 1.0: the value is the "
    "whole event in the JSON event format (content-type application/cloudevents+json), no "
    "ce_ headers. Readers also accept binary content mode (every attribute in a ce_ header, "
    "content-type application/json, the data alone as the value) and read it as the same event."
)


def _headers(event_class: type[Event]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            CONTENT_TYPE_HEADER: {"const": STRUCTURED_CONTENT_TYPE},
            TYPE_HEADER: {
                "const": event_class.event_type(),
                "description": "the event's type, to route without reading the value",
            },
            "correlation_id": {"type": "string", "description": "the event's correlationid"},
        },
        "required": [CONTENT_TYPE_HEADER],
    }


KAFKA_BINDING: dict[str, Any] = {
    "kafka": {
        "key": {
            "type": "string",
            "description": (
                "the event's key: its subject (the pseudonymous client reference), "
                "or on a compacted topic the record the topic keeps per key"
            ),
        },
        "bindingVersion": "0.5.0",
    }
}


def build_asyncapi(
    title: str,
    *,
    sends: Iterable[type[Event]] = ALL_EVENTS,
    receives: Iterable[type[Event]] = (),
    description: str = "",
) -> dict[str, Any]:
    sends, receives = tuple(sends), tuple(receives)
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for action, events in (("send", sends), ("receive", receives)):
        for event_class in events:
            address = destination_pattern(event_class)
            channel_id = _channel_id(address)
            channel = channels.setdefault(
                channel_id,
                {"address": address, "messages": {}},
            )
            stream = event_class.stream
            if stream is not None and stream.compaction is not None:
                channel["description"] = (
                    f"{stream.description} Compacted (cleanup.policy=compact): a record "
                    "without a value (a tombstone) under a card's key removes the card."
                )
            if "{organisation}" in address:
                channel["parameters"] = {
                    "organisation": {"description": "the partner organisation id"}
                }
            # A later version of an event is a message of its own beside the earlier one.
            message_id = event_class.name
            if event_class.version > 1:
                message_id += f"V{event_class.version}"
            messages[message_id] = {
                "name": event_class.event_type(),
                "title": event_class.name,
                "summary": (event_class.__doc__ or event_class.name).strip().splitlines()[0],
                "description": BINDING,
                "contentType": STRUCTURED_CONTENT_TYPE,
                "headers": _headers(event_class),
                "bindings": KAFKA_BINDING,
                "payload": envelope_schema(event_class),
            }
            channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
            operations[f"{action}_{message_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            }

    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": "1", "description": description},
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
