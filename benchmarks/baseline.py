"""The limit of this stack on this machine: the same work per event as a Ketenbus handler,
with no framework in between.

Per event: consume it, one Mongo transaction holding the inbox claim, a state write and the
outbox write, produce the resulting event, commit the offset. Run in two shapes: one event
at a time (what a plain consumer does) and a batch per transaction (the best this stack
allows), so the services' rates have something to be measured against.

The loop connects as the operator (ketenbus-admin) and works on topics of its own, made
through the Admin API first: the broker creates no topic by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ketenbus.devstack.kafka_access import KafkaAccess

# One partition: the loop is one consumer, and its batches fill from one partition as they
# would from many.
PARTITIONS = 1


@dataclass
class Rate:
    shape: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def _event(number: int) -> bytes:
    return json.dumps(
        {
            "id": uuid.uuid4().hex,
            "type": "nl.ketenbus.bench.Work.v1",
            "subject": f"cl_{number % 100:032x}",
            "data": {"number": number},
        }
    ).encode()


async def create_topics(kafka: KafkaAccess, names: list[str], timeout: float = 30.0) -> None:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
        # Kafka answers per topic instead of raising.
        failures = [
            f"{name}: {message or code}" for name, code, message in response.topic_errors if code
        ]
        if failures:
            raise RuntimeError(f"could not create the baseline's topics: {'; '.join(failures)}")
        await _until_described(admin, names, timeout)
    finally:
        await admin.close()


async def _until_described(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """A topic just created may show no partitions for a moment; clients that ask then
    would wait for it (and say so in the log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(topic["partitions"] for topic in described):
            return
        await asyncio.sleep(0.1)


async def new_topics(kafka: KafkaAccess) -> tuple[str, str]:
    """A topic for the loop to consume and one for it to produce to, both new."""
    topic = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    await create_topics(kafka, [topic, f"{topic}.out"])
    return topic, f"{topic}.out"


def _producer(kafka: KafkaAccess, **options: Any) -> AIOKafkaProducer:
    # As a service's outbox relay produces: idempotent, acknowledged by every in-sync replica.
    return AIOKafkaProducer(
        **kafka.client_options(), acks="all", enable_idempotence=True, **options
    )


async def fill(kafka: KafkaAccess, topic: str, events: int) -> None:
    producer = _producer(kafka, linger_ms=5)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, _event(n), key=f"cl_{n % 100}".encode())
            for n in range(events)
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _apply(db, session, record) -> bytes:
    event = json.loads(record.value)
    await db.inbox.insert_one({"_id": f"baseline:{event['id']}"}, session=session)
    await db.state.update_one(
        {"_id": event["subject"]}, {"$inc": {"n": 1}}, upsert=True, session=session
    )
    outgoing = json.dumps({"id": uuid.uuid4().hex, "cause": event["id"]}).encode()
    await db.outbox.insert_one({"_id": uuid.uuid4().hex, "value": outgoing}, session=session)
    return outgoing


async def _apply_bulk(db, session, records) -> list[bytes]:
    """The same writes for a whole batch in three round trips instead of three per event."""
    events = [json.loads(record.value) for record in records]
    await db.inbox.insert_many(
        [{"_id": f"baseline:{e['id']}"} for e in events], ordered=True, session=session
    )
    await db.state.bulk_write(
        [UpdateOne({"_id": e["subject"]}, {"$inc": {"n": 1}}, upsert=True) for e in events],
        ordered=True,
        session=session,
    )
    outgoing = [json.dumps({"id": uuid.uuid4().hex, "cause": e["id"]}).encode() for e in events]
    await db.outbox.insert_many(
        [{"_id": uuid.uuid4().hex, "value": value} for value in outgoing], session=session
    )
    return outgoing


SHAPES = {
    "single": "one event per transaction",
    "batch": "a batch per transaction, a write per event",
    "bulk": "a batch per transaction, bulk writes",
}


async def consume(
    kafka: KafkaAccess,
    mongo_url: str,
    topic: str,
    out_topic: str,
    events: int,
    shape: str,
    batch_size: int = 500,
) -> Rate:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"baseline_{uuid.uuid4().hex[:8]}"]
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_options(),
        group_id=f"baseline-{uuid.uuid4().hex[:8]}",
        # A new group on a topic filled before it joined: read what is there.
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = _producer(kafka)
    await asyncio.gather(consumer.start(), producer.start())
    done, started = 0, 0.0
    try:
        while done < events:
            if shape != "single":
                fetched = await consumer.getmany(timeout_ms=500, max_records=batch_size)
                records = [r for rs in fetched.values() for r in rs]
            else:
                records = [await consumer.getone()]
            if not records:
                continue
            started = started or time.perf_counter()
            outgoing = []
            async with (
                client.start_session() as session,
                await session.start_transaction(
                    read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
                ),
            ):
                if shape == "bulk":
                    outgoing = await _apply_bulk(db, session, records)
                else:
                    for record in records:
                        outgoing.append(await _apply(db, session, record))
            sent = [await producer.send(out_topic, value) for value in outgoing]
            await asyncio.gather(*sent)
            await consumer.commit()
            done += len(records)
        return Rate(SHAPES[shape], done, time.perf_counter() - started)
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
        await client.drop_database(db.name)
        await client.close()


async def measure(
    kafka: KafkaAccess, mongo_url: str, events: int = 3_000, batch_size: int = 500
) -> list[Rate]:
    """Each shape on a topic of its own; `batch_size` caps a batch (the services take 100)."""
    rates = []
    for shape in SHAPES:
        topic, out_topic = await new_topics(kafka)
        await fill(kafka, topic, events)
        rates.append(await consume(kafka, mongo_url, topic, out_topic, events, shape, batch_size))
    return rates
