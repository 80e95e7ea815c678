"""The unit of work: one Mongo transaction holding the state change, the inbox claim and the
outgoing events, so that they happen together or not at all.

Four ways in, each with one behaviour:

    async with uow.handling(envelope) as tx:      # one consumed event, its own transaction
        ...
    async with uow.batch(envelopes) as batch:     # several consumed events, one transaction
        async with batch.handling(envelope) as tx:
            ...
    async with uow.command() as tx:               # an HTTP command or a timer
        ...
    async with uow.batch() as batch:              # several commands, one transaction
        async with batch.command(correlation_id) as tx:   # (ketenbus.kit.together)
            ...

A handler is given either the unit of work or a batch (`EventUnitOfWork`, the consumer
decides) and reads the same either way: `async with uow.handling(event) as tx:`.

Writes a handler would make for every event alike (a counter, a projection's upserts) it may
gather instead, and write once for the whole batch: `tx.deferred(name, make)` gives the
object registered under `name` for the unit of work (made by `make()` the first time; in a
batch, one shared by all its events), and each such object's `flush()` is awaited when the
unit of work ends, inside its transaction, before the inbox claims and the outbox (in the
order they were made; one made while another flushes, after it). The gathered writes are
not visible to the database's reads before then, so only writes no handler reads back
within the batch belong there, unless the object that gathers them answers those reads
too: `ketenbus.kit.gathered.GatheredDocuments` keeps every aggregate a repository read or
changed in the unit of work, answers the later reads from it, and writes the changed ones
in one bulk write (trajectory's, learning's and notifications' repositories use it). A
gathered object that writes as one client-level bulkWrite (`CarriesInserts`: intake's new
documents) is handed the unit of work's outbox documents as well, which then go in the
same command instead of an insert of their own.

What a handler may do outside the transaction: only what is harmless twice. A batch that
fails anywhere is undone and its events are handled again one by one, so a handler runs
twice for an event whose batch failed; what it wrote through `tx` is undone with the batch,
but a call to the outside world (a mail, an HTTP request, a log line, a counter in memory)
is not. Effects that must happen once go through `tx` (the store, `tx.publish`).

A service extends `Transaction` with its repositories, so a handler reads
`await tx.trajectories.add(trajectory)`; what its repositories need besides the database
(keys, tables) its bootstrap gives the transaction's constructor, through the
`transaction_class` it builds the unit of work with (e.g. a `functools.partial`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ketenbus.contracts.envelope import Envelope, Event, caused_by, new_event_id, wrap
from ketenbus.contracts.topics import Topic
from ketenbus.kit.clock import Clock
from ketenbus.kit.inbox import Inbox
from ketenbus.kit.outbox import OUTBOX, Outbox, Outgoing, Tombstone, records


class Deferred(Protocol):
    """Writes gathered over a unit of work (`Transaction.deferred`), made when it ends."""

    async def flush(self) -> None: ...


D = TypeVar("D", bound=Deferred)


@runtime_checkable
class CarriesInserts(Deferred, Protocol):
    """Gathered writes that go out as one client-level bulkWrite, and take another
    collection's inserts along (intake's new documents): the unit of work hands the first
    such object its outbox documents, which then cost no round trip of their own."""

    def carry(self, collection: str, documents: list[dict[str, Any]]) -> None: ...


class Transaction:
    """What a handler or command may touch: the service's database, inside one transaction."""

    def __init__(
        self,
        db: AsyncDatabase[Any],
        session: AsyncClientSession,
        *,
        source: str,
        clock: Clock,
        cause: Envelope[Any] | None = None,
        correlation_id: str | None = None,
        deferred: dict[str, Deferred] | None = None,
    ) -> None:
        self.db, self.session = db, session
        self.source, self.clock = source, clock
        # What the events it publishes are caused by: the consumed event, or a command's id.
        self.cause, self.correlation_id = cause, correlation_id
        self.outgoing: list[Outgoing] = []
        # The unit of work's gathered writes: a batch gives every transaction the same.
        self.gathered: dict[str, Deferred] = {} if deferred is None else deferred

    def deferred(self, name: str, make: Callable[[], D]) -> D:
        """The writes gathered under `name` in this unit of work, flushed when it ends."""
        found = self.gathered.get(name)
        if found is None:
            found = self.gathered[name] = make()
        return cast(D, found)

    def publish(self, event: Event) -> Envelope[Any]:
        """Stage an event; it goes out only if the transaction commits."""
        if self.cause is not None:
            ids = caused_by(self.cause)
        else:
            ids = {"correlation_id": self.correlation_id or new_event_id()}
        envelope = wrap(event, source=self.source, time=self.clock.now(), **ids)
        self.outgoing.append(envelope)
        return envelope

    def publish_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.publish(event)

    def tombstone(self, topic: Topic, key: str) -> None:
        """Stage a tombstone for `key` on the compacted `topic`, in order with the events:
        it goes out only if the transaction commits."""
        self.outgoing.append(Tombstone(topic, key))


TxT = TypeVar("TxT", bound=Transaction)
TxT_co = TypeVar("TxT_co", bound=Transaction, covariant=True)


class EventUnitOfWork(Protocol[TxT_co]):
    """What a handler is given: a `UnitOfWork` or a `Batch`; it needs only `handling()`."""

    def handling(self, envelope: Envelope[Any]) -> AbstractAsyncContextManager[TxT_co]: ...


@dataclass
class Batch(Generic[TxT]):
    """Several consumed events (or commands) in one transaction, opened by
    `UnitOfWork.batch()`.

    `handling(envelope)` gives each event's handler a transaction that shares the batch's
    session. Nothing is claimed in the inbox while the handlers run: the claims and the
    outgoing events of every handling that completed are written in bulk when the batch
    ends. So a repeat does not raise `AlreadyHandled` here; the whole batch fails at its end
    instead (the consumer looks in the inbox before it opens a batch, so that is rare), and
    any failure undoes every event of the batch.
    """

    uow: UnitOfWork[TxT]
    session: AsyncClientSession
    event_ids: frozenset[str]
    claims: list[Envelope[Any]] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    gathered: dict[str, Deferred] = field(default_factory=dict)

    @asynccontextmanager
    async def handling(self, envelope: Envelope[Any]) -> AsyncIterator[TxT]:
        if envelope.id not in self.event_ids:
            raise ValueError(f"event {envelope.id} is not one this batch was opened for")
        tx = self._transaction(cause=envelope)
        yield tx
        self.claims.append(envelope)
        self.outgoing.extend(tx.outgoing)

    @asynccontextmanager
    async def command(self, correlation_id: str | None) -> AsyncIterator[TxT]:
        """One of the batch's commands (an HTTP request), as `UnitOfWork.command()` gives
        it alone: what it publishes carries its own correlation id."""
        tx = self._transaction(cause=None, correlation_id=correlation_id)
        yield tx
        self.outgoing.extend(tx.outgoing)

    def reading_ahead(self) -> TxT:
        """A transaction of the batch for no event in particular: what a read-ahead reads
        into the batch's gathered documents, its handlers find there (ketenbus.kit.consumer,
        `EventHandlers.read_ahead`). It claims nothing and may not publish."""
        return self._transaction(cause=None)

    def _transaction(self, cause: Envelope[Any] | None, correlation_id: str | None = None) -> TxT:
        """A transaction on the batch's session, sharing its gathered writes."""
        return self.uow.transaction_class(
            self.uow.db,
            self.session,
            source=self.uow.service,
            clock=self.uow.clock,
            cause=cause,
            correlation_id=correlation_id,
            deferred=self.gathered,
        )


class UnitOfWork(Generic[TxT]):
    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        service: str,
        clock: Clock,
        # The service's Transaction class, or a partial of it that gives it its tables, keys.
        transaction_class: Callable[..., TxT] = Transaction,  # type: ignore[assignment]
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.db = db
        self.service = service
        self.clock = clock
        self.transaction_class = transaction_class
        self.after_commit = after_commit
        self.outbox = Outbox(db)
        self.inbox = Inbox(db, consumer=service)

    @asynccontextmanager
    async def batch(self, envelopes: Iterable[Envelope[Any]] = ()) -> AsyncIterator[Batch[TxT]]:
        """Handle these consumed events, or commands, in one transaction (see `Batch`). A
        failure anywhere undoes the whole batch; the caller then handles each on its own."""
        async with (
            self.client.start_session() as session,
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            ),
        ):
            batch = Batch(self, session, frozenset(e.id for e in envelopes))
            yield batch
            staged = _carried_outbox(batch.gathered, batch.outgoing)
            await flush_gathered(batch.gathered)
            await self.inbox.claim_all(session, batch.claims)
            if not staged:
                await self.outbox.stage(session, batch.outgoing)
        if batch.outgoing:
            self.after_commit()

    @asynccontextmanager
    async def _transaction(self, **context: Any) -> AsyncIterator[TxT]:
        async with (
            self.client.start_session() as session,
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            ),
        ):
            tx = self.transaction_class(
                self.db,
                session,
                source=self.service,
                clock=self.clock,
                **context,
            )
            cause = context.get("cause")
            if cause is not None:
                await self.inbox.claim(session, cause.id, cause.type)
            yield tx
            staged = _carried_outbox(tx.gathered, tx.outgoing)
            await flush_gathered(tx.gathered)
            if not staged:
                await self.outbox.stage(session, tx.outgoing)
        if tx.outgoing:
            self.after_commit()

    def handling(self, envelope: Envelope[Any]) -> AbstractAsyncContextManager[TxT]:
        """Handle one consumed event exactly once, in a transaction of its own: the inbox
        claim comes first and raises `AlreadyHandled` for a repeat."""
        return self._transaction(cause=envelope)

    def command(self, correlation_id: str | None = None) -> AbstractAsyncContextManager[TxT]:
        """Carry out a command that did not come from an event (an HTTP request, a timer)."""
        if correlation_id is None:
            correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        return self._transaction(correlation_id=correlation_id)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[TxT]:
        """A consistent read without a transaction's cost; publishing is refused."""
        async with self.client.start_session() as session:
            tx = self.transaction_class(self.db, session, source=self.service, clock=self.clock)
            yield tx
            if tx.outgoing:
                raise RuntimeError("events published while only reading; use command()")
            if tx.gathered:
                raise RuntimeError("writes gathered while only reading; use command()")


def _carried_outbox(gathered: dict[str, Deferred], outgoing: list[Outgoing]) -> bool:
    """Whether the outgoing events went to a gathered object that carries them along."""
    carrier = next((d for d in gathered.values() if isinstance(d, CarriesInserts)), None)
    if carrier is None or not outgoing:
        return False
    carrier.carry(OUTBOX, records(outgoing))
    return True


async def flush_gathered(gathered: dict[str, Deferred]) -> None:
    """Each gathered object flushed once, in the order made; one made while another flushes
    (learning's client keys, looked up as its enrolments are sealed) is flushed after it."""
    flushed = 0
    while flushed < len(gathered):
        await list(gathered.values())[flushed].flush()
        flushed += 1
