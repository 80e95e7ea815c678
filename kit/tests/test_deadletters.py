"""Dead letters replayed after a fix: handled once by every consumer, however often replayed."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.devstack.kafka_access import ADMIN
from ketenbus.kit import deadletters
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.consumer import EventConsumer, EventHandlers
from ketenbus.kit.dead_letter_purges import ERASED, PURGES, DeadLetterPurger, DeadLetterPurges
from ketenbus.kit.errors import DomainError
from ketenbus.kit.uow import UnitOfWork

from .support import (
    a_subscribed_consumer,
    counted_event_class,
    create_topic,
    eventually,
    read_topic,
)

pytestmark = pytest.mark.stack


async def test_a_replayed_dead_letter_is_handled_once_by_each_consumer(
    kafka, mongo_url, monkeypatch
):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo = AsyncMongoClient(mongo_url, tz_aware=True)
    fixed = {"yes": False}  # the fix: until it is deployed, 13 is refused
    consumers: list[tuple[Any, EventConsumer, KafkaBroker]] = []
    for _ in range(2):  # two services that both handle the event, and both put 13 aside
        db = mongo[f"kit_{uuid.uuid4().hex[:10]}"]
        service = f"kit-replay-{uuid.uuid4().hex[:6]}"
        uow = UnitOfWork(mongo, db, service=service, clock=SystemClock())
        handlers = EventHandlers(service)

        @handlers.on(Counted)
        async def count(event: Envelope, uow: UnitOfWork) -> None:
            if event.data.number == 13 and not fixed["yes"]:
                raise DomainError("thirteen is not accepted before the fix")
            async with uow.handling(event) as tx:
                await tx.db.effects.insert_one({"_id": event.data.number}, session=tx.session)

        broker, consumer = a_subscribed_consumer(
            kafka, handlers, uow, service, Counted, retry_base_seconds=0.01
        )
        consumers.append((db, consumer, broker))
    for name, value in kafka.service_environment(ADMIN).items():  # the operator's tool
        monkeypatch.setenv(name, value)

    async def effects(number: int) -> bool:
        for db, _, _ in consumers:
            if await db.effects.count_documents({"_id": number}) != 1:
                return False
        return True

    for _, _, broker in consumers:
        await broker.start()
    try:
        thirteen = wrap(Counted(client_ref="cl_a", number=13), source="kittest")
        for number in (1, 13, 2):
            event = (
                thirteen
                if number == 13
                else wrap(Counted(client_ref="cl_a", number=number), source="kittest")
            )
            await consumers[0][2].publish(event.to_bytes(), topic, key=b"cl_a")
        await eventually(lambda: effects(2))
        await read_topic(kafka, f"{topic}.dlq", expected=2)
        assert not await effects(13)

        listed = io.StringIO()
        assert await deadletters.run(["list", topic], out=listed) == 0
        assert "2 dead letters, 1 not replayed yet" in listed.getvalue()
        assert "DomainError: thirteen is not accepted before the fix" in listed.getvalue()

        fixed["yes"] = True
        out = io.StringIO()
        assert await deadletters.run(["replay", topic], out=out) == 0
        assert out.getvalue().startswith("replayed 1 dead letters"), out.getvalue()
        await eventually(lambda: effects(13))

        # Again: nothing goes back (the marker), and the list says so.
        again = io.StringIO()
        assert await deadletters.run(["replay", f"{topic}.dlq"], out=again) == 0
        assert again.getvalue().startswith(f"replayed 0 dead letters to {topic}; passed over 2")
        listed = io.StringIO()
        await deadletters.run(["list", topic], out=listed)
        assert "2 dead letters, 0 not replayed yet" in listed.getvalue()

        # Even sent back once more (a crash before the marker): the inboxes know it.
        producer = AIOKafkaProducer(**kafka.client_options())
        await producer.start()
        try:
            await producer.send_and_wait(topic, thirteen.to_bytes(), key=b"cl_a")
            later = wrap(Counted(client_ref="cl_a", number=4), source="kittest")
            await producer.send_and_wait(topic, later.to_bytes(), key=b"cl_a")
        finally:
            await producer.stop()
        await eventually(lambda: effects(4))
        for db, consumer, _ in consumers:
            assert await db.effects.count_documents({}) == 4  # 1, 2, 13, 4: each once
            duplicates = consumer.metrics.registry.get_sample_value(
                "ketenbus_events_handled_total",
                {"event_type": Counted.event_type(), "outcome": "duplicate"},
            )
            assert duplicates == 1
        dead = await read_topic(kafka, f"{topic}.dlq", expected=3)
        letters = [r for r in dead if not dict(r.headers).get(deadletters.REPLAYED)]
        assert len(letters) == 2  # nothing new was put aside
        assert json.loads(letters[0].value)["id"] == thirteen.id
    finally:
        for _, _, broker in consumers:
            await broker.stop()
        await mongo.close()


async def test_a_purge_forgets_one_clients_letters_and_keeps_the_rest_as_it_was(kafka):
    """The partition holding a letter about the erased client is written again without it:
    the other client's letter and its replay marker stay (still replayed: nothing waits), a
    letter naming the client only in its bytes goes, and a partition without the client is
    not touched. A second purge finds nothing."""
    topic = await create_topic(kafka, partitions=2)
    dlq = f"{topic}.dlq"
    erased, other = f"cl_{'a' * 32}", f"cl_{'b' * 32}"
    options = kafka.client_options()
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:

        async def letter(partition: int, key: bytes, value: bytes, headers: list) -> None:
            await producer.send_and_wait(dlq, value, key=key, partition=partition, headers=headers)

        def put_aside(offset: int) -> list[tuple[str, bytes]]:
            return [("x-dlq-source", f"{topic}/0/{offset}".encode()), ("x-dlq-consumer", b"kit")]

        await letter(0, erased.encode(), b'{"about": "the erased client"}', put_aside(1))
        await letter(0, other.encode(), b'{"about": "another client"}', put_aside(2))
        await letter(0, other.encode(), b"", [(deadletters.REPLAYED, f"{topic}/0/2".encode())])
        await letter(0, b"junk", b"\xff unreadable " + erased.encode(), put_aside(3))
        await letter(1, other.encode(), b'{"on": "the other partition"}', put_aside(4))
    finally:
        await producer.stop()

    purged = await deadletters.purge(options, [topic], [erased])
    assert (purged.removed, purged.kept, purged.partitions) == (2, 2, 1)
    left = await deadletters.read(options, topic)
    assert not [x for x in left.letters if deadletters.concerns(x, [erased])]
    assert sorted((x.partition, x.value) for x in left.letters) == [
        (0, b'{"about": "another client"}'),
        (1, b'{"on": "the other partition"}'),
    ]
    assert left.replayed_sources == {f"{topic}/0/2"}  # the marker stayed: replayed before
    assert [x.source for x in left.waiting()] == [f"{topic}/0/4"]
    [kept] = [x for x in left.letters if x.partition == 0]
    assert kept.offset >= 4  # written again after the four records, which are deleted
    again = await deadletters.purge(options, [topic], [erased])
    assert (again.removed, again.kept, again.partitions) == (0, 0, 0)


async def test_the_purger_forgets_an_erased_clients_letters_and_those_that_come_later(
    kafka, mongo_url
):
    """The erasure's request is purged in a pass and then forgotten; a letter about the
    erased client that arrives after it is purged in the next pass; another client's letter
    stays through both. The ledger holds the reference's hash, never the reference."""
    topic = await create_topic(kafka)
    erased, other = f"cl_{uuid.uuid4().hex}", f"cl_{uuid.uuid4().hex}"
    options = kafka.client_options()
    mongo = AsyncMongoClient(mongo_url, tz_aware=True)
    db = mongo[f"kit_{uuid.uuid4().hex[:10]}"]
    uow = UnitOfWork(mongo, db, service="kit-purger", clock=SystemClock())
    producer = AIOKafkaProducer(**options)
    await producer.start()

    async def letter(client_ref: str, what: bytes) -> None:
        await producer.send_and_wait(f"{topic}.dlq", what, key=client_ref.encode())

    try:
        await letter(erased, b"before the erasure")
        await letter(other, b"another client")
        async with uow.command() as tx:
            await DeadLetterPurges(tx).request(erased)
        purger = DeadLetterPurger(db, options, [topic])
        async with deadletters.Purging(options) as purging:
            first = await purger.one_pass(purging)
            assert (first.removed, first.kept) == (1, 1)
            assert await db[PURGES].count_documents({}) == 0
            [ledger] = await db[ERASED].find().to_list()
            assert erased not in json.dumps(ledger, default=str)
            nothing = await purger.one_pass(purging)  # its own re-published letter: not his
            assert nothing.removed == 0

            await letter(erased, b"after the erasure: an event still on its way")
            late = await purger.one_pass(purging)
            assert (late.removed, late.kept) == (1, 1)
    finally:
        await producer.stop()
        await mongo.drop_database(db.name)
        await mongo.close()
    left = await deadletters.read(options, topic)
    assert [x.value for x in left.letters] == [b"another client"]
