"""The transactional outbox: events are committed with the state change, then published.

A service never publishes directly: it stages envelopes in the same Mongo transaction as
its state change, and the relay publishes them afterwards. A crash between the two means
publishing again, never losing; consumers' inboxes make the repeat harmless.

Besides events, the outbox carries tombstones: a key without a value, which on a compacted
topic tells its readers to forget the key and lets compaction drop the key's earlier records.
A tombstone published twice says the same thing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias

from bson import Binary, ObjectId
from faststream import PublishType
from faststream.kafka import KafkaPublishCommand
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.envelope import Envelope, new_event_id, structured_headers
from ketenbus.contracts.topics import Topic
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.metrics import KitMetrics

log = get_logger(__name__)

OUTBOX = "outbox"


# The headers of an event's record: structured mode of the CloudEvents Kafka binding.
headers_of = structured_headers


@dataclass(frozen=True, slots=True)
class Tombstone:
    """`key` forgotten on the compacted `topic`: published as the key with no value."""

    topic: Topic
    key: str

    def __post_init__(self) -> None:
        if self.topic.compaction is None:
            # On a topic that is not compacted a tombstone removes nothing: its readers
            # would dead-letter it, and the records it means to remove stay.
            raise ValueError(f"{self.topic.name} is not compacted: a tombstone removes nothing")


Outgoing: TypeAlias = Envelope[Any] | Tombstone


class Outbox:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[OUTBOX]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("position")

    async def backlog(self) -> int:
        return await self.collection.count_documents({})


def records(outgoing: Sequence[Outgoing]) -> list[dict[str, Any]]:
    """The outbox's documents of these events and tombstones, in the order staged."""
    return [_record(item) for item in outgoing]


def _record(item: Outgoing) -> dict[str, Any]:
    staged: dict[str, Any]
    if isinstance(item, Tombstone):
        staged = {
            "_id": new_event_id(),
            "topic": item.topic.name,
            "key": item.key,
            "value": None,  # no value at all: the key forgotten
            "headers": {},
        }
    else:
        staged = {
            "_id": item.id,
            "topic": item.data.destination().name,
            "key": item.data.key,
            "value": Binary(item.to_bytes()),
            "headers": headers_of(item),
        }
    # ObjectIds from one process increase: the order the records were staged in.
    return staged | {"position": ObjectId(), "created_at": datetime.now(UTC)}


class Producer(Protocol):
    """FastStream's Kafka producer (`broker.config.producer`): it sends a publish command
    as one record, without the broker's publish middlewares."""

    async def publish(self, cmd: KafkaPublishCommand) -> Any: ...


def _command(record: dict[str, Any]) -> KafkaPublishCommand:
    """The command `broker.publish` would make of a staged record, minus its middlewares."""
    return KafkaPublishCommand(
        # None with a key: FastStream sends it as a tombstone, no value at all.
        None if record["value"] is None else bytes(record["value"]),
        topic=record["topic"],
        key=record["key"].encode(),
        headers=record["headers"],
        # As `broker.publish` does: a record without one of its own (a tombstone) gets one.
        correlation_id=None if "correlation_id" in record["headers"] else new_event_id(),
        no_confirm=True,
        _publish_type=PublishType.PUBLISH,
    )


class OutboxRelay:
    """Publishes committed events in the order they were recorded, then forgets them.

    Only the replica holding the lease relays, so two replicas never reorder events.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        producer: Producer,
        metrics: KitMetrics,
        *,
        poll_seconds: float = 0.2,
        batch_size: int = 500,
        lease_seconds: float = 10.0,
    ) -> None:
        self.outbox = db[OUTBOX]
        self.lease = Lease(db, "outbox-relay", seconds=lease_seconds)
        self.producer = producer
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        # When the backlog gauges are next measured: a round trip to Mongo, and the relay
        # loop runs after every commit (or batch of commits) and five times a second when idle.
        self._backlog_due = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.healthy = True

    def wake(self) -> None:
        """Called after a commit: publish now rather than at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many events went out."""
        batch = await self.outbox.find({}, sort=[("position", 1)], limit=self.batch_size).to_list()
        if not batch:
            self.metrics.outbox_backlog.set(0)
            self.metrics.outbox_oldest_seconds.set(0)
            return 0
        started = time.perf_counter()
        failed = await self._send(batch)
        for record, error in failed:
            self.metrics.outbox_publish_failures.labels(
                topic=record["topic"], exception_type=type(error).__name__
            ).inc()
        if failed:
            raise failed[0][1]  # the whole batch stays, to be published again
        self.metrics.outbox_publish_seconds.observe(time.perf_counter() - started)
        await self.outbox.delete_many({"_id": {"$in": [record["_id"] for record in batch]}})
        for record in batch:
            self.metrics.outbox_published.labels(topic=record["topic"]).inc()
        return len(batch)

    async def _send(
        self, batch: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], BaseException]]:
        """Sends the batch in outbox order and waits until Kafka confirmed every record;
        returns the records that failed, with why.

        Straight to FastStream's producer, not through `broker.publish`: the broker's publish
        middlewares (Prometheus, logging) cost more per record than the send itself, and
        would only say what the relay's own metrics say per batch (published, failures,
        seconds). The records are the same: the same producer (idempotent, acks=all), topic,
        key, headers; sent in order, so aiokafka keeps them in order per partition."""
        pending: list[asyncio.Future[Any]] = []
        failed: list[tuple[dict[str, Any], BaseException]] = []
        for record in batch:
            try:
                pending.append(await self.producer.publish(_command(record)))
            except Exception as error:  # e.g. no metadata for the topic: the rest waits
                failed.append((record, error))
                break
        # After a failed send the records already on their way are waited for too: none
        # is left unconfirmed when the relay tries the batch again.
        sent = await asyncio.gather(*pending, return_exceptions=True)
        return [
            (record, result)
            for record, result in zip(batch, sent, strict=False)
            if isinstance(result, BaseException)
        ] + failed

    async def _update_backlog(self) -> None:
        """The backlog gauges, at most once a second (publish_pending zeroes them at once)."""
        if time.monotonic() < self._backlog_due:
            return
        self._backlog_due = time.monotonic() + 1.0
        oldest = await self.outbox.find_one({}, sort=[("position", 1)])
        self.metrics.outbox_backlog.set(await self.outbox.count_documents({}))
        age = (datetime.now(UTC) - oldest["created_at"]).total_seconds() if oldest else 0
        self.metrics.outbox_oldest_seconds.set(max(age, 0))

    async def run(self) -> None:
        backoff = self.poll_seconds
        while True:
            # Cleared before looking: what was committed before now is in what it finds, and a
            # commit from now on wakes it again. So after less than a full batch it waits for
            # the next wake (or poll) rather than asking again at once for an empty outbox:
            # a round trip per wake, at 100 appointments a second nearly one per appointment.
            self._wake.clear()
            try:
                published = 0
                if await self.lease.held():
                    published = await self.publish_pending()
                    await self._update_backlog()
                self.healthy, backoff = True, self.poll_seconds
                if published == self.batch_size:
                    continue  # a full batch: more may be waiting behind it
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Kafka or Mongo away: keep the events, try again a little later.
                self.healthy = False
                log.warning(
                    "outbox relay failed, will retry", error=type(exc).__name__, retry_in=backoff
                )
                backoff = min(backoff * 2, 5.0)
                self._wake.clear()  # the commits meanwhile wait for the backoff too
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.lease.release()
