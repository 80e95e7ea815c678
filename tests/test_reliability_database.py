"""The database goes away under the five services and comes back: they say they are not
ready, keep trying, commit no offset past an event they could not handle, and carry on by
themselves once it is back, every effect exactly once.

The chain runs on its own Kafka and MongoDB (SecantusDB); the MongoDB process is stopped
(SIGTERM) and started again on the same port and data, while events for every service wait
on the bus. No service is restarted: what recovers, recovers on its own.
"""

from __future__ import annotations

import json
import time
from collections import Counter
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
    ReferralSubmitted,
)
from ketenbus.contracts.topics import REFERRALS, TRAJECTORIES
from ketenbus.devstack import partner_keys, stack_state
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.mongo_server import begin_mongo

from .reliability import (
    GP,
    SERVICES,
    accepted_referral,
    assigned_module,
    eventually,
    invitations_in_two_weeks,
    partner_referral,
    read_everything,
    topic_of,
    waitlisted_client,
)

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]

# Who handles what (the services' handlers): an event the service must not commit past
# while it cannot write its effect.
HANDLED_BY: dict[type[Event], set[str]] = {
    ReferralSubmitted: {"intake"},
    ReferralAccepted: {"trajectory", "analytics"},
    ModuleAssigned: {"learning", "notifications", "analytics"},
    ClientWaitlisted: {"learning", "notifications", "analytics"},
}


def events(sharing_key: bytes, each: int, first: int) -> list[Envelope[Any]]:
    """`each` events of every type handled here; referrals numbered from `first`."""
    now = datetime.now(UTC)
    made: list[Envelope[Any]] = []
    for number in range(first, first + each):
        made += [
            partner_referral(number, sharing_key, now, tag="db"),
            accepted_referral(now),
            assigned_module(now),
            waitlisted_client(now, position=1),
        ]
    return made


async def publish(
    kafka: KafkaAccess, load: list[Envelope[Any]]
) -> list[tuple[Envelope[Any], TopicPartition, int]]:
    """Each event with where it landed."""
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic_of(e), e.to_bytes(), key=e.subject.encode()) for e in load
        ]
        landed = [await future for future in sent]
    finally:
        await producer.stop()
    return [
        (e, TopicPartition(m.topic, m.partition), m.offset)
        for e, m in zip(load, landed, strict=True)
    ]


async def failed_attempts(http: httpx.AsyncClient, url: str) -> float:
    """Attempts at handling that failed: the kit's retries of an event, and the batches whose
    handling raised (as FastStream's middleware counts them), after which Kafka redelivers."""
    counters = (
        "ketenbus_handler_retries_total{",
        "faststream_received_processed_messages_exceptions_total{",
    )
    text = (await http.get(f"{url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(counters)
    )


async def readiness(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(f"{url}/readyz")
    return response.status_code, response.json()


def restart_mongo(stack: Any) -> None:
    """SecantusDB again, on the same port and data, recorded in the stack's state (so the
    stack stops this one when the test ends)."""
    state = stack_state.load(stack.home)
    assert state is not None
    component = state.components["mongo"]
    server = begin_mongo(
        stack.mongo_dir,
        stack.log_path("mongo"),
        port=component.port,
        timeout=60,
        outlive_caller=False,
    ).wait()
    component.pid, component.started = server.ref.pid, server.ref.started
    stack_state.save(stack.home, state)


async def test_services_wait_out_a_database_outage_and_recover_by_themselves(chain, tmp_path):
    stack = chain(
        SERVICES,
        isolated=True,
        timeout=120,
        log_level="WARNING",
        extra_env={"NOTIFICATION_POLICIES_FILE": str(invitations_in_two_weeks(tmp_path))},
    )
    kafka = stack.kafka
    urls = {s: stack.service_url(s) for s in SERVICES}
    key = partner_keys.key(stack.home, GP)
    http = httpx.AsyncClient(timeout=5.0)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.mongo_url, tz_aware=True, serverSelectionTimeoutMS=30_000
    )
    db = {s: mongo[stack.database_name(s)] for s in SERVICES}
    groups = {}
    for service in SERVICES:
        # Never subscribes: it only asks the group's coordinator what was committed.
        groups[service] = AIOKafkaConsumer(
            **kafka.client_options(), group_id=service, enable_auto_commit=False
        )
        await groups[service].start()

    async def handled(service: str, envelope: Envelope[Any]) -> bool:
        return await db[service].inbox.find_one({"_id": f"{service}:{envelope.id}"}) is not None

    async def all_handled(sent: list[tuple[Envelope[Any], TopicPartition, int]]) -> bool:
        for envelope, _, _ in sent:
            for service in HANDLED_BY[type(envelope.data)]:
                if not await handled(service, envelope):
                    return False
        return True

    try:
        # Before: the chain works.
        before = await publish(kafka, events(key, 5, first=0))
        await eventually(lambda: all_handled(before), "the first events", timeout=60)

        state = stack_state.load(stack.home)
        assert state is not None
        state.components["mongo"].process.stop(timeout=20)
        outage_started = time.monotonic()

        # Every service says it is not ready, and why; none of them died.
        async def none_ready() -> bool:
            for url in urls.values():
                status, checks = await readiness(http, url)
                if status != 503 or checks.get("checks", checks).get("mongodb") is not False:
                    return False
            return True

        await eventually(none_ready, "every service to report the database missing", timeout=30)
        for service, url in urls.items():
            assert (await http.get(f"{url}/healthz")).status_code == 200, service

        # Events for every service arrive meanwhile; each service tries them, and again, and
        # commits nothing past one it could not handle.
        failed_before = {s: await failed_attempts(http, urls[s]) for s in SERVICES}
        during = await publish(kafka, events(key, 10, first=5))

        async def each_tried_twice() -> bool:
            for service in SERVICES:
                if await failed_attempts(http, urls[service]) < failed_before[service] + 2:
                    return False
            return True

        await eventually(each_tried_twice, "every service to try and fail twice", timeout=90)
        for envelope, partition, offset in during:
            for service in HANDLED_BY[type(envelope.data)]:
                committed = await groups[service].committed(partition)
                assert committed is None or committed <= offset, (
                    f"{service} committed {partition} to {committed} past {envelope.type} at "
                    f"{offset} while the database was down"
                )
        for url in urls.values():
            assert (await readiness(http, url))[0] == 503
        outage = time.monotonic() - outage_started

        restart_mongo(stack)
        restarted = time.monotonic()

        # Back by themselves: ready again, and every event handled exactly once.
        async def all_ready() -> bool:
            return all([(await readiness(http, url))[0] == 200 for url in urls.values()])

        await eventually(lambda: all_handled(during), "the events of the outage", timeout=120)
        await eventually(all_ready, "every service to be ready again", timeout=60)
        recovered = time.monotonic() - restarted

        everything = before + during

        async def all_committed() -> bool:
            # An offset is committed after its batch's transaction, which the inbox shows.
            for envelope, partition, offset in everything:
                for service in HANDLED_BY[type(envelope.data)]:
                    committed = await groups[service].committed(partition)
                    if committed is None or committed <= offset:
                        return False
            return True

        await eventually(all_committed, "every group's offset past its events", timeout=60)

        def ours(event_type: type[Event]) -> list[Any]:
            return [e.data for e, _, _ in everything if type(e.data) is event_type]

        referrals = await db["intake"].referrals.find({}, projection=["referrer"]).to_list()
        assert Counter(r["referrer"]["reference"] for r in referrals) == Counter(
            d.referrer_reference for d in ours(ReferralSubmitted)
        )
        accepted = [d.referral_id for d in ours(ReferralAccepted)]
        trajectories = (
            await db["trajectory"]
            .trajectories.find({"referral_id": {"$in": accepted}}, projection=["referral_id"])
            .to_list()
        )
        assert Counter(t["referral_id"] for t in trajectories) == Counter(accepted)
        assigned = sorted(d.enrolment_id for d in ours(ModuleAssigned))
        enrolments = await db["learning"].enrolments.find({}, projection=["_id"]).to_list()
        assert sorted(e["_id"] for e in enrolments) == assigned
        watches = await db["notifications"].module_watches.find({}, projection=["_id"]).to_list()
        assert sorted(w["_id"] for w in watches) == assigned
        waitlisted = [d.client_ref for d in ours(ClientWaitlisted)]
        invited = (
            await db["notifications"]
            .reminders.find(
                {"purpose": "waitlist_invitation", "client_ref": {"$in": waitlisted}},
                projection=["client_ref"],
            )
            .to_list()
        )
        assert Counter(r["client_ref"] for r in invited) == Counter(waitlisted)
        waiting = await db["learning"].waiting.count_documents({"_id": {"$in": waitlisted}})
        assert waiting == len(waitlisted)

        # analytics: each event of these types on the bus (ours, and those intake made of
        # the referrals, once its relay published them all) counted once.
        async def intake_published() -> bool:
            return await db["intake"].outbox.count_documents({}) == 0

        await eventually(intake_published, "intake's events on the bus", timeout=60)
        records = await read_everything(kafka, [REFERRALS.name, TRAJECTORIES.name])
        on_the_bus = [json.loads(r.value) for r in records]
        counted_types = (ReferralAccepted, ModuleAssigned, ClientWaitlisted)
        ids = {
            t.event_type(): {e["id"] for e in on_the_bus if e["type"] == t.event_type()}
            for t in counted_types
        }

        async def analytics_caught_up() -> bool:
            counts = await db["analytics"].event_counts.find().to_list()
            counted = {d["_id"]: d["count"] for d in counts}
            return all(counted.get(t, 0) >= len(ids[t]) for t in ids)

        await eventually(analytics_caught_up, "analytics to count the bus", timeout=60)
        counted = {d["_id"]: d["count"] async for d in db["analytics"].event_counts.find()}
        for event_type in counted_types:
            assert counted[event_type.event_type()] == len(ids[event_type.event_type()])

        print(f"\noutage held {outage:.1f}s; recovered {recovered:.1f}s after the restart")
    finally:
        for consumer in groups.values():
            await consumer.stop()
        await mongo.close()
        await http.aclose()
