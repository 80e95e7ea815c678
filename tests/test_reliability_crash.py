"""A load through the five services, disturbed in the middle, then every effect exactly once,
nothing lost:
- all five services killed with SIGKILL and restarted, under 10,000 events;
- one Kafka broker of three killed with SIGKILL and restarted, under 4,000 events
  (replication factor 3, min.insync.replicas 2: acknowledged writes survive, and writes go on
  with two brokers); the services are not restarted: they recover by themselves;
- every service run as two replicas in one consumer group, and one replica of each killed
  with SIGKILL and not restarted, under 4,000 events: once the group misses it
  (CONSUMER_SESSION_TIMEOUT_MS) the other replica takes its partitions over, and redoes what
  it had not committed.

The load is what each service consumes, published as its owner would (the contracts package
on a plain Kafka producer): a GP's referrals on its inbound topic for intake, accepted
referrals for trajectory, assigned modules for learning and notifications, waitlisted clients
for notifications and learning; analytics reads all of it and everything the services publish
in turn. Each service is killed as soon as its first batch is committed, all five within
moments of each other: a process killed inside a Mongo transaction leaves it open, with its
write locks, for SecantusDB's transaction lifetime (60 s), and the restarted services wait
out those orphans in parallel instead of one after the other.

The effects counted, each of which a second handling of one event would double or a lost
event would leave short:
- intake: one referral per partner reference (and the events it publishes for it);
- trajectory: one trajectory per accepted referral on the bus (and one TrajectoryOpened);
- learning: one enrolment per ModuleAssigned, one waiting-list entry per waitlisted client;
- notifications: one invitation reminder per ClientWaitlisted (a random id each, so a
  repeat would add a second), one module watch per ModuleAssigned;
- analytics: its per-type event counters ($inc per handled event) equal the distinct event
  ids of that type on the topics it reads.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import Envelope, Event
from ketenbus.contracts.events import (
    ClientWaitlisted,
    ModuleAssigned,
    ReferralAccepted,
    ReferralReceived,
    TrajectoryOpened,
)
from ketenbus.contracts.topics import partner_inbound
from ketenbus.devstack import partner_keys
from ketenbus.devstack.access import KAFKA_PARTNERS
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import partitions_of

from .reliability import (
    GP,
    SERVICES,
    accepted_referral,
    assigned_module,
    eventually,
    invitations_in_two_weeks,
    partition_counts,
    partitions_held,
    partner_referral,
    read_everything,
    topic_of,
    waitlisted_client,
)

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]


@dataclass(frozen=True)
class Load:
    """How many events of each kind. A partner's referral costs intake the most (and sets off
    events of its own); every event, and everything the services publish in turn, goes
    through analytics."""

    submitted: int  # intake
    accepted: int  # trajectory
    assigned: int  # learning, notifications
    waitlisted: int  # notifications, learning

    @property
    def total(self) -> int:
        return self.submitted + self.accepted + self.assigned + self.waitlisted


# Every service killed: the 10,000 events the reliability requirement names.
FULL = Load(submitted=250, accepted=3_250, assigned=3_250, waitlisted=3_250)
assert FULL.total == 10_000
# A broker or one replica of each service lost: what is tested is the hand-over, which a
# smaller load shows as well; with three brokers or ten services on two cores the full load
# would take the suite a quarter of an hour. Intake's part is more than two replicas' first
# batches (100 events each) can hold: a replica is killed after its service's first batch,
# and intake, which reads a batch ahead, took all of 100 in one (seen once in CI).
SMALL = Load(submitted=300, accepted=1_300, assigned=1_300, waitlisted=1_300)

# Events the chain handles while one broker of three is away.
WITHOUT_A_BROKER = 1_000

PARTNER_INBOUND = [partner_inbound(p).name for p in KAFKA_PARTNERS]
# The apps of these two subscribe to every partner's inbound topic (see their app.py).
PARTNER_READERS = {"intake", "trajectory"}


def topics_read_by(service: str) -> list[str]:
    handlers = importlib.import_module(f"ketenbus.{service}.handlers").handlers
    read = {e.stream.name for e in handlers.handlers if e.stream is not None}
    return sorted(read | (set(PARTNER_INBOUND) if service in PARTNER_READERS else set()))


READS = {service: topics_read_by(service) for service in SERVICES}
ANALYTICS_TOPICS = READS["analytics"]
ALL_READ = sorted({topic for topics in READS.values() for topic in topics})


def the_load(size: Load, sharing_key: bytes) -> list[Envelope[Any]]:
    """Interleaved, so every service has work from the first moment to the last."""
    now = datetime.now(UTC)
    streams = [
        [partner_referral(n, sharing_key, now) for n in range(size.submitted)],
        [accepted_referral(now) for _ in range(size.accepted)],
        [assigned_module(now) for _ in range(size.assigned)],
        [waitlisted_client(now, n + 1) for n in range(size.waitlisted)],
    ]
    load: list[Envelope[Any]] = []
    while any(streams):
        for stream in streams:
            share = max(1, len(stream) // 20)
            load.extend(stream[:share])
            del stream[:share]
    assert len(load) == size.total
    return load


async def publish(kafka: KafkaAccess, load: list[Envelope[Any]]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic_of(e), e.to_bytes(), key=e.subject.encode()) for e in load
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class Bus:
    """What the consumer groups have committed, against where the topics end."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.groups: dict[str, AIOKafkaConsumer] = {}
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        for service in SERVICES:
            # Never subscribes: it only asks the group's coordinator what was committed.
            consumer = AIOKafkaConsumer(
                **self.kafka.client_options(), group_id=service, enable_auto_commit=False
            )
            await consumer.start()
            self.groups[service] = consumer
        any_consumer = self.groups[SERVICES[0]]
        for service in SERVICES:
            self.partitions[service] = await partitions_of(any_consumer, READS[service])
            assert self.partitions[service], service

    async def stop(self) -> None:
        for consumer in self.groups.values():
            await consumer.stop()

    async def ends(self) -> dict[TopicPartition, int]:
        every = sorted({tp for tps in self.partitions.values() for tp in tps})
        return await self.groups[SERVICES[0]].end_offsets(every)

    async def behind(self, service: str, ends: dict[TopicPartition, int]) -> int:
        """Records on the topics the service reads that its group has not committed past."""
        consumer = self.groups[service]
        lag = 0
        for tp in self.partitions[service]:
            committed = await consumer.committed(tp)
            lag += max(ends[tp] - (committed or 0), 0)
        return lag


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def kill_every_service_mid_load(stack: Any, db: dict[str, Any]) -> dict[str, int]:
    """Kill each service the moment its first batch is committed (its inbox holds its
    handled events), so that every one dies in the middle of its share of the load; start
    them again once the load is published. Returns each one's handled events at its death."""
    return await kill_each_at_its_first_batch(stack, db, lambda service: service)


async def kill_each_at_its_first_batch(
    stack: Any, db: dict[str, Any], process_of: Callable[[str], str]
) -> dict[str, int]:
    """SIGKILL `process_of(service)` for every service the moment the service's first batch
    is committed (its inbox holds handled events); each one's handled events at the kill."""
    handled_at_kill: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(handled_at_kill) < len(SERVICES):
        assert time.monotonic() < deadline, f"only {sorted(handled_at_kill)} got to work"
        for service in SERVICES:
            if service in handled_at_kill:
                continue
            if await db[service].inbox.count_documents({}) > 0:
                stack.kill_service(process_of(service))
                handled_at_kill[service] = await db[service].inbox.count_documents({})
        await asyncio.sleep(0.01)
    return handled_at_kill


async def kill_a_broker_mid_load(stack: Any, db: dict[str, Any]) -> dict[str, int]:
    """SIGKILL one broker of three once every service is at work, and start it again when
    the chain has handled a good part of the load without it: two in-sync replicas remain,
    so writes with acks=all go on meanwhile."""
    handled: dict[str, int] = {}

    async def all_at_work() -> bool:
        handled.update({s: await db[s].inbox.count_documents({}) for s in SERVICES})
        return all(handled.values())

    await eventually(all_at_work, "every service to handle its first batch", timeout=60)
    stack.kill_broker(2)

    async def went_on_without_it() -> bool:
        now = [await db[s].inbox.count_documents({}) for s in SERVICES]
        return sum(now) >= sum(handled.values()) + WITHOUT_A_BROKER

    await eventually(went_on_without_it, "the chain to go on with two brokers", timeout=300)
    # A restarted node replays its log while the chain keeps two cores busy: a 2-core CI
    # machine took more than the 90 s a broker gets at the stack's first start.
    await asyncio.to_thread(stack.start_broker, 2, timeout=240)
    return handled


async def spread_over_both_replicas(stack: Any) -> None:
    """Before the load: both replicas of every service hold partitions (each consumer group
    spread them). Waited for while the load runs, the services could be through it first."""

    async def spread() -> bool:
        for service in SERVICES:
            for replica in stack.service_urls(service):
                if not await partitions_held(replica):
                    return False
        return True

    await eventually(spread, "both replicas of every service to hold partitions", timeout=60)


async def kill_one_replica_of_each_mid_load(stack: Any, db: dict[str, Any]) -> dict[str, int]:
    """Two replicas of every service, one consumer group each, their partitions spread
    (`spread_over_both_replicas`): SIGKILL the second replica of each service the moment the
    service's first batch is committed; then wait until the first replica holds every
    partition (the group missed the dead one for a session timeout and gave its partitions
    to the other)."""
    handled_at_kill = await kill_each_at_its_first_batch(stack, db, lambda s: f"{s}-2")

    partitions = await partition_counts(stack.kafka, {s: READS[s] for s in SERVICES})

    async def taken_over() -> bool:
        for service in SERVICES:
            if len(await partitions_held(stack.service_url(service))) != partitions[service]:
                return False
        return True

    await eventually(taken_over, "the first replicas to hold every partition", timeout=180)
    return handled_at_kill


async def run_the_load(
    stack: Any,
    disturb: Callable[[Any, dict[str, Any]], Awaitable[dict[str, int]]],
    *,
    size: Load,
    restart_services: bool,
) -> None:
    """The load through the five services, disturbed by `disturb` while they work; then
    every effect once, nothing lost, every service ready."""
    kafka = stack.kafka
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    db = {service: mongo[stack.database_name(service)] for service in SERVICES}
    bus = Bus(kafka)
    await bus.start()
    try:
        load = the_load(size, partner_keys.key(stack.home, GP))
        started = time.monotonic()
        publishing = asyncio.create_task(publish(kafka, load))

        handled_at_kill = await disturb(stack, db)
        killed_after = time.monotonic() - started
        await publishing
        if restart_services:
            for service in SERVICES:
                stack.restart_service(service)  # with the environment it had

        # Quiet: the outboxes are empty and every group has committed to the end, twice in a
        # row with the same ends (so nothing published in between).
        previous: dict[TopicPartition, int] | None = None

        async def quiet() -> bool:
            nonlocal previous
            for service in SERVICES:
                if await db[service].outbox.count_documents({}) > 0:
                    return False
            ends = await bus.ends()
            for service in SERVICES:
                if await bus.behind(service, ends) > 0:
                    return False
            stable, previous = ends == previous, ends
            return stable

        await eventually(quiet, "the chain to process the whole load", timeout=600, every=0.5)
        recovered_after = time.monotonic() - started
        for service in SERVICES:
            assert await ready(stack.service_url(service)), f"{service} did not recover"

        records = await read_everything(kafka, ALL_READ)
        envelopes = [json.loads(r.value) for r in records]
        distinct: dict[str, dict[str, dict[str, Any]]] = {}
        for envelope in envelopes:
            distinct.setdefault(envelope["type"], {})[envelope["id"]] = envelope["data"]
        ids_of = {t: set(events) for t, events in distinct.items()}

        def of(event: type[Event]) -> list[dict[str, Any]]:
            return list(distinct.get(event.event_type(), {}).values())

        # The load is all there, and each service did its part of it (not killed too late).
        for envelope in load:
            assert envelope.id in ids_of[envelope.type]
        handled_at_end = {s: await db[s].inbox.count_documents({}) for s in SERVICES}
        for service in SERVICES:
            assert 0 < handled_at_kill[service] < handled_at_end[service], (
                f"{service} was disturbed after {handled_at_kill[service]} of "
                f"{handled_at_end[service]} events: not in the middle of its load"
            )

        # intake: every partner referral once.
        referrals = await db["intake"].referrals.find({}, projection=["referrer"]).to_list()
        references = Counter(r["referrer"]["reference"] for r in referrals)
        assert len(referrals) == size.submitted
        assert set(references.values()) == {1}
        received = Counter(d["referral_id"] for d in of(ReferralReceived))
        assert received == Counter(r["_id"] for r in referrals)

        # trajectory: one trajectory per accepted referral, announced once.
        accepted = {d["referral_id"] for d in of(ReferralAccepted)}
        assert len(accepted) > size.accepted  # ours, and those intake accepted
        trajectories = (
            await db["trajectory"].trajectories.find({}, projection=["referral_id"]).to_list()
        )
        assert Counter(t["referral_id"] for t in trajectories) == Counter(accepted)
        opened = Counter(d["referral_id"] for d in of(TrajectoryOpened))
        assert opened == Counter(accepted)

        # learning: an enrolment per assigned module, a place on the waiting list per client.
        assigned = {d["enrolment_id"] for d in of(ModuleAssigned)}
        waiting = [d["client_ref"] for d in of(ClientWaitlisted)]
        assert len(assigned) == size.assigned and len(waiting) > size.waitlisted
        enrolments = await db["learning"].enrolments.find({}, projection=["_id"]).to_list()
        assert sorted(e["_id"] for e in enrolments) == sorted(assigned)
        assert await db["learning"].waiting.count_documents({}) == len(set(waiting))

        # notifications: one invitation per waitlisted client, one watch per module.
        invitations = (
            await db["notifications"]
            .reminders.find({"purpose": "waitlist_invitation"}, projection=["client_ref"])
            .to_list()
        )
        assert Counter(r["client_ref"] for r in invitations) == Counter(waiting)
        watches = await db["notifications"].module_watches.find({}, projection=["_id"]).to_list()
        assert sorted(w["_id"] for w in watches) == sorted(assigned)

        # analytics: every event on its topics counted once.
        counted = {d["_id"]: d["count"] async for d in db["analytics"].event_counts.find()}
        on_its_topics: dict[str, set[str]] = {}
        for record, envelope in zip(records, envelopes, strict=True):
            if record.topic in ANALYTICS_TOPICS:
                on_its_topics.setdefault(envelope["type"], set()).add(envelope["id"])
        expected = {event_type: len(ids) for event_type, ids in on_its_topics.items()}
        assert counted == expected
        assert sum(counted.values()) > size.total - size.submitted

        print(
            f"\nkilled after {killed_after:.1f}s at {handled_at_kill}; "
            f"quiet after {recovered_after:.1f}s; end {handled_at_end}; "
            f"{len(records)} records on the bus"
        )
    finally:
        await bus.stop()
        await mongo.close()


def the_chain(
    chain: Any, tmp_path: Any, session_timeout_ms: int | None = None, **options: Any
) -> Any:
    environment = {"NOTIFICATION_POLICIES_FILE": str(invitations_in_two_weeks(tmp_path))}
    if session_timeout_ms is not None:
        environment["CONSUMER_SESSION_TIMEOUT_MS"] = str(session_timeout_ms)
    return chain(
        SERVICES, isolated=True, timeout=120, log_level="WARNING", extra_env=environment, **options
    )


# Well under this on an idle machine; the margin is for a machine shared with other work.
@pytest.mark.timeout(900)
async def test_every_service_killed_mid_load_and_restarted_ends_with_every_effect_once(
    chain, tmp_path
):
    stack = the_chain(chain, tmp_path)
    await run_the_load(stack, kill_every_service_mid_load, size=FULL, restart_services=True)


@pytest.mark.timeout(900)
async def test_one_broker_of_three_killed_mid_load_and_restarted_loses_and_doubles_nothing(
    chain, tmp_path
):
    stack = the_chain(chain, tmp_path, brokers=3)
    await run_the_load(stack, kill_a_broker_mid_load, size=SMALL, restart_services=False)


@pytest.mark.timeout(900)
async def test_one_replica_of_each_service_killed_mid_load_hands_over_and_loses_and_doubles_nothing(
    chain, tmp_path
):
    # A dead replica is missed after 6 s (Kafka's least), not the kit's default 10 s.
    stack = the_chain(chain, tmp_path, replicas=2, session_timeout_ms=6_000)
    await spread_over_both_replicas(stack)
    await run_the_load(stack, kill_one_replica_of_each_mid_load, size=SMALL, restart_services=False)
