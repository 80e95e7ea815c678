"""The unit of work: one Mongo transaction holding the state change, the inbox claim and the
outgoing events, so that they happen together or not at all.

    async with uow.handling(envelope) as tx:      # a consumed event
        ...
    async with uow.command() as tx:               # an HTTP command
        ...

A service extends `Transaction` with its repositories, so a handler reads
`await tx.trajectories.add(trajectory)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ketenbus.contracts.envelope import Envelope, Event, caused_by, new_event_id, wrap
from ketenbus.kit.clock import Clock
from ketenbus.kit.inbox import Inbox
from ketenbus.kit.outbox import Outbox


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
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        # What the service's repositories need besides the database (keys, catalogues).
        self.resources = resources or {}
        self.session = session
        self.source = source
        self.clock = clock
        self.cause = cause
        self.correlation_id = correlation_id
        self.outgoing: list[Envelope[Any]] = []

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


TxT = TypeVar("TxT", bound=Transaction)


@dataclass
class _Batch:
    """One transaction shared by the handlers of a batch of consumed events."""

    owner: object
    session: AsyncClientSession
    claims: list[Envelope[Any]] = field(default_factory=list)
    outgoing: list[Envelope[Any]] = field(default_factory=list)


_current_batch: ContextVar[_Batch | None] = ContextVar("ketenbus_batch", default=None)


class UnitOfWork(Generic[TxT]):
    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        service: str,
        clock: Clock,
        transaction_class: type[TxT] = Transaction,  # type: ignore[assignment]
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
        self.resources: dict[str, Any] = {}

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Handle several consumed events in one transaction: every `handling()` inside joins
        it, and the inbox claims and outgoing events are written in bulk at the end. A
        failure anywhere undoes the whole batch (the consumer then goes event by event)."""
        async with (
            self.client.start_session() as session,
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            ),
        ):
            batch = _Batch(self, session)
            token = _current_batch.set(batch)
            try:
                yield
            finally:
                _current_batch.reset(token)
            await self.inbox.claim_all(session, batch.claims)
            await self.outbox.stage(session, batch.outgoing)
        if batch.outgoing:
            self.after_commit()

    @asynccontextmanager
    async def _joining(self, batch: _Batch, cause: Envelope[Any]) -> AsyncIterator[TxT]:
        tx = self.transaction_class(
            self.db,
            batch.session,
            source=self.service,
            clock=self.clock,
            resources=self.resources,
            cause=cause,
        )
        yield tx
        batch.claims.append(cause)
        batch.outgoing.extend(tx.outgoing)

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
                resources=self.resources,
                **context,
            )
            cause = context.get("cause")
            if cause is not None:
                await self.inbox.claim(session, cause.id, cause.type)
            yield tx
            await self.outbox.stage(session, tx.outgoing)
        if tx.outgoing:
            self.after_commit()

    def handling(self, envelope: Envelope[Any]) -> AbstractAsyncContextManager[TxT]:
        """Handle a consumed event exactly once: raises `AlreadyHandled` for a repeat."""
        batch = _current_batch.get()
        if batch is not None and batch.owner is self:
            return self._joining(batch, envelope)
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
            tx = self.transaction_class(
                self.db, session, source=self.service, clock=self.clock, resources=self.resources
            )
            yield tx
            if tx.outgoing:
                raise RuntimeError("events published while only reading; use command()")
