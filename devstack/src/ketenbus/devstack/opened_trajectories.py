"""The trajectories trajectory opens, as the simulation learns of them: from trajectory's topic,
with one consumer, instead of asking trajectory's API again and again for every resident on a
waiting list."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer

from ketenbus.contracts.envelope import UndeliverableEvent, decode
from ketenbus.contracts.events import TrajectoryOpened
from ketenbus.contracts.topics import TRAJECTORIES
from ketenbus.devstack.chain_client import ChainError
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import partitions_of


class OpenedTrajectories:
    """The trajectories trajectory opens, read from its topic by one consumer: a waiting
    resident learns the moment their trajectory opens without anyone polling trajectory."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.opened: dict[str, TrajectoryOpened] = {}
        self.waiting: dict[str, asyncio.Future[TrajectoryOpened]] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read from the topic's current end: everything the year opens comes after it."""
        consumer = AIOKafkaConsumer(
            **self.kafka.client_options(), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, [TRAJECTORIES.name])
            if not partitions:
                raise ChainError(f"no topic {TRAJECTORIES.name} on {self.kafka.bootstrap}")
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)  # fixed now, before the first referral
        except BaseException:
            await consumer.stop()
            raise
        self.consumer = consumer
        self.reader = asyncio.create_task(self._read(consumer))

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    @property
    def reading(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    self._take(record.value)

    def _take(self, raw: bytes | None) -> None:
        if raw is None or b".TrajectoryOpened." not in raw:
            return
        try:
            event = decode(raw, {TrajectoryOpened.event_type(): TrajectoryOpened}).data
        except UndeliverableEvent:
            return
        assert isinstance(event, TrajectoryOpened)
        self.opened[event.referral_id] = event
        waiter = self.waiting.pop(event.referral_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event)

    async def wait(self, referral_id: str, timeout: float) -> TrajectoryOpened | None:
        """The referral's TrajectoryOpened, or None after `timeout` real seconds."""
        if referral_id in self.opened:
            return self.opened[referral_id]
        waiter = self.waiting.get(referral_id)
        if waiter is None:
            waiter = self.waiting[referral_id] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(waiter), max(timeout, 0.0))
        return None
