"""A service's own rate: stop it, put a backlog of the events it consumes on its topics,
start it, and time until ketenbus_events_handled_total says it has handled them.

The rate is taken from its first handled batch to its last, as the bare loop's (baseline.py)
is from its first fetched batch: the time from ready to the first batch (the consumer's
first fetch after joining its group, 0.07 to 0.38 s, a quarter or more of what a 1,000 event
drain took) is not the rate at which it drains, and is kept apart (`first_batch_after`, and
the rate from ready).

Before the backlog is put on, the service's consumer group is moved to the end of its
topics, so what it drains is exactly the backlog (analytics is the exception: it drains
everything the run has put on the bus so far, a real mix).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError

from benchmarks import events
from benchmarks.machine import ENGINE_PROCESSES, CpuMeter, engine_process
from benchmarks.stack import handled, metrics, sample
from ketenbus.analytics.rebuild import ends_of
from ketenbus.devstack import access
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.kit.broker import partitions_of


@dataclass
class Drain:
    service: str
    feed: str
    backlog: int
    handled: int = 0
    processed: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    complete: bool = False
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    batches: int = 0
    mean_batch: float | None = None
    ratio: dict[str, float] = field(default_factory=dict)
    # From ready: the first fetch included.
    first_batch_after: float | None = None
    from_ready_seconds: float = 0.0
    from_ready_per_second: float = 0.0

    def row(self) -> dict[str, Any]:
        return asdict(self)


def topics_of(service: str) -> list[str]:
    """The topics the service's consumer reads, under the settings the stack gives it (the
    partners' inbound topics that intake and trajectory read included)."""
    app = importlib.import_module(f"ketenbus.{service}.app").service
    # Only the partners matter here (as EmbeddedStack sets PARTNER_ORGANISATIONS): the
    # settings are made without the keys and addresses a running service must be given.
    settings = app.settings_class.model_construct(partner_organisations=access.KAFKA_PARTNERS)
    return app.handlers.topics(settings)


async def _partitions(options: Mapping[str, Any], topics: Iterable[str]) -> list[TopicPartition]:
    consumer = AIOKafkaConsumer(**options)
    await consumer.start()
    try:
        return await partitions_of(consumer, topics)
    finally:
        await consumer.stop()


async def backlog(kafka: KafkaAccess, group: str, topics: list[str]) -> int:
    """Messages on the topics the group has not committed yet."""
    options = kafka.client_options()
    partitions = await _partitions(options, topics)
    ends = await ends_of(options, partitions)
    consumer = AIOKafkaConsumer(**options, group_id=group)
    await consumer.start()
    try:
        committed = {tp: await consumer.committed(tp) or 0 for tp in partitions}
    finally:
        await consumer.stop()
    return sum(max(ends[tp] - committed[tp], 0) for tp in partitions)


async def skip_to_end(
    kafka: KafkaAccess, group: str, topics: list[str], timeout: float = 90.0
) -> None:
    """Commit the group's offsets at the ends of the topics. The group must have no live
    member; one that was just stopped is still counted until its session times out, and
    until then the broker refuses the commit, so it is tried again."""
    options = kafka.client_options()
    partitions = await _partitions(options, topics)
    deadline = time.monotonic() + timeout
    while True:
        ends = await ends_of(options, partitions)
        consumer = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            # aiokafka itself retries some refusals for ever: bound each attempt.
            await asyncio.wait_for(consumer.commit(ends), timeout=10.0)
            return
        except (
            CommitFailedError,
            IllegalGenerationError,
            RebalanceInProgressError,
            TimeoutError,
        ):
            if time.monotonic() > deadline:
                raise
        finally:
            await consumer.stop()
        await asyncio.sleep(2.0)


def pids(stack: EmbeddedStack, *names: str) -> dict[str, int | None]:
    """The process of each named component; for "kafka" and "mongo" the engine itself (the
    broker's JVM, secantusd-rs)."""
    state = stack._running_state()
    found: dict[str, int | None] = {}
    for name in names:
        if name in state.components:
            pid = state.components[name].pid
            marker = ENGINE_PROCESSES.get(name)
            found[name] = engine_process(pid, marker) if marker else pid
    return found


async def wait_ready(http: httpx.AsyncClient, url: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http.get(f"{url}/readyz", timeout=1.0)).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout:.0f}s")


async def drain(
    stack: EmbeddedStack,
    service: str,
    feed: str,
    records: list[tuple[str, bytes, bytes, Any]],
    *,
    skip_existing: bool = True,
    timeout: float = 90.0,
) -> Drain:
    """The service must be stopped; it is stopped again at the end. After `timeout` seconds
    the rate so far is taken (`complete` says whether the whole backlog was handled)."""
    kafka = stack.kafka
    topics = topics_of(service)
    if skip_existing:
        await skip_to_end(kafka, service, topics)
    await events.publish(kafka, records)
    result = Drain(service, feed, await backlog(kafka, service, topics))
    stack.start_service(service)
    url = stack.service_url(service)
    async with httpx.AsyncClient() as http:
        try:
            started = await wait_ready(http, url, 120.0)
            meter = CpuMeter(pids(stack, service, "mongo", "kafka")).start()
            first = await metrics(http, url)
            counted_at_start = sum(handled(first).values())
            processed_at_start = handled(first).get("processed", 0.0)
            deadline = started + timeout
            first, now = await _drained(http, url, result, processed_at_start, deadline)
            result.cpu_seconds = meter.stop()
            processed = result.processed - processed_at_start
            result.processed = int(processed)
            result.handled = int(result.handled - counted_at_start)
            result.from_ready_seconds = round(now - started, 3)
            result.from_ready_per_second = round(processed / (now - started), 1)
            if first is not None and first[0] < now:
                at, processed_by_then = first
                result.first_batch_after = round(at - started, 3)
                result.seconds = round(now - at, 3)
                rest = result.processed - (processed_by_then - processed_at_start)
                result.per_second = round(rest / result.seconds, 1)
            else:  # all of it handled before a second look: only the rate from ready
                result.seconds = result.from_ready_seconds
                result.per_second = result.from_ready_per_second
        finally:
            stack.stop_service(service)
    return result


async def _drained(
    http: httpx.AsyncClient, url: str, result: Drain, processed_at_start: float, deadline: float
) -> tuple[tuple[float, float] | None, float]:
    """Polls /metrics until the backlog is handled. Returns when the first handled batch was
    seen (and how many were processed by then) and when the last was."""
    first: tuple[float, float] | None = None
    while True:
        samples = await metrics(http, url)
        now = time.monotonic()
        totals = handled(samples)
        result.handled = int(sum(totals.values()))
        result.processed = int(totals.get("processed", 0.0))
        if first is None and result.processed > processed_at_start:
            first = (now, result.processed)
        count = sample(samples, "ketenbus_batch_events_count") or 0.0
        total = sample(samples, "ketenbus_batch_events_sum") or 0.0
        result.batches = int(count)
        result.mean_batch = round(total / count, 1) if count else None
        if result.handled >= result.backlog:
            result.complete = True
            return first, now
        if now > deadline:
            return first, now
        # Often enough to see the first batch within a tenth of a 4,000 event drain.
        await asyncio.sleep(0.05)
