"""Analytics' rebuild on the data the run produced, and its projection before and after the
change from per-event upserts to an in-memory projection written in bulk."""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from benchmarks.drain import backlog, pids
from benchmarks.machine import CpuMeter
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.rebuild import ReplayBook, ends_of, every_figure
from ketenbus.analytics.store import FactStore
from ketenbus.contracts.envelope import Event, UndeliverableEvent, decode
from ketenbus.contracts.events import REGISTRY
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.kit.broker import partitions_of

_REPLAYED = re.compile(
    r"replayed (\d+) events \((\d+) repeats skipped, (\d+) unreadable\) from (\d+) partitions "
    r"in ([\d.]+)s \(([\d.]+) events/s; (\d+) documents written in ([\d.]+)s\)"
)
_TIME = re.compile(
    r"time: reading ([\d.]+)s, decoding ([\d.]+)s, projecting ([\d.]+)s, writing ([\d.]+)s"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def verify(
    stack: EmbeddedStack, mongo_pid: int | None, timeout: float = 600.0, *, in_place: bool = False
) -> dict[str, Any]:
    """`python -m ketenbus.analytics rebuild --verify` as an operator runs it (`in_place`:
    `rebuild` without --verify, the service stopped; whether its figures are right is then
    for the caller to check)."""
    meter = CpuMeter({"mongo": mongo_pid, **pids(stack, "kafka")}).start()
    cpu_before = _children_cpu()
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ketenbus.analytics",
            "rebuild",
            *([] if in_place else ["--verify"]),
        ],
        env=stack.service_environment("analytics"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.monotonic() - started
    cpu = meter.stop()
    cpu["rebuild process"] = round(_children_cpu() - cpu_before, 3)
    result: dict[str, Any] = {
        "exit_status": done.returncode,
        "agrees": "exactly the live figures" in done.stdout,
        "output": (done.stdout + done.stderr).strip()[-2000:],
        "command_seconds": round(wall, 2),
        "cpu_seconds": cpu,
    }
    match = _REPLAYED.search(done.stdout)
    if match:
        events, repeats, unreadable, partitions, seconds, rate, documents, writing = match.groups()
        result.update(
            events=int(events),
            repeats=int(repeats),
            unreadable=int(unreadable),
            partitions=int(partitions),
            seconds=float(seconds),
            per_second=float(rate),
            documents=int(documents),
            write_seconds=float(writing),
        )
    spent = _TIME.search(done.stdout)
    if spent:
        parts = ("reading", "decoding", "projecting", "writing")
        result["breakdown_seconds"] = dict(zip(parts, map(float, spent.groups()), strict=True))
    return result


async def first_events(kafka: KafkaAccess, count: int) -> list[Event]:
    """The first `count` events analytics reads, in the order a replay reads them."""
    options = kafka.client_options()
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, handlers.topics())
        ends = await ends_of(options, partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[Event] = []
        deadline = time.monotonic() + 60
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not batches and all([await consumer.position(tp) >= ends[tp] for tp in ends]):
                break
            for records in batches.values():
                for record in records:
                    try:
                        found.append(decode(record.value, REGISTRY, record.headers).data)
                    except UndeliverableEvent:
                        continue
        return found[:count]
    finally:
        await consumer.stop()


async def projection_before_after(
    kafka: KafkaAccess, mongo_url: str, mongo_pid: int | None, count: int
) -> dict[str, Any]:
    """The same events projected the old way (FactStore.project: an upsert per update, what
    the rebuild did before) and the new way (ReplayBook in memory, then bulk inserts)."""
    chosen = await first_events(kafka, count)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    old, new = (client[f"bench_projection_{uuid.uuid4().hex[:8]}"] for _ in range(2))
    try:
        meter = CpuMeter({"mongo": mongo_pid}).start()
        started = time.monotonic()
        store = FactStore(old)
        await store.ensure_indexes()
        for event in chosen:
            await store.project(event)
        before = time.monotonic() - started
        before_cpu = meter.stop()

        meter = CpuMeter({"mongo": mongo_pid}).start()
        started = time.monotonic()
        book = ReplayBook()
        for event in chosen:
            book.project(event)
        documents = await book.write(new)
        await FactStore(new).ensure_indexes()
        after = time.monotonic() - started
        after_cpu = meter.stop()
    finally:
        await client.drop_database(old.name)
        await client.drop_database(new.name)
        await client.close()
    return {
        "events": len(chosen),
        "documents": documents,
        "before_seconds": round(before, 3),
        "before_per_second": round(len(chosen) / before, 1) if before else None,
        "before_mongo_cpu_seconds": before_cpu.get("mongo"),
        "after_seconds": round(after, 3),
        "after_per_second": round(len(chosen) / after, 1) if after else None,
        "after_mongo_cpu_seconds": after_cpu.get("mongo"),
    }


def analytics_database(stack: EmbeddedStack) -> str:
    return stack.service_environment("analytics").get("MONGODB_DATABASE") or "ketenbus_analytics"


async def figures_of(mongo_url: str, database: str) -> dict[str, Any]:
    """Every figure of every organisation in analytics' database, as --verify compares them."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        return await every_figure(client[database])
    finally:
        await client.close()


async def reference_figures(mongo_url: str, chosen: list[Event]) -> dict[str, Any]:
    """The figures of these events projected in this process, in the order they were made:
    what a rebuild of the topics that hold exactly them must show."""
    book = ReplayBook()
    for event in chosen:
        book.project(event)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    scratch = client[f"bench_reference_{uuid.uuid4().hex[:8]}"]
    try:
        await book.write(scratch)
        return await every_figure(scratch)
    finally:
        await client.drop_database(scratch.name)
        await client.close()


async def wait_caught_up(kafka: KafkaAccess, group: str, topics: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await backlog(kafka, group, topics) == 0:
            return True
        await asyncio.sleep(1.0)
    return False
