"""Consuming events: decode, skip what was handled, retry what may pass, dead-letter the rest.

What a consumer does with each kind of message (DESIGN.md, "Delivery guarantees"):
- a type it handles: handled once (inbox), retried while the failure is transient;
- a type it handles but cannot read (invalid data, an unsupported version), or that its
  domain refuses: dead-lettered to `<topic>.dlq` with the reason, and the partition goes on;
- a known type it does not handle, or one of those in a shape it cannot read: passed by;
- a type nobody registered: on a stream, skipped and counted
  (`ketenbus_events_skipped{topic, event_type}`, a log line without content), because
  producers may add types to a stream before every consumer knows them; on a partner's
  inbound topic, whose vocabulary the chain sets, dead-lettered;
- no envelope at all (not JSON, a tombstone, too large): dead-lettered; but a tombstone on
  a compacted topic whose tombstones the service declared it handles (`on_tombstone`) is
  normal there: its handler is called with the key, in order with the events around it.

A service declares what it handles, and where an event arrives elsewhere than on its
stream, where (derived from the settings, so a deployment's partners are read, not patched in):

    handlers = EventHandlers("trajectory")

    @handlers.on(ReferralAccepted)
    async def open_trajectory(event: Envelope[ReferralAccepted], uow: Uow) -> None:
        ...

    @handlers.on(PartnerOutcomeReported, topics=TrajectorySettings.partner_inbound_topics)
    async def record_partner_answer(event: Envelope[PartnerAnswer], uow: Uow) -> None:
        ...

A compacted topic says "forget this key" with a tombstone (the key, no value); a service that
mirrors such a topic declares what it does then:

    @handlers.on_tombstone(CONTACTS)
    async def forget_contact(key: str, uow: UnitOfWork[NotificationTransaction]) -> None:
        ...

A tombstone has no id for the inbox: its handler must be harmless twice (forgetting is).

When events of a consumed batch would each look up their aggregate (a find per event), a
read-ahead reads them all first, in one query per batch, into the batch's gathered
documents (ketenbus.kit.gathered), where the handlers then find them:

    @handlers.read_ahead(ReferralAccepted, WaitlistExited)
    async def trajectories_of(events: list[Envelope[Any]], tx: TrajectoryTransaction) -> None:
        await tx.trajectories.read_ahead_by_referral(e.data.referral_id for e in events)

It is called once per batch with the batch's events of those types, before any handler;
an event handled alone (a batch undone, a batch of one) is looked up as before. Parameters
after the transaction are given by name from the service's dependencies, as a handler's.

`handlers.bind(dependencies)` gives each handler its parameters after the event by name from
the service's dependencies object (its bootstrap builds it: `uow`, tables, keys), once, at
start-up; a parameter the object lacks fails there. One Kafka subscriber for all the
service's topics, one consumer group per service; the offset is committed only after the
handler's transaction (or the dead letter) is done, so a crash means redelivery, never loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import ConsumerRebalanceListener
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from ketenbus.contracts.envelope import (
    Envelope,
    Event,
    MalformedEnvelope,
    UndeliverableEvent,
    UnknownEventType,
    decode,
)
from ketenbus.contracts.events import REGISTRY
from ketenbus.contracts.topics import Topic, dead_letter_topic
from ketenbus.kit.errors import AlreadyHandled, DomainError
from ketenbus.kit.failures import is_transient, pause
from ketenbus.kit.fetch_pacing import FetchPacing, pace
from ketenbus.kit.logs import get_logger, log_context
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.uow import Batch, UnitOfWork

log = get_logger(__name__)

Handler = Callable[..., Awaitable[None]]
# What reads a batch's aggregates ahead: its events of some types, and the batch's transaction.
ReadAhead = Callable[[list[Envelope[Any]], Any], Awaitable[None]]
# The event type a tombstone is counted under in the metrics (it has no envelope, no type).
TOMBSTONE = "tombstone"


@dataclass(frozen=True)
class DeadLetter:
    """A message put aside, as the service's dead-letter hook sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str


DeadLetterHook = Callable[[DeadLetter], Awaitable[None]]


# The topics an event arrives on besides its stream: fixed names, or derived from the
# service's settings (a partner's inbound topic exists for each partner the deployment has).
ArrivesOn = Iterable[str] | Callable[[Any], Iterable[str]]


@dataclass(frozen=True)
class Subscription:
    """What a consumer reads: `topics`, of which `closed` are topics whose vocabulary the
    reader sets (a partner's inbound topic), where an unknown event type is dead-lettered."""

    topics: tuple[str, ...]
    closed: frozenset[str]


@dataclass
class EventHandlers:
    """The events one service reacts to, and the topics they arrive on."""

    service: str
    handlers: dict[type[Event], Handler] = field(default_factory=dict)
    arrives_on: dict[type[Event], ArrivesOn] = field(default_factory=dict)
    # Compacted topic name -> what to do with a tombstone (a key without a value) there.
    tombstones: dict[str, Handler] = field(default_factory=dict)
    # Event type -> what reads the aggregates of a batch's events of that type ahead.
    read_aheads: dict[type[Event], ReadAhead] = field(default_factory=dict)

    def on(self, *events: type[Event], topics: ArrivesOn = ()) -> Callable[[Handler], Handler]:
        """Register a handler. `topics` for events that arrive elsewhere than their stream
        (a partner's inbound topic): names, or a function of the service's settings."""

        def register(handler: Handler) -> Handler:
            for event in events:
                if event in self.handlers:
                    raise ValueError(f"{event.name} already has a handler in {self.service}")
                self.handlers[event] = handler
                if callable(topics) or topics:
                    self.arrives_on[event] = topics if callable(topics) else tuple(topics)
            return handler

        return register

    def on_tombstone(self, topic: Topic) -> Callable[[Handler], Handler]:
        """Register what to do when `topic`, a compacted topic, forgets a key: the handler
        gets the key (then its dependencies, as an event handler does)."""
        if topic.compaction is None:
            raise ValueError(f"{topic.name} is not compacted: a tombstone there is a mistake")

        def register(handler: Handler) -> Handler:
            if topic.name in self.tombstones:
                raise ValueError(f"{topic.name}'s tombstones already have a handler")
            self.tombstones[topic.name] = handler
            return handler

        return register

    def read_ahead(self, *events: type[Event]) -> Callable[[ReadAhead], ReadAhead]:
        """Register what reads the aggregates of a batch's events of these types in one go,
        before their handlers run (see the module's docstring)."""

        def register(reader: ReadAhead) -> ReadAhead:
            for event in events:
                if event not in self.handlers:
                    raise ValueError(f"{event.name} has no handler in {self.service} to read for")
                if event in self.read_aheads:
                    raise ValueError(f"{event.name} already has a read-ahead in {self.service}")
                self.read_aheads[event] = reader
            return reader

        return register

    def subscription(self, settings: Any = None) -> Subscription:
        """The topics these handlers read under `settings`: each event's stream, or where
        it was declared to arrive instead. Without settings (a tool that reads the code),
        the topics derived from them are left out."""
        names: set[str] = set()
        closed: set[str] = set()
        for event in self.handlers:
            if event in self.arrives_on:
                where = self.arrives_on[event]
                if callable(where):
                    declared = tuple(where(settings)) if settings is not None else ()
                else:
                    declared = tuple(where)
                names.update(declared)
                closed.update(declared)
            elif event.stream is not None:
                names.add(event.stream.name)
        names.update(self.tombstones)
        return Subscription(tuple(sorted(names)), frozenset(closed))

    def topics(self, settings: Any = None) -> list[str]:
        return list(self.subscription(settings).topics)

    def bind(self, dependencies: Any) -> BoundHandlers:
        """Each handler with its dependencies given, by parameter name, from the service's
        dependencies object; what a handler asks for and the object lacks fails here."""
        # A read-ahead registered for several types is bound once: it is called once per batch.
        readers = {
            reader: inject(reader, dependencies, given=2)
            for reader in set(self.read_aheads.values())
        }
        return BoundHandlers(
            {event: inject(fn, dependencies) for event, fn in self.handlers.items()},
            {topic: inject(fn, dependencies) for topic, fn in self.tombstones.items()},
            {event: readers[reader] for event, reader in self.read_aheads.items()},
        )


@dataclass(frozen=True)
class BoundHandlers:
    """The handlers, ready to be called with an event (and, by the consumer, a batch as
    their `uow`); calling the whole calls the handler of the event's type."""

    by_event: dict[type[Event], Callable[..., Awaitable[None]]]
    # Compacted topic name -> the tombstone handler, to be called with the key.
    by_tombstone_topic: dict[str, Callable[[str], Awaitable[None]]] = field(default_factory=dict)

    # Event type -> what reads ahead for a batch's events of that type.
    read_aheads: dict[type[Event], ReadAhead] = field(default_factory=dict)

    async def __call__(self, envelope: Envelope[Any], **overrides: Any) -> None:
        await self.by_event[type(envelope.data)](envelope, **overrides)

    async def read_ahead(self, batch: Batch[Any], envelopes: Iterable[Envelope[Any]]) -> None:
        """Each read-ahead once, with the batch's events it reads for, before their handlers."""
        wanted: dict[ReadAhead, list[Envelope[Any]]] = {}
        for envelope in envelopes:
            reader = self.read_aheads.get(type(envelope.data))
            if reader is not None:
                wanted.setdefault(reader, []).append(envelope)
        for reader, events in wanted.items():
            tx = batch.reading_ahead()
            await reader(events, tx)
            if tx.outgoing:
                name = getattr(reader, "func", reader).__name__  # bound: a partial
                raise RuntimeError(f"{name} published while reading ahead")


def inject(handler: Handler, dependencies: Any, given: int = 1) -> Callable[..., Awaitable[None]]:
    """Bind a handler's parameters after the `given` first (the event; a read-ahead's events
    and transaction) by name: the cosmicpython bootstrap. One with none is returned as it is."""
    parameters = list(inspect.signature(handler).parameters)[given:]
    missing = [p for p in parameters if not hasattr(dependencies, p)]
    if missing:
        raise TypeError(f"{handler.__name__} needs {missing}, which the service does not provide")
    if not parameters:
        return handler
    return partial(handler, **{p: getattr(dependencies, p) for p in parameters})


def _takes_uow(handler: Handler) -> bool:
    return "uow" in inspect.signature(handler).parameters


@dataclass
class ConsumerHealth:
    """Readiness as the consumers see it: false while the infrastructure keeps failing."""

    failing_since: float | None = None

    @property
    def ok(self) -> bool:
        return self.failing_since is None


class Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Knows whether the consumer has joined its group: until then it is not ready."""

    def __init__(self, metrics: KitMetrics | None = None) -> None:
        self.joined = False
        self.metrics = metrics

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Another replica reports these partitions now; a stale figure here would mislead.
        for partition in revoked:
            if self.metrics is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.consumer_lag.remove(partition.topic, str(partition.partition))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.joined = True


async def with_readable_headers(
    records: tuple[Any, ...], parse: Callable[[tuple[Any, ...]], Awaitable[Any]]
) -> Any:
    """FastStream's batch parser decodes every header value as strict UTF-8: one record with
    a header without a value, or with other bytes, failed the whole batch before the consumer
    saw it, and the batch came back forever. Such values are read leniently instead."""
    return await parse(tuple(_readable(record) for record in records))


async def undecoded(message: Any) -> Any:
    """The records' values as they are: receive() reads them with the contracts' decode().
    FastStream's own decoding follows the content-type header, and raised (for the whole
    batch, forever) on a body that was not the JSON or text its header promised."""
    return message.body


def _readable(record: Any) -> Any:
    headers = record.headers or ()
    if all(isinstance(value, bytes) and _is_utf8(value) for _, value in headers):
        return record
    return dataclasses.replace(
        record,
        headers=tuple(
            (key, (value or b"").decode(errors="replace").encode()) for key, value in headers
        ),
    )


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


class EventConsumer:
    def __init__(
        self,
        handlers: EventHandlers,
        dependencies: Any,
        broker: KafkaBroker,
        metrics: KitMetrics,
        *,
        settings: Any = None,
        attempts: int = 5,
        retry_base_seconds: float = 0.1,
        retry_max_seconds: float = 5.0,
        registry: Mapping[str, type[Event]] = REGISTRY,
        on_dead_letter: DeadLetterHook | None = None,
        uow: UnitOfWork[Any] | None = None,
        batch_size: int = 100,
        session_timeout_ms: int = 10_000,
        fetch_wait_ms: int = 0,
        fetch_min_bytes: int = 1,
    ) -> None:
        self.service = handlers.service
        bound = handlers.bind(dependencies)
        self.handlers = bound.by_event
        self.tombstone_handlers = bound.by_tombstone_topic
        self.read_ahead = bound.read_ahead
        subscription = handlers.subscription(settings)
        self.topics = list(subscription.topics)
        self.broker = broker
        self.metrics = metrics
        self.attempts = attempts
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.registry = dict(registry)
        # Event names without version: an unreadable version of another name is not ours.
        self.handled_names = {event.event_type().rpartition(".")[0] for event in self.handlers}
        # Topics whose vocabulary the reader sets (a partner's inbound topic: `topics=` of a
        # handler): there an unknown type is the sender's mistake, dead-lettered (and the
        # partner told). On the streams the producer sets it and may add types before every
        # consumer knows them: an unknown type there is skipped and counted.
        self.closed_topics = subscription.closed
        self.on_dead_letter = on_dead_letter
        # With a unit of work, a batch of events shares one transaction (see receive()): each
        # handler is then called with the batch as its `uow`, so every handler must take one.
        if uow is not None:
            without = [fn.__name__ for fn in handlers.handlers.values() if not _takes_uow(fn)]
            if without:
                raise TypeError(f"{without} take no `uow`; a batch cannot be handed to them")
        self.uow = uow
        self.batch_size = batch_size
        self.session_timeout_ms = session_timeout_ms
        # Without a wait the broker answers a fetch as soon as one record is there; with one,
        # only while events flow (kit.fetch_pacing): idle, a fetch waits for the first.
        self.fetch = (
            {"fetch_max_wait_ms": fetch_wait_ms, "fetch_min_bytes": fetch_min_bytes}
            if fetch_wait_ms
            else {"fetch_min_bytes": 1}
        )
        self.pacing = FetchPacing(fetch_wait_ms, fetch_min_bytes) if fetch_wait_ms else None
        self.health = ConsumerHealth()
        self.subscribers: list[Any] = []
        self.assignments = Assignments()

    def subscribe(self) -> None:
        """One consumer for all the service's topics: one member in the group, one join,
        instead of a rebalance for every topic that comes up."""
        self.assignments = Assignments(self.metrics)
        subscriber = self.broker.subscriber(
            *self.topics,
            group_id=self.service,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=self.assignments,
            title=f"{self.service}:events",
            batch=True,
            max_records=self.batch_size,
            # Returns as soon as records are there; the timeout only paces an idle loop.
            batch_timeout_ms=100,
            # A replica that dies hands its partitions to the others after this long.
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(self.session_timeout_ms // 3, 100),
            **self.fetch,
            parser=with_readable_headers,
            decoder=undecoded,
        )
        subscriber(self.receive)
        self.subscribers.append(subscriber)

    def pace_fetches(self) -> None:
        """Once the broker has started the subscribers' consumers: see kit.fetch_pacing."""
        if self.pacing is None:
            return
        for subscriber in self.subscribers:
            if subscriber.consumer is not None:
                pace(subscriber.consumer, self.pacing)

    @property
    def ready(self) -> bool:
        return self.health.ok and self.assignments.joined

    async def watch_lag(self, every_seconds: float = 5.0) -> None:
        """Consumer lag per partition, for the operators' dashboard and alerts."""
        while True:
            for subscriber in self.subscribers:
                consumer = getattr(subscriber, "consumer", None)
                if consumer is None:
                    continue
                for partition in consumer.assignment():
                    end = consumer.highwater(partition)
                    if end is None:
                        continue
                    position = await consumer.position(partition)
                    self.metrics.consumer_lag.labels(partition.topic, str(partition.partition)).set(
                        max(end - position, 0)
                    )
            await asyncio.sleep(every_seconds)

    async def receive(self, message: KafkaMessage) -> None:
        """A batch of records, in partition order. Their offsets are committed when this
        returns, and rewound when it raises: nothing is committed before it is done."""
        work: list[tuple[Envelope[Any], Any, Any]] = []
        for record in message.raw_message:
            forget = self.tombstone_handlers.get(record.topic) if record.value is None else None
            if forget is None:
                if item := await self._read(record):
                    work.append(item)
                continue
            # A tombstone we handle: the events before it first, so that a contact card and
            # the tombstone after it on its partition are handled in that order.
            await self._handle_work(work)
            work = []
            await self._forget(forget, record)
        await self._handle_work(work)

    async def _handle_work(self, work: list[tuple[Envelope[Any], Any, Any]]) -> None:
        if self.uow is None or len(work) < 2:
            for envelope, handler, record in work:
                await self._handle_one(envelope, handler, record)
            return
        await self._handle_batch(work)

    async def _forget(self, handler: Callable[[str], Awaitable[None]], record: Any) -> None:
        """A tombstone on a compacted topic: its handler is called with the key, retried as
        an event's handler is; a failure that is not the infrastructure's, after the last
        attempt, dead-letters it (a key, nothing more)."""
        key = (record.key or b"").decode(errors="replace")
        attempt = 0
        while True:
            try:
                await handler(key)
            except Exception as error:
                attempt += 1
                transient = is_transient(error)
                if transient:
                    self.health.failing_since = self.health.failing_since or time.monotonic()
                if attempt < self.attempts:
                    self.metrics.handler_retries.labels(TOMBSTONE).inc()
                    await pause(attempt, self.retry_base, self.retry_max)
                    continue
                if transient:
                    raise  # not committed: redelivered once the infrastructure is back
                log.exception("tombstone handler failed; dead-lettering it", attempts=attempt)
                reason = f"{type(error).__name__} after {attempt} attempts"
                await self.dead_letter(record, "HandlerError", reason, TOMBSTONE)
                self.health.failing_since = None
                return
            self.health.failing_since = None
            self.metrics.events_handled.labels(TOMBSTONE, "processed").inc()
            return

    async def _read(self, record: Any) -> tuple[Envelope[Any], Any, Any] | None:
        """The event and its handler, or None for a record that is not this service's work."""
        if record.value is None:
            # A tombstone: decoding it would raise TypeError, which stopped the partition.
            await self.dead_letter(
                record, "MalformedEnvelope", "the message has no value (a tombstone)", "unreadable"
            )
            return None
        try:
            # The headers too: a binary-mode record (CloudEvents Kafka binding) is read as well.
            envelope = decode(record.value, self.registry, record.headers or ())
        except UndeliverableEvent as error:
            if isinstance(error, UnknownEventType) and record.topic not in self.closed_topics:
                self._skip(record, error.event_type)
                return None
            if self._concerns_others(error):
                self.metrics.events_handled.labels("unreadable", "ignored").inc()
                return None
            await self.dead_letter(record, type(error).__name__, error.reason, "unreadable")
            return None
        handler = self.handlers.get(type(envelope.data))
        if handler is None:
            # Topics carry many event types; each service reads only what concerns it.
            self.metrics.events_handled.labels(envelope.type, "ignored").inc()
            return None
        return envelope, handler, record

    async def _handle_batch(self, work: list[tuple[Envelope[Any], Any, Any]]) -> None:
        """All events of the batch in one transaction, with bulk inbox and outbox writes:
        the main cost per event, a round trip to the database, is paid once per batch.
        When anything in it fails, nothing of it stays, and the events go one by one, each
        with its own retries and dead letter."""
        assert self.uow is not None
        # No look in the inbox first (a round trip per batch): a repeat among the events
        # makes the batch's claims fail at its end, and they are then handled one by one,
        # where the repeat is found at once. Repeats come after a crash or a rebalance only.
        started = time.perf_counter()
        try:
            async with self.uow.batch(envelope for envelope, _, _ in work) as batch:
                await self.read_ahead(batch, [envelope for envelope, _, _ in work])
                for envelope, handler, _ in work:
                    with log_context(
                        correlation_id=envelope.correlationid,
                        causation_id=envelope.id,
                        event_type=envelope.type,
                    ):
                        # The handler's `uow` is the batch: its handling() joins it.
                        await handler(envelope, uow=batch)
        except Exception as error:
            log.info("batch undone; handling its events one by one", error=type(error).__name__)
            for envelope, handler, record in work:
                await self._handle_one(envelope, handler, record)
            return
        self.health.failing_since = None
        self.metrics.batch_events.observe(len(work))
        share = (time.perf_counter() - started) / len(work)
        # A label's child looked up once per type, not once per event.
        for event_type, count in Counter(envelope.type for envelope, _, _ in work).items():
            seconds = self.metrics.handler_seconds.labels(event_type)
            for _ in range(count):
                seconds.observe(share)
            self.metrics.events_handled.labels(event_type, "processed").inc(count)

    async def _handle_one(self, envelope: Envelope[Any], handler: Any, record: Any) -> None:
        with log_context(
            correlation_id=envelope.correlationid,
            causation_id=envelope.id,
            event_type=envelope.type,
        ):
            await self._handle(envelope, handler, record)

    def _skip(self, record: Any, claimed_type: str | None) -> None:
        """A type this consumer has never heard of, on a stream: a producer got there first.
        Passed by and counted; when the consumer learns the type, a replay from the stream
        (or the dead-letter tool, for what did land there) brings the events in."""
        event_type = (claimed_type or "unknown")[:120]
        self.metrics.events_skipped.labels(record.topic, event_type).inc()
        self.metrics.events_handled.labels(event_type, "skipped").inc()
        # The type and where it lay; never the content.
        log.info(
            "event type not handled here; skipped",
            event_type=event_type,
            source=f"{record.topic}/{record.partition}/{record.offset}",
        )

    def _concerns_others(self, error: UndeliverableEvent) -> bool:
        """An event of a known type this service does not handle, in a version or shape it
        cannot read: the services that handle it dead-letter it, this one passes it by."""
        if isinstance(error, (MalformedEnvelope, UnknownEventType)) or error.event_type is None:
            return False
        return error.event_type.rpartition(".")[0] not in self.handled_names

    async def _handle(self, envelope: Envelope[Any], handler: Any, record: Any) -> None:
        # No look in the inbox first: the claim inside the handler's transaction finds a
        # repeat anyway, and a round trip per event is a price every event would pay.
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await handler(envelope)
            except AlreadyHandled:
                self.metrics.events_handled.labels(envelope.type, "duplicate").inc()
                return
            except (DomainError, UndeliverableEvent) as error:
                await self.dead_letter(record, type(error).__name__, str(error), envelope.type)
                return
            except Exception as error:
                attempt += 1
                transient = is_transient(error)
                if transient:
                    self.health.failing_since = self.health.failing_since or time.monotonic()
                if not transient and attempt >= self.attempts:
                    log.exception("handler failed; dead-lettering the event", attempts=attempt)
                    await self.dead_letter(
                        record,
                        "HandlerError",
                        f"{type(error).__name__} after {attempt} attempts",
                        envelope.type,
                    )
                    self.health.failing_since = None
                    return
                if transient and attempt >= self.attempts:
                    # Do not commit: the message is redelivered once the infrastructure is back.
                    log.warning(
                        "infrastructure failing; leaving the event for redelivery",
                        error=type(error).__name__,
                    )
                    raise
                self.metrics.handler_retries.labels(envelope.type).inc()
                await pause(attempt, self.retry_base, self.retry_max)
                continue
            self.health.failing_since = None
            self.metrics.handler_seconds.labels(envelope.type).observe(
                time.perf_counter() - started
            )
            self.metrics.events_handled.labels(envelope.type, "processed").inc()
            return

    async def dead_letter(self, record: Any, category: str, detail: str, event_type: str) -> None:
        """Put the message aside with the reason, so the partition goes on."""
        reason = f"{category}: {detail}"
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        headers.update(
            {
                "x-dlq-reason": reason[:1000],
                "x-dlq-consumer": self.service,
                "x-dlq-source": f"{record.topic}/{record.partition}/{record.offset}",
                "x-dlq-at": datetime.now(UTC).isoformat(),
            }
        )
        topic = dead_letter_topic(record.topic)
        await self.broker.publish(record.value, topic, key=record.key, headers=headers)
        self.metrics.dead_letters.labels(topic=topic, reason=category).inc()
        self.metrics.events_handled.labels(event_type, "dead_lettered").inc()
        log.warning("event dead-lettered", dlq=topic, reason=reason, source=headers["x-dlq-source"])
        if self.on_dead_letter is not None:
            letter = DeadLetter(
                record.topic, record.partition, record.offset, record.key, record.value, reason
            )
            try:
                await self.on_dead_letter(letter)
            except Exception:
                # The dead letter is kept either way; the hook only tells someone about it.
                log.exception("dead-letter hook failed", source=headers["x-dlq-source"])
