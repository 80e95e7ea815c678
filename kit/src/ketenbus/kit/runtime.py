"""Everything one service process runs on, wired once, at start-up, in one place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from ketenbus.kit.uow import Transaction, UnitOfWork

log = get_logger(__name__)


@dataclass
class Service:
    """What a service hands to the kit: only the parts that are its own."""

    name: str
    description: str = ""
    handlers: EventHandlers | None = None
    routers: Sequence[APIRouter] = ()
    publishes: Sequence[type[Event]] = ()
    transaction_class: type[Transaction] = Transaction
    settings_class: type[ServiceSettings] = ServiceSettings
    # Creates indexes and adds the service's own dependencies to runtime.dependencies.
    prepare: Callable[[Runtime], Awaitable[None]] | None = None
    # Long-running loops (schedulers, timers); each gets the runtime and runs until cancelled.
    background: Sequence[Callable[[Runtime], Awaitable[None]]] = ()
    # Called after a consumed message was dead-lettered (e.g. to tell a partner why).
    dead_letters: Callable[[Runtime, DeadLetter], Awaitable[None]] | None = None


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
    uow: UnitOfWork[Any]
    relay: OutboxRelay
    keyring: Keyring
    consumer: EventConsumer | None = None
    dependencies: dict[str, Any] = field(default_factory=dict)
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
            broker,
            metrics,
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
        )
        uow: UnitOfWork[Any] = UnitOfWork(
            mongo,
            db,
            service=service.name,
            clock=clock,
            transaction_class=service.transaction_class,
            after_commit=relay.wake,
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
            uow=uow,
            relay=relay,
            keyring=Keyring.from_file(settings.api_keys_file, settings.api_keys_reload_seconds),
        )
        runtime.dependencies.update(
            uow=uow, clock=clock, settings=settings, metrics=metrics, broker=broker, db=db
        )
        return runtime

    async def start(self) -> None:
        await Outbox(self.db).ensure_indexes()
        if self.service.prepare is not None:
            await self.service.prepare(self)
        if self.service.handlers is not None and self.service.handlers.handlers:
            self.consumer = EventConsumer(
                self.service.handlers,
                self.dependencies,
                self.broker,
                self.metrics,
                attempts=self.settings.handler_attempts,
                retry_base_seconds=self.settings.retry_base_seconds,
                retry_max_seconds=self.settings.retry_max_seconds,
                on_dead_letter=self._dead_letter_hook(),
                uow=self.uow,
                batch_size=self.settings.consumer_batch_size,
                session_timeout_ms=self.settings.consumer_session_timeout_ms,
            )
            self.consumer.subscribe()
        self._spawn(self._connect_broker(), "broker-connect")

    def _dead_letter_hook(self) -> Callable[[DeadLetter], Awaitable[None]] | None:
        hook = self.service.dead_letters
        if hook is None:
            return None

        async def call(letter: DeadLetter) -> None:
            await hook(self, letter)

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
        self.relay.start()
        for loop in self.service.background:
            self._spawn(self._supervised(loop), loop.__name__)
        if self.consumer is not None:
            self._spawn(self.consumer.watch_lag(), "consumer-lag")

    async def _supervised(self, loop: Callable[[Runtime], Awaitable[None]]) -> None:
        """A background loop that fails is logged and started again, never silently lost."""
        attempt = 0
        while True:
            try:
                await loop(self)
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
