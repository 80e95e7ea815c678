"""A consumer reads both content modes of the CloudEvents Kafka binding: the structured
records our services publish, and binary ones as the CloudEvents SDK publishes them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.kit.outbox import headers_of
from ketenbus.kit.uow import UnitOfWork

from .support import (
    a_consuming_service,
    a_subscribed_consumer,
    counted_event_class,
    create_topic,
    eventually,
    read_topic,
)

pytestmark = pytest.mark.stack


def binary_record(envelope: Envelope[Any]) -> binding.KafkaMessage:
    """The envelope's event as the SDK publishes it in binary mode: attributes in `ce_`
    headers, the data alone as the value."""
    attributes = envelope.model_dump(exclude={"data"}, exclude_none=True)
    event = CloudEvent(attributes, json.loads(envelope.data.model_dump_json()))
    return binding.to_binary(event, JSONFormat(), key_mapper=lambda e: e.get_subject())


async def test_a_binary_mode_record_is_handled_as_the_structured_one_is(kafka, mongo_url):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-modes")

    @handlers.on(Counted)
    async def count(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            seen = {"_id": event.data.number, "id": event.id, "subject": event.subject}
            await tx.db.effects.insert_one(seen | {"source": event.source}, session=tx.session)

    broker, consumer = a_subscribed_consumer(
        kafka, handlers, uow, service, Counted, retry_base_seconds=0.01
    )
    metrics = consumer.metrics
    await broker.start()

    async def publish(record: binding.KafkaMessage) -> None:
        headers = {name: value.decode() for name, value in record.headers.items()}
        await broker.publish(record.value, topic, key=record.key.encode(), headers=headers)

    try:
        structured = wrap(Counted(client_ref="cl_a", number=1), source="kittest")
        binary = wrap(Counted(client_ref="cl_a", number=2), source="kittest")
        await broker.publish(
            structured.to_bytes(), topic, key=b"cl_a", headers=headers_of(structured)
        )
        await publish(binary_record(binary))
        # The structured event again, now in binary mode: the same event, handled once.
        await publish(binary_record(structured))
        unreadable = binary_record(wrap(Counted(client_ref="cl_a", number=3), source="kittest"))
        await publish(binding.KafkaMessage(unreadable.headers, "cl_a", b'{"number": "three"}'))
        newcomer = binary_record(wrap(Counted(client_ref="cl_a", number=4), source="kittest"))
        await publish(
            binding.KafkaMessage(
                {**newcomer.headers, "ce_type": b"nl.ketenbus.kittest.Newcomer.v1"},
                "cl_a",
                newcomer.value,
            )
        )
        last = wrap(Counted(client_ref="cl_a", number=5), source="kittest")
        await publish(binary_record(last))

        async def the_last_one_handled() -> bool:
            return await db.effects.find_one({"_id": 5}) is not None

        await eventually(the_last_one_handled)
        dead = await read_topic(kafka, f"{topic}.dlq", expected=1)
        handled = await db.effects.find({}, sort=[("_id", 1)]).to_list()
    finally:
        await broker.stop()
        await mongo.close()

    assert handled == [
        {"_id": e.data.number, "id": e.id, "subject": "cl_a", "source": "/ketenbus/kittest"}
        for e in (structured, binary, last)
    ]
    duplicates = metrics.registry.get_sample_value(
        "ketenbus_events_handled_total",
        {"event_type": Counted.event_type(), "outcome": "duplicate"},
    )
    assert duplicates == 1
    # Unreadable data in binary mode: dead-lettered with the reason, as it came (headers too).
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    reason = headers["x-dlq-reason"].decode()
    assert reason.startswith("InvalidEventData: nl.ketenbus.kittest.Counted.v1: data.")
    assert "three" not in reason
    assert dead[0].value == b'{"number": "three"}'
    assert headers["ce_type"] == Counted.event_type().encode()
    # A type nobody knows yet, named in the ce_type header: skipped and counted by that name.
    skipped = metrics.registry.get_sample_value(
        "ketenbus_events_skipped_total",
        {"topic": topic, "event_type": "nl.ketenbus.kittest.Newcomer.v1"},
    )
    assert skipped == 1
