"""The outbox publishes exactly what was committed; the inbox makes a repeat a no-op."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.topics import Compaction, Topic
from ketenbus.kit.broker import security
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.outbox import OutboxRelay
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import UnitOfWork

from .support import counted_event_class, create_topic, fresh_topic, read_topic

pytestmark = pytest.mark.stack

QUICK = Compaction(
    segment_ms=1000,
    max_compaction_lag_ms=1000,
    min_cleanable_dirty_ratio=0.01,
    delete_retention_ms=60_000,
)


class Refused(Exception):
    pass


def number_of(record) -> int:
    return json.loads(record.value)["data"]["number"]


@pytest.fixture
async def mongo(mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def broker(kafka):
    broker = KafkaBroker(kafka.bootstrap, security=security(kafka.service_settings()))
    await broker.start()
    yield broker
    await broker.stop()


def unit_of_work(mongo, service="kit-test"):
    db = mongo[f"kit_{uuid.uuid4().hex[:10]}"]
    return UnitOfWork(mongo, db, service=service, clock=SystemClock()), db


async def test_the_relay_publishes_what_was_committed_and_nothing_that_was_rolled_back(
    mongo, broker, kafka
):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    uow, db = unit_of_work(mongo)

    async with uow.command() as tx:
        await db.state.insert_one({"_id": "kept"}, session=tx.session)
        tx.publish(Counted(client_ref="cl_a", number=1))
        tx.publish(Counted(client_ref="cl_a", number=2))
    with pytest.raises(Refused):
        async with uow.command() as tx:
            await db.state.insert_one({"_id": "undone"}, session=tx.session)
            tx.publish(Counted(client_ref="cl_a", number=3))
            raise Refused
    async with uow.command() as tx:
        tx.publish(Counted(client_ref="cl_b", number=4))

    relay = OutboxRelay(db, broker.config.producer, KitMetrics(CollectorRegistry(), "kit-test"))
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0

    records = await read_topic(kafka, topic, expected=3)
    assert sorted(number_of(r) for r in records) == [1, 2, 4]
    assert await db.state.distinct("_id") == ["kept"]
    assert {r.key for r in records} == {b"cl_a", b"cl_b"}
    # Structured mode (CloudEvents Kafka binding): the media type of the event format, the
    # type for routing outside the binding's `ce_` names, which would make it binary mode.
    headers = dict(records[0].headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    assert headers["event_type"] == Counted.event_type().encode()
    assert not [name for name in headers if name.startswith("ce_")]


async def test_events_for_one_client_keep_their_order(mongo, broker, kafka):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    uow, db = unit_of_work(mongo)
    for number in range(20):
        async with uow.command() as tx:
            tx.publish(Counted(client_ref="cl_same", number=number))
    relay = OutboxRelay(
        db, broker.config.producer, KitMetrics(CollectorRegistry(), "kit-test"), batch_size=7
    )
    while await relay.publish_pending():
        pass
    records = await read_topic(kafka, topic, expected=20)
    assert [number_of(r) for r in records] == list(range(20))


class CommittingDuringPublish:
    """A publisher that commits one more event while it publishes the first batch, as a
    request does that commits while the relay is busy."""

    def __init__(self, producer, commit) -> None:
        self.producer, self.commit, self.committed = producer, commit, False

    async def publish(self, cmd):
        if not self.committed:
            self.committed = True
            await self.commit(2)
        return await self.producer.publish(cmd)


async def test_a_commit_made_while_the_relay_publishes_goes_out_at_once(mongo, broker, kafka):
    """The relay clears its wake before it looks: a commit made while it publishes wakes it
    again, and is not left for the next poll (a minute here)."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    db = mongo[f"kit_{uuid.uuid4().hex[:10]}"]
    relay_of: list[OutboxRelay] = []
    uow = UnitOfWork(
        mongo, db, service="kit-test", clock=SystemClock(), after_commit=lambda: relay_of[0].wake()
    )

    async def commit(number: int) -> None:
        async with uow.command() as tx:
            tx.publish(Counted(client_ref="cl_a", number=number))

    relay = OutboxRelay(
        db,
        CommittingDuringPublish(broker.config.producer, commit),
        KitMetrics(CollectorRegistry(), "kit-test"),
        poll_seconds=60,
    )
    relay_of.append(relay)
    relay.start()
    try:
        await commit(1)
        records = await read_topic(kafka, topic, expected=2)
        assert [number_of(r) for r in records] == [1, 2]
    finally:
        await relay.stop()


def refused(metrics: KitMetrics, topic: str) -> dict[str, float]:
    """The relay's failures to publish to the topic, by exception."""
    return {
        sample.labels["exception_type"]: sample.value
        for metric in metrics.outbox_publish_failures.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["topic"] == topic
    }


async def test_a_batch_with_a_record_kafka_refuses_stays_in_the_outbox_whole(mongo, broker, kafka):
    """Kafka refuses the second record (larger than the topic takes): nothing of the batch is
    deleted, not even the record it may have taken, and the refusal is counted."""
    topic = await create_topic(kafka, configs={"max.message.bytes": "4096"})
    Counted = counted_event_class(topic)
    uow, db = unit_of_work(mongo)
    async with uow.command() as tx:
        tx.publish(Counted(client_ref="cl_a", number=1))
        tx.publish(Counted(client_ref="cl_a", number=2, padding="x" * 8000))
    metrics = KitMetrics(CollectorRegistry(), "kit-test")
    relay = OutboxRelay(db, broker.config.producer, metrics)

    with pytest.raises(MessageSizeTooLargeError):
        await relay.publish_pending()

    assert await db.outbox.count_documents({}) == 2
    assert set(refused(metrics, topic)) == {"MessageSizeTooLargeError"}
    assert (
        metrics.registry.get_sample_value("ketenbus_outbox_published_total", {"topic": topic})
        is None
    )


async def test_a_record_the_producer_will_not_send_keeps_the_batch_and_waits_for_the_rest(
    mongo, broker, kafka
):
    """A record over the producer's request size fails at its send, before Kafka sees it:
    the records sent before it are confirmed first, and the batch stays."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    uow, db = unit_of_work(mongo)
    async with uow.command() as tx:
        tx.publish(Counted(client_ref="cl_a", number=1))
        tx.publish(Counted(client_ref="cl_a", number=2, padding="x" * 2_000_000))
        tx.publish(Counted(client_ref="cl_a", number=3))
    metrics = KitMetrics(CollectorRegistry(), "kit-test")
    relay = OutboxRelay(db, broker.config.producer, metrics)

    with pytest.raises(MessageSizeTooLargeError):
        await relay.publish_pending()

    assert await db.outbox.count_documents({}) == 3
    assert refused(metrics, topic) == {"MessageSizeTooLargeError": 1}
    # The first was sent and confirmed before the relay gave up; the third never sent.
    records = await read_topic(kafka, topic, expected=1)
    assert [number_of(r) for r in records] == [1]


async def test_a_redelivered_event_is_a_no_op(mongo):
    topic = fresh_topic()
    Counted = counted_event_class(topic)
    uow, db = unit_of_work(mongo)
    envelope = wrap(Counted(client_ref="cl_a", number=1), source="kittest")

    async def handle() -> None:
        async with uow.handling(envelope) as tx:
            await db.effects.update_one(
                {"_id": "count"}, {"$inc": {"n": 1}}, upsert=True, session=tx.session
            )
            tx.publish(Counted(client_ref="cl_a", number=2))

    await handle()
    with pytest.raises(AlreadyHandled):
        await handle()

    assert (await db.effects.find_one({"_id": "count"}))["n"] == 1
    assert await db.outbox.count_documents({}) == 1
    assert await uow.inbox.seen(envelope.id)


async def test_the_inbox_is_per_consumer(mongo):
    Counted = counted_event_class(fresh_topic())
    uow, db = unit_of_work(mongo, service="first")
    other = UnitOfWork(mongo, db, service="second", clock=SystemClock())
    envelope = wrap(Counted(client_ref="cl_a", number=1), source="kittest")
    async with uow.handling(envelope):
        pass
    async with other.handling(envelope):
        pass
    assert await db.inbox.count_documents({}) == 2


async def test_a_batch_claims_and_publishes_only_at_its_end_and_only_what_it_was_opened_for(mongo):
    Counted = counted_event_class(fresh_topic())
    uow, db = unit_of_work(mongo)
    first, second = (wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in (1, 2))
    stranger = wrap(Counted(client_ref="cl_a", number=3), source="kittest")

    async with uow.batch([first, second]) as batch:
        for envelope in (first, second):
            async with batch.handling(envelope) as tx:
                tx.publish(Counted(client_ref="cl_a", number=10 + envelope.data.number))
        # Inside the batch nothing is claimed yet, so a repeat cannot be refused here.
        assert not await uow.inbox.seen(first.id)
        with pytest.raises(ValueError, match="not one this batch was opened for"):
            async with batch.handling(stranger):
                pass

    assert [await uow.inbox.seen(e.id) for e in (first, second, stranger)] == [True, True, False]
    assert await db.outbox.count_documents({}) == 2
    # Out of the batch, the same unit of work refuses the repeat at once.
    with pytest.raises(AlreadyHandled):
        async with uow.handling(first):
            pass


@pytest.mark.parametrize("read_first", [False, True], ids=["claims-first", "after-a-read"])
async def test_a_batch_with_an_event_handled_before_fails_at_its_end_and_keeps_nothing(
    mongo, read_first: bool
):
    """No look in the inbox before a batch: the repeat's claim in the batch's last write
    raises AlreadyHandled (the consumer then handles the events one by one), whether the
    claims go as the transaction's first command or with the outbox in one bulkWrite."""
    Counted = counted_event_class(fresh_topic())
    uow, db = unit_of_work(mongo)
    first, second = (wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in (1, 2))
    async with uow.handling(first) as tx:
        tx.publish(Counted(client_ref="cl_a", number=11))

    with pytest.raises(AlreadyHandled):
        async with uow.batch([first, second]) as batch:
            for envelope in (first, second):
                async with batch.handling(envelope) as tx:
                    if read_first:
                        await tx.db.effects.find_one({}, session=tx.session)
                    tx.publish(Counted(client_ref="cl_a", number=20 + envelope.data.number))

    assert [await uow.inbox.seen(e.id) for e in (first, second)] == [True, False]
    assert await db.outbox.count_documents({}) == 1  # the first handling's event alone


async def test_a_failing_batch_leaves_nothing(mongo):
    Counted = counted_event_class(fresh_topic())
    uow, db = unit_of_work(mongo)
    first, second = (wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in (1, 2))

    with pytest.raises(Refused):
        async with uow.batch([first, second]) as batch:
            async with batch.handling(first) as tx:
                tx.publish(Counted(client_ref="cl_a", number=11))
            async with batch.handling(second):
                raise Refused()

    assert [await uow.inbox.seen(e.id) for e in (first, second)] == [False, False]
    assert await db.outbox.count_documents({}) == 0


async def test_a_tombstone_goes_out_as_a_key_without_a_value_in_order_with_the_events(
    mongo, broker, kafka
):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    compacted = Topic(topic, "kittest", "a compacted test topic", compaction=QUICK)
    uow, db = unit_of_work(mongo)
    async with uow.command() as tx:
        tx.publish(Counted(client_ref="cl_a", number=1))
        tx.tombstone(compacted, "cl_a")
        tx.publish(Counted(client_ref="cl_a", number=2))
    with pytest.raises(ValueError, match="not compacted"):
        async with uow.command() as tx:
            tx.tombstone(Topic(topic, "kittest", "not compacted"), "cl_a")

    relay = OutboxRelay(db, broker.config.producer, KitMetrics(CollectorRegistry(), "kit-test"))
    assert await relay.publish_pending() == 3

    records = await read_topic(kafka, topic, expected=3)
    assert [r.key for r in records] == [b"cl_a"] * 3
    assert records[1].value is None  # a tombstone, not an empty value
    assert [number_of(records[0]), number_of(records[2])] == [1, 2]


async def sent(commands: SentCommands, name: str, count: int, timeout: float = 10.0) -> None:
    """Until `count` commands `name` went to the outbox (deletes: as many batches published)."""
    async with asyncio.timeout(timeout):
        while len(commands.to("outbox", name)) < count:
            await asyncio.sleep(0.01)


async def test_the_relay_looks_once_per_wake_and_not_again_after_less_than_a_batch(
    mongo_url, broker, kafka
):
    """Woken after a commit it publishes what it finds, and then waits for the next wake:
    another look at once would find nothing (what is committed later wakes it), a round trip
    per wake for nothing."""
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    commands = SentCommands(("outbox",))
    async with watched_database(mongo_url, "kit", commands) as db:
        # No poll within the test: only the commits' wakes make it look.
        relay = OutboxRelay(
            db, broker.config.producer, KitMetrics(CollectorRegistry(), "kit-test"), poll_seconds=60
        )
        uow = UnitOfWork(
            db.client, db, service="kit-test", clock=SystemClock(), after_commit=relay.wake
        )
        relay.start()
        try:
            await sent(commands, "find", 1)  # its first look, at an empty outbox
            for number in (1, 2):
                async with uow.command() as tx:
                    tx.publish(Counted(client_ref="cl_a", number=number))
                await sent(commands, "delete", number)
            looks = [c for c in commands.to("outbox", "find") if c.get("limit") == relay.batch_size]
            # One look at the start, one per wake; none right after a batch of one.
            assert len(looks) == 3
            records = await read_topic(kafka, topic, expected=2)
            assert [number_of(r) for r in records] == [1, 2]
        finally:
            await relay.stop()


class Counts:
    """Writes gathered over a unit of work: one $inc for all the events it saw."""

    def __init__(self, db, session) -> None:
        self.db, self.session, self.seen, self.flushes = db, session, 0, 0

    def add(self) -> None:
        self.seen += 1

    async def flush(self) -> None:
        self.flushes += 1
        await self.db.effects.update_one(
            {"_id": "count"}, {"$inc": {"n": self.seen}}, upsert=True, session=self.session
        )


async def test_gathered_writes_are_made_once_per_unit_of_work_and_undone_with_it(mongo):
    Counted = counted_event_class(fresh_topic())
    uow, db = unit_of_work(mongo)
    first, second, third, fourth = (
        wrap(Counted(client_ref="cl_a", number=n), source="kittest") for n in (1, 2, 3, 4)
    )
    made: list[Counts] = []

    def counts(tx) -> Counts:
        def make() -> Counts:
            made.append(Counts(tx.db, tx.session))
            return made[-1]

        return tx.deferred("counts", make)

    async with uow.batch([first, second]) as batch:
        for envelope in (first, second):
            async with batch.handling(envelope) as tx:
                counts(tx).add()
        assert await db.effects.count_documents({}) == 0  # not before the batch ends
    async with uow.handling(third) as tx:
        counts(tx).add()
    with pytest.raises(Refused):
        async with uow.handling(fourth) as tx:
            counts(tx).add()
            raise Refused()

    assert [(c.seen, c.flushes) for c in made] == [(2, 1), (1, 1), (1, 0)]
    assert (await db.effects.find_one({"_id": "count"}))["n"] == 3
    with pytest.raises(RuntimeError, match="gathered while only reading"):
        async with uow.reading() as tx:
            counts(tx).add()
