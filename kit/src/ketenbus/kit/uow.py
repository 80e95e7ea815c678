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
batch, one shared by all its events). When the unit of work ends, inside its transaction,
each such object adds its writes to the unit of work's last write (`join`, in the order they
were made; one made meanwhile, after them), which then adds the inbox claims and the outbox
documents and goes as one command (ketenbus.kit.last_write); an object that cannot join is
flushed with writes of its own (`flush()`) first. The gathered writes are not visible to the
database's reads before then, so only writes no handler reads back within the batch belong
there, unless the object that gathers them answers those reads too:
`ketenbus.kit.gathered.GatheredDocuments` keeps every aggregate a repository read or changed
in the unit of work, answers the later reads from it, and writes the changed ones at the end
(trajectory's, learning's and notifications' repositories use it).

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

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ketenbus.contracts.envelope import Envelope, Event, caused_by, new_event_id, wrap
from ketenbus.contracts.topics import Topic
from ketenbus.kit.clock import Clock
from ketenbus.kit.inbox import Inbox
from ketenbus.kit.last_write import LastWrite
from ketenbus.kit.logs import bound
from ketenbus.kit.outbox import OUTBOX, Outgoing, Tombstone, records


class Deferred(Protocol):
    """Writes gathered over a unit of work (`Transaction.deferred`), made when it ends."""

    async def flush(self) -> None: ...


D = TypeVar("D", bound=Deferred)


@runtime_checkable
class JoinsLastWrite(Deferred, Protocol):
    """Gathered writes that go in the unit of work's last write, with its inbox claims and
    outbox documents, instead of a round trip of their own."""

    async def join(self, last: LastWrite) -> None: ...


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
    outgoing events of every handling that completed go in the batch's last write, when it
    ends. So a repeat does not raise `AlreadyHandled` here; the whole batch fails at its end
    instead (repeats come only after a crash or a rebalance, and the consumer then handles
    the batch's events one by one), and any failure undoes every event of the batch.
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
            await self._write_last(session, batch.gathered, batch.outgoing, batch.claims)
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
            await self._write_last(session, tx.gathered, tx.outgoing)
        if tx.outgoing:
            self.after_commit()

    async def _write_last(
        self,
        session: AsyncClientSession,
        gathered: dict[str, Deferred],
        outgoing: list[Outgoing],
        claims: list[Envelope[Any]] | None = None,
    ) -> None:
        """What the unit of work gathered, its inbox claims and its outbox documents, in one
        command before the commit (ketenbus.kit.last_write)."""
        last = LastWrite(self.db)
        await join_gathered(gathered, last)
        self.inbox.claim_all(last, claims or [])
        last.insert(OUTBOX, records(outgoing))
        await last.send(session)

    def handling(self, envelope: Envelope[Any]) -> AbstractAsyncContextManager[TxT]:
        """Handle one consumed event exactly once, in a transaction of its own: the inbox
        claim comes first and raises `AlreadyHandled` for a repeat."""
        return self._transaction(cause=envelope)

    def command(self, correlation_id: str | None = None) -> AbstractAsyncContextManager[TxT]:
        """Carry out a command that did not come from an event (an HTTP request, a timer)."""
        if correlation_id is None:
            correlation_id = bound("correlation_id")
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


def in_order_made(gathered: dict[str, Deferred]) -> Iterator[Deferred]:
    """Each gathered object in the order made; one made while the caller works on another
    (learning's client keys, looked up as its enrolments are sealed) comes after them."""
    done = 0
    while done < len(gathered):
        yield list(gathered.values())[done]
        done += 1


async def join_gathered(gathered: dict[str, Deferred], last: LastWrite) -> None:
    """Each gathered object's writes added to the last write, in the order made, or flushed
    at once by one that cannot join it."""
    for deferred in in_order_made(gathered):
        if isinstance(deferred, JoinsLastWrite):
            await deferred.join(last)
        else:
            await deferred.flush()
