"""Dead letters replayed after a fix: handled once by every consumer, however often replayed."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.devstack.kafka_access import ADMIN
from ketenbus.kit import deadletters
from ketenbus.kit.broker import security
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.consumer import EventConsumer, EventHandlers
from ketenbus.kit.errors import DomainError
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.uow import UnitOfWork

from .support import Dependencies, counted_event_class, create_topic, eventually, read_topic

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

        broker = KafkaBroker(kafka.bootstrap, security=security(kafka.service_settings()))
        consumer = EventConsumer(
            handlers,
            Dependencies(uow),
            broker,
            KitMetrics(CollectorRegistry(), service),
            registry={Counted.event_type(): Counted},
            retry_base_seconds=0.01,
        )
        consumer.subscribe()
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
