"""The rebuild projects in memory and writes in bulk: the documents must be exactly those the
live store's upserts make, erasure included; the replay must read every message, also the
last ones of a batch, and refuse a history whose beginning retention has removed."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from pymongo import AsyncMongoClient

from ketenbus.analytics.projection import FACT_COLLECTIONS
from ketenbus.analytics.rebuild import (
    HistoryIncomplete,
    ReplayBook,
    read_event,
    rebuild_into,
    replay,
)
from ketenbus.analytics.store import EVENT_COUNTS, FactStore
from ketenbus.contracts.envelope import InvalidEventData, MalformedEnvelope, decode, wrap
from ketenbus.contracts.events import (
    REGISTRY,
    AppointmentAttended,
    AppointmentScheduled,
    ClientErasureRequested,
    ContactRegistered,
    ModuleAbandoned,
    ModuleAssigned,
    ModuleCompleted,
    ModuleStepCompleted,
    PartnerOutcomeRecorded,
    PartnerReferralRecorded,
    ReferralAccepted,
    ReferralReceived,
    TrajectoryClosed,
    TrajectoryOpened,
    Urgency,
)
from ketenbus.contracts.values import StepKind, new_id
from ketenbus.devstack.kafka_access import KafkaAccess

from .anonymised import anonymous

pytestmark = pytest.mark.stack

ORG = "welzijn-utrecht"


def case(rng: random.Random, erase: bool) -> list[Any]:
    """One client's way through the chain as analytics sees it."""
    client, referral, trajectory = new_id("cl"), new_id("ref"), new_id("trj")
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(300))
    common = {"client_ref": client, "organisation_id": ORG}
    source = {"referrer_type": "gp", "topic": "psychosocial", "postcode_area": "3522"}
    ids = {**common, "trajectory_id": trajectory}
    appointment = {**ids, "appointment_id": new_id("apt"), "kind": "intake"}
    module = {**common, "enrolment_id": new_id("enr"), "module_id": "grip-op-je-geld"}
    events: list[Any] = [
        ReferralReceived(
            **common,
            **source,
            referral_id=referral,
            municipality="Utrecht",
            referrer_organisation_id="huisarts-de-linde",
            urgency=Urgency(),
            consent_id=new_id("cns"),
            received_at=at,
        ),
        ReferralAccepted(
            **common,
            **source,
            referral_id=referral,
            funder="Utrecht",
            work_type="general_social_work",
            crisis=False,
            consent_id=new_id("cns"),
            received_at=at,
            accepted_at=at,
        ),
        TrajectoryOpened(
            **ids,
            **source,
            referral_id=referral,
            funder="Utrecht",
            work_type="general_social_work",
            crisis=False,
            referred_at=at,
            opened_at=at + timedelta(hours=1),
        ),
        AppointmentScheduled(
            **appointment,
            starts_at=at + timedelta(days=3),
            duration_minutes=45,
            modality="face_to_face",
            worker_id="mw.utrecht",
            scheduled_at=at,
        ),
        AppointmentAttended(
            **appointment,
            starts_at=at + timedelta(days=3),
            modality="face_to_face",
            registered_at=at + timedelta(days=3, hours=1),
        ),
        ContactRegistered(
            **ids,
            contact_id=new_id("con"),
            channel="phone",
            minutes=rng.randrange(5, 60),
            occurred_at=at + timedelta(days=4),
        ),
        ModuleAssigned(
            **module, trajectory_id=trajectory, language="nl", assigned_at=at + timedelta(days=5)
        ),
        ModuleCompleted(**module, completed_at=at + timedelta(days=9)),
        TrajectoryClosed(
            **ids,
            referral_id=referral,
            reason="goal_reached",
            online_dossier_used=False,
            closed_at=at + timedelta(days=30),
        ),
    ]
    if erase:
        events.append(ClientErasureRequested(**common, requested_at=at + timedelta(days=40)))
    return events


def extras(client: str) -> list[Any]:
    """Events whose updates raise a maximum ($max) rather than only set fields."""
    module = {
        "enrolment_id": new_id("enr"),
        "client_ref": client,
        "organisation_id": ORG,
        "module_id": "grip-op-je-geld",
    }
    step = {"step_kind": StepKind.TEXT, "steps_total": 4}
    at = datetime(2025, 3, 1, tzinfo=UTC)
    hand_off = {
        "partner_referral_id": new_id("prf"),
        "trajectory_id": new_id("trj"),
        "client_ref": client,
        "organisation_id": ORG,
        "partner_organisation_id": "schuldhulp-midden",
    }
    return [
        ModuleStepCompleted(**module, **step, step_id="b", step_number=3, completed_at=at),
        ModuleStepCompleted(**module, **step, step_id="a", step_number=2, completed_at=at),
        ModuleAbandoned(**module, steps_completed=1, idle_since=at, abandoned_at=at),
        PartnerReferralRecorded(**hand_off, requested_at=at),
        PartnerOutcomeRecorded(**hand_off, status="accepted", recorded_at=at),
        PartnerOutcomeRecorded(**hand_off, status="running", recorded_at=at.replace(day=2)),
        PartnerOutcomeRecorded(**hand_off, status="late", recorded_at=at.replace(day=1, hour=5)),
    ]


async def test_the_in_memory_projection_writes_what_the_store_makes(mongo_url):
    rng = random.Random(3)
    events: list[Any] = []
    for number in range(30):
        events += case(rng, erase=number % 7 == 0)
    events += extras(new_id("cl"))
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    live, rebuilt = (client[f"rebuild_{uuid.uuid4().hex[:8]}"] for _ in range(2))
    try:
        store = FactStore(live)
        book = ReplayBook()
        for event in events:
            await store.project(event)
            book.project(event)
        await book.write(rebuilt)
        for name in FACT_COLLECTIONS:
            made = anonymous(await live[name].find({}).to_list())
            written = anonymous(await rebuilt[name].find({}).to_list())
            assert written == made, name
        forgotten = [e.client_ref for e in events if isinstance(e, ClientErasureRequested)]
        assert forgotten
        for name in FACT_COLLECTIONS:
            assert await rebuilt[name].count_documents({"client_ref": {"$in": forgotten}}) == 0
    finally:
        await client.drop_database(live.name)
        await client.drop_database(rebuilt.name)
        await client.close()


def test_an_erasure_read_before_the_persons_facts_still_covers_them():
    rng = random.Random(5)
    events = case(rng, erase=True)
    erasure = events.pop()  # a replay may read the clients topic before the others
    book = ReplayBook()
    book.project(erasure)
    for event in events:
        book.project(event)
    refs = {d.get("client_ref") for c in book.collections.values() for d in c.values()}
    refs.discard(None)
    assert len(refs) == 1 and next(iter(refs)).startswith("anon_")
    assert erasure.client_ref not in refs


async def topic_of_its_own(kafka: KafkaAccess) -> str:
    name = f"test.rebuild.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    return name


async def send_in_one_batch(kafka: KafkaAccess, topic: str, events: list[Any]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), linger_ms=50)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, wrap(e, source="bench").to_bytes(), partition=0)
            for e in events
        ]
        for future in pending:
            await future
    finally:
        await producer.stop()


async def test_a_replay_reads_the_last_messages_of_a_batch(kafka):
    topic = await topic_of_its_own(kafka)
    events = case(random.Random(7), erase=False)[:9]
    await send_in_one_batch(kafka, topic, events)
    seen: list[str] = []

    async def apply(envelope: Any) -> None:
        seen.append(envelope.id)

    replayed = await replay(kafka.client_options(), [topic], apply)
    assert replayed.events == len(events) == len(seen)


async def test_a_replay_refuses_a_history_whose_beginning_retention_removed(kafka):
    topic = await topic_of_its_own(kafka)
    events = case(random.Random(8), erase=False)[:5]
    await send_in_one_batch(kafka, topic, events)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:  # what retention does to old segments, here at once
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(2)})
    finally:
        await admin.close()
    seen: list[str] = []

    async def apply(envelope: Any) -> None:
        seen.append(envelope.id)

    with pytest.raises(HistoryIncomplete, match=rf"{topic}\[0\]"):
        await replay(kafka.client_options(), [topic], apply)
    assert seen == []
    replayed = await replay(kafka.client_options(), [topic], apply, allow_truncated=True)
    assert replayed.events == 3 == len(seen)


async def test_a_rebuild_counts_every_event_it_replays(kafka, mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"rebuild_{uuid.uuid4().hex[:8]}"]
    try:
        replayed = await rebuild_into(db, kafka.client_options())
        counted = sum(d["count"] for d in await db[EVENT_COUNTS].find({}).to_list())
        assert counted == replayed.events
        assert replayed.seconds >= replayed.write_seconds
    finally:
        await client.drop_database(db.name)
        await client.close()


def test_a_replay_reads_each_message_as_the_live_consumer_does():
    """The replay takes the type from the record's header to parse a message once; a header
    that is missing or does not match the body changes nothing in what is read or refused."""
    event = case(random.Random(9), erase=False)[0]
    envelope = wrap(event, source="intake")
    body = envelope.to_bytes()
    other_type = wrap(case(random.Random(9), erase=False)[1], source="intake").type

    def record(value: bytes | None, ce_type: str | None) -> Any:
        headers = [("ce_type", ce_type.encode())] if ce_type else []
        return SimpleNamespace(value=value, headers=headers)

    for ce_type in (envelope.type, None, other_type, "nl.ketenbus.nobody.Nothing.v1"):
        assert read_event(record(body, ce_type)) == decode(body, REGISTRY)
    invalid = body.replace(b'"received_at":"', b'"received_at":"not a time ')
    for ce_type in (envelope.type, None):
        with pytest.raises(InvalidEventData):
            read_event(record(invalid, ce_type))
    with pytest.raises(MalformedEnvelope, match="tombstone"):
        read_event(record(None, envelope.type))
