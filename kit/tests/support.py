"""A tiny event of the tests' own, on a topic of its own, so tests never see each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import Topic
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import security
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.consumer import EventConsumer, EventHandlers
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.uow import UnitOfWork


@dataclass(frozen=True)
class Dependencies:
    """What the tests' handlers are given: the unit of work, as a service's bootstrap gives it."""

    uow: UnitOfWork[Any]


def a_consuming_service(
    mongo_url: str, name: str
) -> tuple[AsyncMongoClient[Any], Any, str, UnitOfWork[Any], EventHandlers]:
    """A service of the test's own: its client, a database and a name no other test has,
    its unit of work and its (still empty) handlers."""
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = mongo[f"kit_{uuid.uuid4().hex[:10]}"]
    service = f"{name}-{uuid.uuid4().hex[:6]}"
    return (
        mongo,
        db,
        service,
        UnitOfWork(mongo, db, service=service, clock=SystemClock()),
        (EventHandlers(service)),
    )


def a_subscribed_consumer(
    kafka: KafkaAccess,
    handlers: EventHandlers,
    uow: UnitOfWork[Any],
    service: str,
    event: type[Event],
    *,
    batch_size: int | None = None,
    **options: Any,
) -> tuple[KafkaBroker, EventConsumer]:
    """The service's consumer of `event` on a broker of its own, subscribed, not started.
    With `batch_size`, a batch's events share one unit of work; `options` as EventConsumer
    takes them (retry_base_seconds)."""
    broker = KafkaBroker(kafka.bootstrap, security=security(kafka.service_settings()))
    metrics = KitMetrics(CollectorRegistry(), service)
    registry = {event.event_type(): event}
    if batch_size is not None:
        options |= {"uow": uow, "batch_size": batch_size}
    consumer = EventConsumer(
        handlers, Dependencies(uow), broker, metrics, registry=registry, **options
    )
    consumer.subscribe()
    return broker, consumer


def counted_event_class(topic_name: str) -> type[Event]:
    class Counted(Event):
        owner: ClassVar[str] = "kittest"
        name: ClassVar[str] = "Counted"
        stream: ClassVar[Topic | None] = Topic(topic_name, "kittest", "test topic", partitions=1)

        client_ref: str
        number: int
        # Room for bulk: a record as large as a test needs.
        padding: str = ""

    return Counted


def fresh_topic(prefix: str = "test.kit") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


async def create_topic(
    kafka: KafkaAccess, partitions: int = 1, configs: dict[str, str] | None = None
) -> str:
    """A topic of the test's own, and its dead-letter topic: the broker creates none by
    itself (the operator does, as here). `configs`: the topic's own settings."""
    name = fresh_topic()
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, partitions, 1, topic_configs=configs or {}),
                NewTopic(f"{name}.dlq", partitions, 1),
            ]
        )
    finally:
        await admin.close()
    return name


async def read_topic(
    kafka: KafkaAccess, topic: str, expected: int, timeout: float = 30.0
) -> list[Any]:
    """Every record on a topic from the beginning, once `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
        # Anything beyond what was expected would show up within a short grace period.
        extra = await consumer.getmany(timeout_ms=500)
        for partition_records in extra.values():
            records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 30.0, every: float = 0.05
) -> None:
    """Wait for a condition to hold, or fail saying so: never a fixed sleep."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(every)
