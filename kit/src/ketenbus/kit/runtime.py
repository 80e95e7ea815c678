"""Everything one service process runs on, wired once, at start-up, in one place.

The kit builds the plumbing (`Runtime.build`: settings, clock, metrics, broker, database,
outbox relay, API keys); the service's `bootstrap` builds from it one typed dependencies
object (its unit of work, tables, keys; see e.g. `ketenbus.trajectory.bootstrap`), and that
object is what its handlers, routes, background loops and dead-letter hook are given.
`Runtime.start` says the order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pymongo
from fastapi import APIRouter
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.envelope import Event
from ketenbus.kit.auth import Keyring
from ketenbus.kit.broker import create_broker
from ketenbus.kit.clock import Clock, clock_from
from ketenbus.kit.consumer import DeadLetter, EventConsumer, EventHandlers
from ketenbus.kit.failures import pause
from ketenbus.kit.logs import get_logger
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.mongo import create_mongo_client, database
from ketenbus.kit.outbox import Outbox, OutboxRelay
from ketenbus.kit.settings import ServiceSettings
from ketenbus.kit.uow import Transaction, TxT, UnitOfWork

log = get_logger(__name__)

D = TypeVar("D")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass
class Service(Generic[D]):
    """What a service hands to the kit: only the parts that are its own."""

    name: str
    description: str = ""
    handlers: EventHandlers | None = None
    routers: Sequence[APIRouter] = ()
    publishes: Sequence[type[Event]] = ()
    settings_class: type[ServiceSettings] = ServiceSettings
    # Builds the service's dependencies (a frozen dataclass) from the runtime, once, at
    # start-up: its indexes, its unit of work, tables and keys. Handlers, routes, loops and
    # the dead-letter hook are given what it returns; its `uow` is the one the consumer
    # batches on. Without one: `KitDependencies`.
    bootstrap: Callable[[Runtime], Awaitable[D]] | None = None
    # Long-running loops (schedulers, timers); each gets the dependencies and runs until
    # cancelled.
    background: Sequence[Callable[[D], Awaitable[None]]] = ()
    # Called after a consumed message was dead-lettered (e.g. to tell a partner why).
    dead_letters: Callable[[D, DeadLetter], Awaitable[None]] | None = None


@dataclass(frozen=True)
class KitDependencies:
    """What a service without a bootstrap of its own is given: the plain unit of work."""

    settings: ServiceSettings
    clock: Clock
    uow: UnitOfWork[Transaction]


async def kit_dependencies(runtime: Runtime) -> KitDependencies:
    return KitDependencies(runtime.settings, runtime.clock, runtime.unit_of_work(Transaction))


@dataclass
class Runtime:
    service: Service
    settings: ServiceSettings
    clock: Clock
    registry: CollectorRegistry
    metrics: KitMetrics
    broker: KafkaBroker
    mongo: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    relay: OutboxRelay
    keyring: Keyring
    consumer: EventConsumer | None = None
    # What the service's bootstrap built (by start()).
    dependencies: Any = None
    broker_connected: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, service: Service, settings: ServiceSettings) -> Runtime:
        registry = CollectorRegistry()
        metrics = KitMetrics(registry, service.name)
        clock = clock_from(settings)
        broker = create_broker(settings, registry)
        mongo = create_mongo_client(settings)
        db = database(mongo, settings)
        relay = OutboxRelay(
            db,
            # FastStream's producer: the broker's own, connected when the broker starts.
            broker.config.producer,
            metrics,
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
        )
        runtime = cls(
            service=service,
            settings=settings,
            clock=clock,
            registry=registry,
            metrics=metrics,
            broker=broker,
            mongo=mongo,
            db=db,
            relay=relay,
            keyring=Keyring.from_file(settings.api_keys_file, settings.api_keys_reload_seconds),
        )
        return runtime

    def settings_as(self, settings_class: type[SettingsT]) -> SettingsT:
        """The settings as the service's own class, for its bootstrap (`Service.settings_class`
        made them; a service started with any other is a wiring error)."""
        if not isinstance(self.settings, settings_class):
            raise TypeError(
                f"{self.service.name} runs on {type(self.settings).__name__}, "
                f"not {settings_class.__name__}"
            )
        return self.settings

    def unit_of_work(self, transaction: Callable[..., TxT]) -> UnitOfWork[TxT]:
        """The service's unit of work over its database, its transactions made by
        `transaction` (a service's Transaction class, or a partial giving it its tables and
        keys); each commit that staged events wakes the outbox relay."""
        return UnitOfWork(
            self.mongo,
            self.db,
            service=self.service.name,
            clock=self.clock,
            transaction_class=transaction,
            after_commit=self.relay.wake,
        )

    async def start(self) -> None:
        """Start-up, in this order, each step needing the one before it:

        1. the outbox's indexes: every transaction stages its events there;
        2. the service's bootstrap: its indexes, tables and keys, in one dependencies object;
        3. the consumer: its handlers bound to those dependencies, subscribed to the topics
           the settings give, before the broker starts (which starts only the subscribers it
           has by then);
        4. the broker, in the background (a service whose broker is away is alive but not
           ready); once it answers, the outbox relay, the background loops and the lag watch.

        The HTTP routes are served once this returns, with the same dependencies."""
        await Outbox(self.db).ensure_indexes()
        bootstrap = self.service.bootstrap or kit_dependencies
        self.dependencies = await bootstrap(self)
        if self.service.handlers is not None and self.service.handlers.handlers:
            self.consumer = EventConsumer(
                self.service.handlers,
                self.dependencies,
                self.broker,
                self.metrics,
                settings=self.settings,
                attempts=self.settings.handler_attempts,
                retry_base_seconds=self.settings.retry_base_seconds,
                retry_max_seconds=self.settings.retry_max_seconds,
                on_dead_letter=self._dead_letter_hook(),
                uow=self.dependencies.uow,
                batch_size=self.settings.consumer_batch_size,
                session_timeout_ms=self.settings.consumer_session_timeout_ms,
                fetch_wait_ms=self.settings.consumer_fetch_wait_ms,
                fetch_min_bytes=self.settings.consumer_fetch_min_bytes,
            )
            self.consumer.subscribe()
        self._spawn(self._connect_broker(), "broker-connect")

    def _dead_letter_hook(self) -> Callable[[DeadLetter], Awaitable[None]] | None:
        hook = self.service.dead_letters
        if hook is None:
            return None

        async def call(letter: DeadLetter) -> None:
            await hook(self.dependencies, letter)

        return call

    async def _connect_broker(self) -> None:
        """Keep trying: a service whose broker is away is alive but not ready."""
        attempt = 0
        while True:
            try:
                await self.broker.start()
            except Exception as error:
                attempt += 1
                log.warning("kafka not reachable yet", error=type(error).__name__, attempt=attempt)
                await pause(min(attempt, 6), 0.2, 5.0)
                continue
            break
        self.broker_connected = True
        if self.consumer is not None:
            self.consumer.pace_fetches()
        self.relay.start()
        for loop in self.service.background:
            self._spawn(self._supervised(loop), loop.__name__)
        if self.consumer is not None:
            self._spawn(self.consumer.watch_lag(), "consumer-lag")

    async def _supervised(self, loop: Callable[[Any], Awaitable[None]]) -> None:
        """A background loop that fails is logged and started again, never silently lost."""
        attempt = 0
        while True:
            try:
                await loop(self.dependencies)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                log.exception("background loop failed; restarting", loop=loop.__name__)
                await pause(min(attempt, 6), 0.2, 5.0)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))
        self.tasks[-1].set_name(name)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Finish the message in hand and commit its offset before letting go of Kafka.
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.relay.stop()
        await self.mongo.close()

    async def ready(self) -> dict[str, bool]:
        checks = {
            "mongodb": await self._mongo_answers(),
            "kafka": self.broker_connected,
            "consumers": self.consumer is None or self.consumer.ready,
            "outbox": self.relay.healthy,
        }
        self.metrics.ready.set(1 if all(checks.values()) else 0)
        return checks

    async def _mongo_answers(self) -> bool:
        # Bounded by PyMongo's own timeout, never by cancelling: on Python 3.11 a cancel that
        # lands while PyMongo waits for a server (asyncio.wait_for around a Condition) can
        # release the topology's lock without holding it. The client then stays wedged after
        # the database is back; a readiness probe polled through an outage did exactly that.
        try:
            with pymongo.timeout(2):
                await self.mongo.admin.command("ping")
        except Exception:
            return False
        return True
