"""Load through the front doors, and the chain's end-to-end latency.

Referral latency: from the moment the POST /v1/referrals is sent to the moment the
TrajectoryOpened event of that referral reaches a consumer of the benchmark on the
trajectories topic. Appointment latency: from the POST of an appointment to the first
ReminderScheduled of that appointment on the deliveries topic. Both on one clock
(time.monotonic in this process). Requests go out on a fixed schedule (open loop), so a slow
answer does not hold back the next request and the latency includes any queueing.

At most IN_FLIGHT requests are open at once, each on a connection of its own that is kept
alive; the rest wait their turn here (and that wait counts in their latency). The requests go
out through the benchmark's own small HTTP client (benchmarks/load_client.py): the load
shares the two cores with the chain it measures, and through httpx (whose pool, at every
request, checks each of its connections) it took a tenth of them at 100 requests/s.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks import events
from benchmarks.load_client import Answer, LoadClient, LoadError
from ketenbus.contracts.events import ReminderScheduled, TrajectoryOpened
from ketenbus.contracts.topics import DELIVERIES, TRAJECTORIES
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import partitions_of

OPENED = TrajectoryOpened.event_type()
REMINDED = ReminderScheduled.event_type()
REFERRER = "huisarts-de-linde"
IN_FLIGHT = 64  # requests under way at most, each on a connection of its own


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-share * len(ordered) // 1)))  # ceil
    return ordered[min(rank, len(ordered)) - 1]


def summary(latencies: list[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies) if latencies else None),
    }


class Watcher:
    """Reads the trajectories and deliveries topics from their current end, by assignment
    (no group to join), and notes when each TrajectoryOpened and ReminderScheduled arrives."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.opened: dict[str, tuple[float, dict[str, Any]]] = {}
        self.reminded: dict[str, float] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The broker answers a fetch as soon as a record arrives, so the fetch wait adds no
        # lag to what this consumer measures.
        self.consumer = AIOKafkaConsumer(**self.kafka.client_options(), group_id=None)
        await self.consumer.start()
        # Asked of the broker: a consumer with no subscription knows no topic yet.
        partitions = await partitions_of(self.consumer, (TRAJECTORIES.name, DELIVERIES.name))
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.consumer is not None
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    self._note(record.value, now)

    def _note(self, value: bytes, now: float) -> None:
        if OPENED.encode() not in value and REMINDED.encode() not in value:
            return
        envelope = json.loads(value)
        data = envelope["data"]
        if envelope["type"] == OPENED:
            self.opened.setdefault(data["referral_id"], (now, data))
        elif envelope["type"] == REMINDED and data.get("appointment_id"):
            self.reminded.setdefault(data["appointment_id"], now)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()


@dataclass
class Sent:
    scheduled: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    key: str | None = None  # referral_id or appointment_id
    error: str | None = None


@dataclass
class Stage:
    flow: str
    rate: float
    seconds: float
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    arrived: int = 0
    missing: int = 0
    achieved_rate: float = 0.0
    completed_rate: float = 0.0
    send_lag_p99_ms: float | None = None
    answer: dict[str, float | None] = field(default_factory=dict)
    latency: dict[str, float | None] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exploded(self) -> bool:
        """Past saturation: errors, lost work, or a p99 beyond 5 s."""
        p99 = self.latency.get("p99_ms")
        return (
            self.errors > 0.01 * max(self.sent, 1)
            or self.missing > 0.01 * max(self.accepted, 1)
            or p99 is None
            or p99 > 5_000
        )


async def _open_loop(
    rate: float,
    seconds: float,
    request: Callable[[int], Any],
    key_of: Callable[[Answer], str],
) -> list[Sent]:
    count = max(1, int(rate * seconds))
    start = time.monotonic() + 0.05
    sent: list[Sent] = []
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def one(number: int, at: float) -> None:
        item = Sent(scheduled=at)
        sent.append(item)
        item.sent = time.monotonic()
        try:
            async with in_flight:
                response = await request(number)
            item.answered = time.monotonic()
            item.status = response.status_code
            if response.status_code < 300:
                item.key = key_of(response)
            else:
                item.error = f"HTTP {response.status_code}"
        except LoadError as error:
            item.answered = time.monotonic()
            item.error = str(error)  # what went wrong: the cause's name

    tasks = []
    for number in range(count):
        at = start + number / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, at)))
    await asyncio.gather(*tasks)
    return sent


def _stage(flow: str, rate: float, seconds: float, sent: list[Sent]) -> Stage:
    stage = Stage(flow, rate, seconds, sent=len(sent))
    for item in sent:
        if item.key:
            stage.accepted += 1
        else:
            stage.errors += 1
            kind = item.error or "no id"
            stage.error_kinds[kind] = stage.error_kinds.get(kind, 0) + 1
    if sent:
        first = min(s.sent for s in sent)
        last = max(s.sent for s in sent)
        stage.achieved_rate = round((len(sent) - 1) / (last - first), 1) if last > first else 0.0
        stage.send_lag_p99_ms = round(
            (percentile([s.sent - s.scheduled for s in sent], 0.99) or 0) * 1000, 1
        )
        stage.answer = summary([s.answered - s.sent for s in sent if s.answered])
    return stage


async def _await_arrivals(
    sent: list[Sent], arrived: Callable[[str], float | None], grace: float
) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if all(arrived(s.key) is not None for s in sent if s.key):
            return
        await asyncio.sleep(0.1)


def _latencies(stage: Stage, sent: list[Sent], arrived: Callable[[str], float | None]) -> None:
    latencies, last = [], 0.0
    for item in sent:
        if not item.key:
            continue
        at = arrived(item.key)
        if at is None:
            stage.missing += 1
            continue
        latencies.append(at - item.sent)
        last = max(last, at)
    stage.arrived = len(latencies)
    stage.latency = summary(latencies)
    if latencies:
        first = min(s.sent for s in sent)
        stage.completed_rate = round(len(latencies) / (last - first), 1)


async def referral_stage(
    http: LoadClient,
    intake_url: str,
    token: str,
    watcher: Watcher,
    rate: float,
    seconds: float,
    numbers: Any,
    grace: float = 30.0,
) -> tuple[Stage, list[str]]:
    """`rate` referrals a second for `seconds`; returns the stage and the referral ids."""
    rng = random.Random(int(rate * 1000))
    headers = {"Authorization": f"Bearer {token}"}

    def request(_: int) -> Any:
        body = events.referral_body(rng, next(numbers))
        return http.post(f"{intake_url}/v1/referrals", json=body, headers=headers)

    sent = await _open_loop(rate, seconds, request, lambda r: r.json()["referral_id"])
    stage = _stage("referral -> TrajectoryOpened", rate, seconds, sent)

    def arrived(referral_id: str) -> float | None:
        found = watcher.opened.get(referral_id)
        return found[0] if found else None

    await _await_arrivals(sent, arrived, grace)
    _latencies(stage, sent, arrived)
    return stage, [s.key for s in sent if s.key]


async def appointment_stage(
    http: LoadClient,
    trajectory_url: str,
    tokens: Callable[[str], str],
    watcher: Watcher,
    trajectories: list[tuple[str, str]],
    rate: float,
    seconds: float,
    grace: float = 30.0,
) -> Stage:
    """`rate` appointments a second, each on its own trajectory (id, organisation)."""
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = {"starts_at": starts.isoformat(), "kind": "follow_up", "duration_minutes": 45}

    def request(number: int) -> Any:
        trajectory, organisation = trajectories[number % len(trajectories)]
        return http.post(
            f"{trajectory_url}/v1/trajectories/{trajectory}/appointments",
            json=body,
            headers={"Authorization": f"Bearer {tokens(organisation)}"},
        )

    sent = await _open_loop(rate, seconds, request, lambda r: r.json()["appointment_id"])
    stage = _stage("appointment -> ReminderScheduled", rate, seconds, sent)
    await _await_arrivals(sent, watcher.reminded.get, grace)
    _latencies(stage, sent, watcher.reminded.get)
    return stage


async def front_door_rate(
    http: LoadClient,
    intake_url: str,
    token: str,
    count: int,
    concurrency: int,
    numbers: Any,
) -> dict[str, Any]:
    """Intake's HTTP front door alone: `count` referrals by `concurrency` callers that each
    send the next as soon as the last is answered (closed loop)."""
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {token}"}
    answers: list[float] = []
    failures: dict[str, int] = {}
    queue = list(range(count))

    async def caller() -> None:
        while queue:
            queue.pop()
            body = events.referral_body(rng, next(numbers))
            sent = time.monotonic()
            try:
                response = await http.post(f"{intake_url}/v1/referrals", json=body, headers=headers)
                kind = None if response.status_code < 300 else f"HTTP {response.status_code}"
            except LoadError as error:
                kind = str(error)
            if kind:
                failures[kind] = failures.get(kind, 0) + 1
            else:
                answers.append(time.monotonic() - sent)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.monotonic() - started
    return {
        "referrals": count,
        "concurrency": concurrency,
        "created": len(answers),
        "failures": failures,
        "seconds": round(seconds, 2),
        "per_second": round(len(answers) / seconds, 1),
        "answer": summary(answers),
    }
