"""An in-memory unit of work and store fakes, for tests of handler and route decisions that
run in milliseconds without Kafka or MongoDB (the real-engine tests keep what crosses a
process boundary: transactions, the inbox on disk, the relay, the consumer).

The fake keeps the unit of work's contract, so a handler cannot tell the difference:

    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    deps = TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)
    handle = handlers.bind(deps)        # the service's own dependencies, bound as at start-up
    await handle(accepted)
    assert uow.published_types() == [TrajectoryOpened]

- a repeat of a handled event raises `AlreadyHandled`;
- a transaction that raises leaves the tables as they were and publishes nothing;
- what a transaction published goes out (`published`, and its tombstones in `tombstones`)
  only when it completes.

A test's fake transaction extends `InMemoryTransaction` with the repositories its handlers
use, each over one table of `tables` (a dict per collection, keyed by id);
`InMemoryAggregates` covers the common add/save/get of an aggregate that records events.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from ketenbus.contracts.envelope import Envelope, Event
from ketenbus.kit.clock import Clock, FixedClock
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.last_write import ConcurrentChange  # as the real stores raise it
from ketenbus.kit.outbox import Tombstone
from ketenbus.kit.uow import Transaction, in_order_made

Tables = dict[str, dict[str, Any]]


class InMemoryTransaction(Transaction):
    """A transaction over in-memory tables instead of a database session."""

    def __init__(self, tables: Tables, **context: Any) -> None:
        super().__init__(None, None, **context)  # type: ignore[arg-type]
        self.tables = tables

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {})


TxT = TypeVar("TxT", bound=InMemoryTransaction)


class InMemoryUnitOfWork(Generic[TxT]):
    def __init__(
        self,
        transaction_class: Callable[..., TxT],
        *,
        service: str = "test",
        clock: Clock | None = None,
        tables: Tables | None = None,
    ) -> None:
        self.transaction_class = transaction_class
        self.service = service
        self.clock = clock or FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        self.tables: Tables = tables if tables is not None else {}
        self.handled: set[str] = set()
        self.published: list[Envelope[Any]] = []
        self.tombstones: list[Tombstone] = []

    @asynccontextmanager
    async def _transaction(self, **context: Any) -> AsyncIterator[TxT]:
        before = copy.deepcopy(self.tables)
        tx = self.transaction_class(
            self.tables,
            source=self.service,
            clock=self.clock,
            **context,
        )
        try:
            yield tx
            for deferred in in_order_made(tx.gathered):
                await deferred.flush()  # into the tables
        except BaseException:
            self.tables = before
            raise
        for item in tx.outgoing:
            if isinstance(item, Tombstone):
                self.tombstones.append(item)
            else:
                self.published.append(item)

    @asynccontextmanager
    async def handling(self, envelope: Envelope[Any]) -> AsyncIterator[TxT]:
        if envelope.id in self.handled:
            raise AlreadyHandled(envelope.id)
        async with self._transaction(cause=envelope) as tx:
            yield tx
        self.handled.add(envelope.id)

    def command(self, correlation_id: str | None = None) -> Any:
        return self._transaction(correlation_id=correlation_id)

    def reading(self) -> Any:
        return self._transaction()

    def published_types(self) -> list[type[Event]]:
        return [type(envelope.data) for envelope in self.published]


class Aggregate(Protocol):
    id: str
    events: list[Event]


A = TypeVar("A", bound=Aggregate)


class InMemoryAggregates(Generic[A]):
    """A repository of aggregates in one table: what is read is a copy, as from a database,
    and what an aggregate recorded is published when it is added or saved."""

    def __init__(self, tx: InMemoryTransaction, table: str) -> None:
        self.tx = tx
        self.rows: dict[str, A] = tx.table(table)

    async def add(self, aggregate: A) -> None:
        if aggregate.id in self.rows:
            raise KeyError(f"{aggregate.id} exists already")
        self._keep(aggregate)

    async def save(self, aggregate: A) -> None:
        kept = self.rows.get(aggregate.id)
        version = getattr(aggregate, "version", None)
        if version is not None and kept is not None:
            if getattr(kept, "version", None) != version:
                raise ConcurrentChange(aggregate.id)
            aggregate.version = version + 1  # type: ignore[attr-defined]
        self._keep(aggregate)

    async def get(self, aggregate_id: str) -> A | None:
        return copy.deepcopy(self.rows.get(aggregate_id))

    def first(self, wanted: Callable[[A], bool]) -> A | None:
        found = self.where(wanted)
        return found[0] if found else None

    def where(self, wanted: Callable[[A], bool]) -> list[A]:
        return [copy.deepcopy(each) for each in self.rows.values() if wanted(each)]

    def _keep(self, aggregate: A) -> None:
        self.tx.publish_all(aggregate.events)
        aggregate.events.clear()
        self.rows[aggregate.id] = copy.deepcopy(aggregate)
