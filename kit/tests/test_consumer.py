"""A bad message goes to the dead-letter topic with its reason; the partition goes on."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.topics import Compaction, Topic
from ketenbus.kit.errors import DomainError
from ketenbus.kit.gathered import AS_STORED, GatheredDocuments
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

QUICK = Compaction(
    segment_ms=1000,
    max_compaction_lag_ms=1000,
    min_cleanable_dirty_ratio=0.01,
    delete_retention_ms=60_000,
)


async def test_invalid_events_are_dead_lettered_with_a_reason_and_later_ones_processed(
    kafka, mongo_url
):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-consumer")

    @handlers.on(Counted)
    async def count(event: Envelope, uow: UnitOfWork) -> None:
        if event.data.number == 13:
            raise DomainError("thirteen is not a number this service accepts")
        async with uow.handling(event) as tx:
            await tx.db.effects.insert_one({"_id": event.data.number}, session=tx.session)

    broker, consumer = a_subscribed_consumer(
        kafka, handlers, uow, service, Counted, retry_base_seconds=0.01
    )
    metrics = consumer.metrics
    await broker.start()
    try:
        good = [wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in (1, 2, 3)]
        await broker.publish(good[0].to_bytes(), topic, key=b"cl_a")
        await broker.publish(b"{not json", topic, key=b"cl_a")
        wrong_type = json.loads(good[1].to_bytes())
        wrong_type["data"]["number"] = "two"
        await broker.publish(json.dumps(wrong_type).encode(), topic, key=b"cl_a")
        unknown = json.loads(good[1].to_bytes())
        unknown["type"] = "nl.ketenbus.kittest.Counted.v7"
        await broker.publish(json.dumps(unknown).encode(), topic, key=b"cl_a")
        refused = wrap(Counted(client_ref="cl_a", number=13), source="kittest")
        await broker.publish(refused.to_bytes(), topic, key=b"cl_a")
        newcomer = json.loads(good[1].to_bytes())
        newcomer["type"] = "nl.ketenbus.kittest.Newcomer.v1"  # a type added to the stream
        newcomer["id"] = uuid.uuid4().hex
        await broker.publish(json.dumps(newcomer).encode(), topic, key=b"cl_a")
        await broker.publish(good[1].to_bytes(), topic, key=b"cl_a")
        await broker.publish(good[2].to_bytes(), topic, key=b"cl_a")
        await broker.publish(good[2].to_bytes(), topic, key=b"cl_a")  # redelivered

        async def all_good_ones_handled() -> bool:
            # The redelivered copy comes last: its being passed by is awaited too.
            repeated = metrics.registry.get_sample_value(
                "ketenbus_events_handled_total",
                {"event_type": Counted.event_type(), "outcome": "duplicate"},
            )
            return await db.effects.count_documents({}) == 3 and repeated == 1

        await eventually(all_good_ones_handled)
        dead = await read_topic(kafka, f"{topic}.dlq", expected=4)
    finally:
        await broker.stop()
        await mongo.close()

    reasons = [dict(record.headers)["x-dlq-reason"].decode() for record in dead]
    assert len(dead) == 4
    assert reasons[0].startswith("MalformedEnvelope: not an event envelope")
    assert reasons[1].startswith("InvalidEventData: nl.ketenbus.kittest.Counted.v1: data.number")
    assert reasons[2].startswith("UnsupportedEventVersion: nl.ketenbus.kittest.Counted.v7")
    assert reasons[3] == "DomainError: thirteen is not a number this service accepts"
    assert dead[0].value == b"{not json"
    assert dict(dead[3].headers)["x-dlq-consumer"].decode() == service
    assert dict(dead[3].headers)["x-dlq-source"].decode() == f"{topic}/0/4"
    # The new type was skipped, not dead-lettered (and the events after it were handled).
    skipped = metrics.registry.get_sample_value(
        "ketenbus_events_skipped_total",
        {"topic": topic, "event_type": "nl.ketenbus.kittest.Newcomer.v1"},
    )
    assert skipped == 1
    assert all(b"Newcomer" not in record.value for record in dead)
    sample = metrics.registry.get_sample_value(
        "ketenbus_dlq_messages_total", {"topic": f"{topic}.dlq", "reason": "DomainError"}
    )
    assert sample == 1
    duplicates = metrics.registry.get_sample_value(
        "ketenbus_events_handled_total",
        {"event_type": Counted.event_type(), "outcome": "duplicate"},
    )
    assert duplicates == 1


async def test_an_unknown_type_on_a_partners_topic_is_dead_lettered_not_skipped(kafka, mongo_url):
    """A partner's inbound topic carries what the chain defined: an unknown type there is the
    partner's mistake, and the partner must hear of it (through the dead-letter hook)."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-consumer")

    @handlers.on(Counted, topics=[topic])
    async def count(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            await tx.db.effects.insert_one({"_id": event.data.number}, session=tx.session)

    broker, _ = a_subscribed_consumer(kafka, handlers, uow, service, Counted)
    await broker.start()
    try:
        good = wrap(Counted(client_ref="cl_a", number=1), source="kittest")
        stranger = json.loads(good.to_bytes())
        stranger["type"] = "nl.ketenbus.kittest.Stranger.v1"
        await broker.publish(json.dumps(stranger).encode(), topic, key=b"cl_a")
        await broker.publish(good.to_bytes(), topic, key=b"cl_a")

        async def handled() -> bool:
            return await db.effects.count_documents({}) == 1

        await eventually(handled)
        [dead] = await read_topic(kafka, f"{topic}.dlq", expected=1)
    finally:
        await broker.stop()
        await mongo.close()
    reason = dict(dead.headers)["x-dlq-reason"].decode()
    assert reason.startswith("UnknownEventType: unknown event type")


async def test_batches_share_a_transaction_and_a_failure_falls_back_to_one_by_one(kafka, mongo_url):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-batch")

    @handlers.on(Counted)
    async def count(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            if event.data.number == 250:
                raise DomainError("250 is refused")
            await tx.db.effects.insert_one({"_id": event.data.number}, session=tx.session)
            await tx.db.totals.update_one(
                {"_id": event.data.client_ref}, {"$inc": {"n": 1}}, upsert=True, session=tx.session
            )
            tx.publish(Counted(client_ref=event.data.client_ref, number=-event.data.number))

    broker, consumer = a_subscribed_consumer(
        kafka, handlers, uow, service, Counted, retry_base_seconds=0.01, batch_size=100
    )
    metrics = consumer.metrics
    envelopes = [wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in range(400)]
    # Everything is on the topic before the consumer starts, so it arrives in full batches.
    for envelope in [*envelopes, envelopes[10]]:
        await broker.connect()
        await broker.publish(envelope.to_bytes(), topic, key=b"cl_a")
    await broker.start()
    try:

        async def all_handled() -> bool:
            return await db.effects.count_documents({}) == 399

        await eventually(all_handled)
        dead = await read_topic(kafka, f"{topic}.dlq", expected=1)
        totals = await db.totals.find_one({"_id": "cl_a"})
        staged = await db.outbox.count_documents({})
        claimed = await db.inbox.count_documents({})
    finally:
        await broker.stop()
        await mongo.close()

    assert totals["n"] == 399
    assert staged == 399
    assert claimed == 399
    [letter] = dead
    assert dict(letter.headers)["x-dlq-reason"].decode() == "DomainError: 250 is refused"
    processed = metrics.registry.get_sample_value(
        "ketenbus_events_handled_total",
        {"event_type": Counted.event_type(), "outcome": "processed"},
    )
    assert processed == 399
    # Most events went in shared transactions: far fewer batches than events.
    batches = metrics.registry.get_sample_value("ketenbus_batch_events_count")
    batched = metrics.registry.get_sample_value("ketenbus_batch_events_sum")
    assert batched >= 300 and batches <= batched / 10


async def test_a_compacted_topics_tombstones_reach_their_handler_in_order_with_the_events(
    kafka, mongo_url
):
    """A card and the tombstone after it, in one batch: the card is kept first and then
    forgotten, whichever batch or transaction they share. A card after its tombstone stays."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    compacted = Topic(topic, "kittest", "a compacted test topic", compaction=QUICK)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-tombstones")

    @handlers.on(Counted)
    async def keep(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            await tx.db.cards.replace_one(
                {"_id": event.data.client_ref},
                {"number": event.data.number},
                upsert=True,
                session=tx.session,
            )

    @handlers.on_tombstone(compacted)
    async def forget(key: str, uow: UnitOfWork) -> None:
        async with uow.command() as tx:
            await tx.db.cards.delete_one({"_id": key}, session=tx.session)

    broker, consumer = a_subscribed_consumer(kafka, handlers, uow, service, Counted, batch_size=100)
    metrics = consumer.metrics
    sent = [("cl_a", 1), ("cl_b", 2), ("cl_a", None), ("cl_c", 3), ("cl_c", None), ("cl_c", 4)]
    # All on the topic before the consumer starts: they arrive in one batch.
    await broker.connect()
    for client_ref, number in sent:
        card = Counted(client_ref=client_ref, number=number) if number is not None else None
        value = wrap(card, source="kittest").to_bytes() if card is not None else None
        await broker.publish(value, topic, key=client_ref.encode())
    await broker.start()
    try:

        def processed(event_type: str) -> float | None:
            return metrics.registry.get_sample_value(
                "ketenbus_events_handled_total", {"event_type": event_type, "outcome": "processed"}
            )

        async def all_six_handled() -> bool:
            # The card after the last tombstone is handled after it: wait for that one too.
            return processed("tombstone") == 2 and processed(Counted.event_type()) == 4

        await eventually(all_six_handled)
        cards = {c["_id"]: c["number"] async for c in db.cards.find()}
        dead = await read_topic(kafka, f"{topic}.dlq", expected=0)
    finally:
        await broker.stop()
        await mongo.close()
    assert cards == {"cl_b": 2, "cl_c": 4}
    assert dead == []  # a tombstone whose handler is declared is no bad message
    with pytest.raises(ValueError, match="not compacted"):
        handlers.on_tombstone(Topic(topic, "kittest", "not compacted"))


def cards(tx: Any) -> GatheredDocuments[dict[str, Any]]:
    return GatheredDocuments.of(tx, tx.db.cards, AS_STORED, upsert=True)


async def test_a_batchs_cards_are_read_ahead_once_before_its_handlers_run(kafka, mongo_url):
    """The read-ahead gets each batch's events once, before their handlers, who find the
    cards it read kept (no find of their own); every number is added once."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-read-ahead")
    await db.cards.insert_many([{"_id": f"cl_{i}", "total": 1000} for i in range(3)])
    read_for: list[int] = []
    found_read: list[bool] = []

    @handlers.on(Counted)
    async def add(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            ref = event.data.client_ref
            found_read.append(ref in cards(tx).read_by.get("_id", ()))
            card = await cards(tx).get(ref) or {"_id": ref, "total": 0}
            card["total"] += event.data.number
            cards(tx).save(card)

    @handlers.read_ahead(Counted)
    async def cards_of(events: list[Envelope], tx: Any) -> None:
        read_for.extend(e.data.number for e in events)
        await cards(tx).read_ahead("_id", (e.data.client_ref for e in events))

    with pytest.raises(ValueError, match="already has a read-ahead"):
        handlers.read_ahead(Counted)(cards_of)
    broker, _ = a_subscribed_consumer(kafka, handlers, uow, service, Counted, batch_size=25)
    await broker.connect()
    sent = [Counted(client_ref=f"cl_{n % 5}", number=n) for n in range(1, 101)]
    for event in sent:
        await broker.publish(wrap(event, source="kittest").to_bytes(), topic, key=b"k")
    await broker.start()
    try:

        async def all_added() -> bool:
            return await db.inbox.count_documents({}) == len(sent)

        await eventually(all_added)
        totals = {c["_id"]: c["total"] async for c in db.cards.find()}
    finally:
        await broker.stop()
        await mongo.close()
    expected = {f"cl_{i}": 1000 if i < 3 else 0 for i in range(5)}
    for event in sent:
        expected[event.client_ref] += event.number
    assert totals == expected
    assert sorted(read_for) == list(range(1, 101))  # each event read for once
    # Batches of more than one event: handled after their read-ahead, without a find.
    assert found_read.count(True) >= 90
