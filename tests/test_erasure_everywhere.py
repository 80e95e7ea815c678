"""After an erasure, no store and no topic of the chain returns the person.

The five services run as real processes on their own Apache Kafka and SecantusDB. A
resident is referred with consent for reminders and debt counselling; the worker plans an
appointment (with the resident's name in its goal), assigns a module, hands off to the debt
partner; the resident hands in homework that names them; and one of their events goes to a
dead-letter topic, beside another client's dead letter and an unreadable one that names the
resident's reference. Then the resident asks to be forgotten. Every document of every
collection of every service's database and every record of every topic (the streams, the
dead-letter topics, the partners' topics) is then read as text and searched for the name and
its parts, the e-mail address, the phone number in three spellings, the date of birth in
four and the postcode in three. None may be there. The client reference may remain only
where docs/security.md says so ("What is forgotten when"): the sealed contact cards for
notifications and for the debt partner are gone from the compacted contacts topic once
compaction ran (trajectory's copy of the partner's card is gone from its store), and the one
sealed copy left is the contact the hand-off gave the partner, on its outbound topic; on a
dead-letter topic trajectory purged the resident's letters, while the other client's letter
stayed, and is still replayed and handled; a letter about the resident put aside after the
erasure is purged as well.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import Event, wrap
from ketenbus.contracts.events import ConsentGranted
from ketenbus.contracts.events.intake import partner_card
from ketenbus.contracts.topics import CLIENTS, dead_letter_topic
from ketenbus.contracts.values import ConsentGiver, ConsentPurpose
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.devstack.stack import SERVICES, EmbeddedStack
from ketenbus.kit import deadletters
from ketenbus.kit.dead_letter_purges import PURGES
from ketenbus.kit.outbox import headers_of

from . import contacts_topic
from .reliability import read_everything

pytestmark = [pytest.mark.stack, pytest.mark.chain]

GP, ORG, DEBT = "huisarts-de-linde", "welzijn-utrecht", "schuldhulp-midden"
RESIDENT = {
    "name": "Wilhelmina Zuiderduin",
    "date_of_birth": "1961-08-23",
    "postcode": "3523 QX",
    "phone": "06-73928461",
    "email": "w.zuiderduin@example.org",
    "language": "nl",
    "preferred_channel": "email",
}
ERASURE = "nl.ketenbus.intake.ClientErasureRequested.v1"
# Where the client reference stays after the erasure, as docs/security.md says: intake's own
# records of the client (whose details are ciphertext under a shredded key), its referral and
# its consents, trajectory's trajectory (dates, durations and channels only: what counts),
# and the topics, where every event about the person is keyed by it, until retention.
REFERENCE_STAYS_IN = {
    ("intake", "clients"),
    ("intake", "consents"),
    ("intake", "referrals"),
    ("trajectory", "trajectories"),
}


def traces(who: dict[str, str]) -> dict[str, re.Pattern[str]]:
    """The person in plaintext, in the spellings a store or a message could hold them."""
    year, month, day = who["date_of_birth"].split("-")
    digits, letters = who["postcode"].split()
    local = who["phone"].replace("-", "")
    spellings = {
        "name": [who["name"], *who["name"].split()],
        "e-mail": [who["email"]],
        "phone": [who["phone"], local, "+31" + local[1:]],
        "date of birth": [
            f"{year}-{month}-{day}",
            f"{day}-{month}-{year}",
            f"{day}{month}{year}",
            f"{year}{month}{day}",
        ],
        "postcode": [f"{digits} {letters}", f"{digits}{letters}", f"{digits}-{letters}"],
    }
    return {
        what: re.compile("|".join(re.escape(s) for s in found), re.IGNORECASE)
        for what, found in spellings.items()
    }


@dataclass(frozen=True)
class Finding:
    place: tuple[str, str]  # (service, collection) or ("topic", name)
    what: str


async def every_document(stack: EmbeddedStack) -> list[tuple[tuple[str, str], str]]:
    """Every document of every collection of every service's database, as text."""
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    found = []
    try:
        for service in SERVICES:
            database = mongo[stack.database_name(service)]
            for collection in await database.list_collection_names():
                async for document in database[collection].find():
                    found.append(((service, collection), json.dumps(document, default=str)))
    finally:
        await mongo.close()
    return found


async def every_record(stack: EmbeddedStack) -> list[tuple[tuple[str, str], str]]:
    """Every record of every topic (streams, dead letters, partners), key, value and headers,
    as text."""
    consumer = AIOKafkaConsumer(**stack.kafka.client_options())
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("__"))
    finally:
        await consumer.stop()
    assert any(t.endswith(".dlq") for t in topics) and any(".partners." in t for t in topics)
    found = []
    for record in await read_everything(stack.kafka, topics):
        parts = [record.key or b"", record.value or b""]
        parts += [name.encode() + b"=" + value for name, value in record.headers]
        text = b"\n".join(parts).decode("utf-8", errors="replace")
        found.append((("topic", record.topic), text))
    return found


def findings(
    texts: list[tuple[tuple[str, str], str]], patterns: dict[str, re.Pattern[str]]
) -> set[Finding]:
    return {
        Finding(place, what)
        for place, text in texts
        for what, pattern in patterns.items()
        if pattern.search(text)
    }


async def dlq_ends(stack: EmbeddedStack) -> dict[Any, int]:
    """The end offset of each partition of the clients DLQ."""
    async with deadletters.Purging(stack.kafka.client_options()) as reading:
        return await reading.ends(await reading.partitions([CLIENTS.name]))


async def purges_done(stack: EmbeddedStack) -> bool:
    """Trajectory, the purger, has no purge of dead letters waiting (and asked for one)."""
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    try:
        database = mongo[stack.database_name("trajectory")]
        asked = PURGES in await database.list_collection_names()
        return asked and await database[PURGES].count_documents({}) == 0
    finally:
        await mongo.close()


async def handled(client: ChainClient, service: str, event_type: str) -> int:
    """How many events of a type the service has processed (its /metrics)."""
    pattern = re.compile(
        rf'^ketenbus_events_handled_total\{{event_type="{re.escape(event_type)}",'
        r'outcome="processed"\} (\S+)$',
        re.MULTILINE,
    )
    found = pattern.search(await client.metrics(service))
    return int(float(found.group(1))) if found else 0


async def dead_letter_of(stack: EmbeddedStack, client_ref: str) -> None:
    """One of the person's events as a version no consumer knows: the consumers that handle
    its type dead-letter it, so a copy of it sits on the clients topic's DLQ."""
    await unreadable_copy_of(stack, client_ref)

    async def dead_lettered() -> bool:
        letters = await read_everything(stack.kafka, [f"{CLIENTS.name}.dlq"])
        return any(r.key == client_ref.encode() for r in letters)

    await eventually(dead_lettered, "the person's dead letter on the clients DLQ")


def readers_of(event: type[Event]) -> int:
    """How many services handle the event (each dead-letters a version of it it cannot read)."""
    return sum(
        event in import_module(f"ketenbus.{service}.handlers").handlers.handlers
        for service in SERVICES
    )


async def unreadable_copy_of(stack: EmbeddedStack, client_ref: str) -> None:
    """One of the person's events (their consent) on the clients topic again, as a version no
    one reads."""
    records = await read_everything(stack.kafka, [CLIENTS.name])
    shared = next(
        r for r in records if r.key == client_ref.encode() and b"ConsentGranted.v1" in r.value
    )
    producer = AIOKafkaProducer(**stack.kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(
            CLIENTS.name,
            shared.value.replace(b"ConsentGranted.v1", b"ConsentGranted.v9"),
            key=shared.key,
            headers=[
                (name, value.replace(b"ConsentGranted.v1", b"ConsentGranted.v9"))
                for name, value in shared.headers
            ],
        )
    finally:
        await producer.stop()


async def letters_beside(stack: EmbeddedStack, client_ref: str) -> tuple[int, Any]:
    """Beside the person's dead letter, on its partition of the clients DLQ: another client's
    event as a consumer puts it aside (it must stay, and replay), and an unreadable letter
    under another key whose bytes name the person's reference (it must go). Returns the
    partition and the other client's event."""
    dlq = dead_letter_topic(CLIENTS.name)
    [partition] = {
        r.partition
        for r in await read_everything(stack.kafka, [dlq])
        if r.key == client_ref.encode()
    }
    other = wrap(
        ConsentGranted(
            consent_id=f"cns_{uuid.uuid4().hex}",
            client_ref=f"cl_{uuid.uuid4().hex}",
            organisation_id=ORG,
            given_by=ConsentGiver.CLIENT,
            partner_organisation_id=GP,
            purpose=ConsentPurpose.REFERRAL_FEEDBACK,
            granted_at=datetime.now(UTC),
        ),
        source="intake",
    )
    producer = AIOKafkaProducer(**stack.kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq,
            other.to_bytes(),
            key=other.subject.encode(),
            partition=partition,
            headers=[
                *((k, v.encode()) for k, v in headers_of(other).items()),
                ("x-dlq-reason", b"InvalidEventData: before the fix"),
                ("x-dlq-consumer", b"analytics"),
                ("x-dlq-source", f"{CLIENTS.name}/{partition}/999999".encode()),
            ],
        )
        await producer.send_and_wait(
            dlq,
            b"\xff not an envelope, about " + client_ref.encode(),
            key=b"unreadable",
            partition=partition,
            headers=[
                ("x-dlq-reason", b"MalformedEnvelope: not JSON"),
                ("x-dlq-consumer", b"learning"),
                ("x-dlq-source", f"{CLIENTS.name}/{partition}/999998".encode()),
            ],
        )
    finally:
        await producer.stop()
    return partition, other


@pytest.fixture
def stack(chain: Any) -> Iterator[EmbeddedStack]:
    # Own Kafka and MongoDB: every topic and database read below is this test's alone.
    yield chain(SERVICES, isolated=True, timeout=120)


async def test_after_erasure_no_store_and_no_topic_returns_the_person(stack):
    client = ChainClient(stack.urls(), stack.api_token, stack.kafka)
    patterns = traces(RESIDENT)
    try:
        referral = await client.refer(
            GP,
            {
                "referrer_type": "gp",
                "referrer_reference": "HDL-ERASE-1",
                "topic": "debts_material",
                "urgency": {"threatened_eviction": False, "disconnection": False},
                "client": RESIDENT,
                "consent": {
                    "given_by": "client",
                    "purposes": ["referral_feedback", "reminders", "debt_counselling"],
                    "granted_at": datetime.now(UTC).isoformat(),
                },
            },
        )
        trajectory = await client.trajectory_for(ORG, referral["referral_id"])
        client_ref, trajectory_id = trajectory["client_ref"], trajectory["trajectory_id"]
        await client.schedule(
            ORG,
            trajectory_id,
            datetime.now(UTC) + timedelta(days=2),
            kind="intake",
            goal=f"Kennismaken met {RESIDENT['name']}, bereikbaar op {RESIDENT['phone']}",
        )
        module = await client.assign_module(ORG, trajectory_id, "grip-op-je-geld")
        await client.enrolment(ORG, client_ref, module["enrolment_id"])
        token = await client.portal_token(ORG, client_ref)
        homework = await client.http.post(
            f"{stack.service_url('learning')}/v1/enrolments/{module['enrolment_id']}"
            "/steps/huiswerk-kasboek/homework",
            json={"answer": f"Ik, {RESIDENT['name']}, schreef een week alles op."},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert homework.status_code == 201, homework.text

        async def handed_off() -> Any:  # trajectory hears of the consent over the bus
            answer = await client.http.post(
                f"{stack.service_url('trajectory')}/v1/trajectories/{trajectory_id}"
                "/partner-referrals",
                json={"partner_organisation_id": DEBT},
                headers={"Authorization": f"Bearer {stack.api_token(ORG, 'worker')}"},
            )
            return answer.status_code == 201 or None

        await eventually(handed_off, "the hand-off to the debt partner")

        async def reminded() -> Any:  # notifications holds the contact card
            answer = await client.http.get(
                f"{stack.service_url('notifications')}/v1/reminders",
                params={"client_ref": client_ref},
                headers={"Authorization": f"Bearer {stack.api_token(ORG, 'notifications')}"},
            )
            return answer.json() if answer.status_code == 200 else None

        await eventually(reminded, "a reminder planned with the contact card")
        await dead_letter_of(stack, client_ref)
        shared = await contacts_topic.records_of(stack.kafka, client_ref)
        assert [r.value is not None for r in shared] == [True]  # the card, sealed
        sealed_for_partner = await contacts_topic.records_of(
            stack.kafka, client_ref, partner_card(DEBT)
        )
        assert [r.value is not None for r in sealed_for_partner] == [True]
        partition, other = await letters_beside(stack, client_ref)

        # Before: the scan finds the person where the chain legitimately keeps them (the
        # goal the worker wrote, the references in every service), so it can fail.
        before = await every_document(stack)
        assert Finding(("trajectory", "trajectories"), "name") in findings(before, patterns)
        referenced = {place for place, text in before if client_ref in text}
        assert {s for s, _ in referenced} >= {"notifications", "learning", "analytics"}
        assert ("trajectory", "partner_cards") in referenced  # kept for the hand-off

        erased = await client.http.post(
            f"{stack.service_url('intake')}/v1/clients/{client_ref}/erasure",
            headers={"Authorization": f"Bearer {stack.api_token(ORG, 'worker')}"},
        )
        assert erased.status_code == 202, erased.text
        for service in ("trajectory", "notifications", "learning", "analytics"):

            async def forgotten(service: str = service) -> bool:
                return await handled(client, service, ERASURE) >= 1

            await eventually(forgotten, f"{service} to handle the erasure")

        async def tombstone_handled() -> bool:
            return await handled(client, "notifications", "tombstone") >= 1

        await eventually(tombstone_handled, "notifications to handle the card's tombstone")

        async def partner_tombstone_handled() -> bool:
            # Both of the erasure's tombstones reach trajectory; it forgets the partner's card.
            return await handled(client, "trajectory", "tombstone") >= 2

        await eventually(partner_tombstone_handled, "trajectory to handle the card's tombstone")
        # Compaction removes each card under its tombstone; the tombstone holds only the key.
        left = await contacts_topic.card_compacted_away(stack.kafka, client_ref)
        assert [r.value for r in left] == [None]  # the tombstone alone, for a while
        left = await contacts_topic.card_compacted_away(stack.kafka, client_ref, partner_card(DEBT))
        assert [r.value for r in left] == [None]
        await eventually(
            lambda: purges_done(stack), "trajectory to purge the person's dead letters"
        )

        # The DLQ partition, read from its start: the person's letters gone, the other
        # client's letter there as it was put aside, waiting, and sent back and handled.
        dlq = dead_letter_topic(CLIENTS.name)
        left = await read_everything(stack.kafka, [dlq])
        assert not [r for r in left if deadletters.concerns(r, [client_ref])]
        [kept] = [r for r in left if r.key == other.subject.encode()]
        assert (kept.partition, kept.value) == (partition, other.to_bytes())
        assert dict(kept.headers)["x-dlq-source"] == f"{CLIENTS.name}/{partition}/999999".encode()
        options = stack.kafka.client_options()
        assert [
            letter.key for letter in (await deadletters.read(options, CLIENTS.name)).waiting()
        ] == [other.subject.encode()]
        handled_before = await handled(client, "analytics", other.type)
        replayed = await deadletters.replay(options, CLIENTS.name)
        assert replayed.sent == 1

        async def replayed_and_handled() -> bool:
            return await handled(client, "analytics", other.type) == handled_before + 1

        await eventually(replayed_and_handled, "analytics to handle the replayed letter")

        # A letter about the person put aside after the erasure (an event still on its way):
        # trajectory sees it arrive and purges it too.
        ends = await dlq_ends(stack)
        await unreadable_copy_of(stack, client_ref)

        async def late_letter_purged() -> bool:
            # Every service that handles consents puts the unreadable version aside: all
            # their letters in, then none left about the person.
            letters = sum((await dlq_ends(stack)).values()) - sum(ends.values())
            if letters < readers_of(ConsentGranted):
                return False
            left = await read_everything(stack.kafka, [dlq])
            return not [r for r in left if deadletters.concerns(r, [client_ref])]

        await eventually(late_letter_purged, "the late dead letter purged", timeout=60)
    finally:
        await client.close()

    stores, topics = await every_document(stack), await every_record(stack)
    assert findings(stores, patterns) == set()
    assert findings(topics, patterns) == set()
    # The reference: where the docs say it stays, and nowhere else (analytics has a token).
    stays = {place for place, text in stores if client_ref in text}
    assert stays == REFERENCE_STAYS_IN
    # The one sealed copy of a contact card left is the contact the hand-off gave the debt
    # partner, on its outbound topic until retention (30 days), as docs/security.md says:
    # both cards left the contacts topic, and none is on the clients topic any more.
    sealed = {place for place, text in topics if client_ref in text and "ciphertext" in text}
    assert sealed == {("topic", f"ketenbus.partners.{DEBT}.outbound.v1")}
    assert not [name for (_, name), text in topics if name.endswith(".dlq") and client_ref in text]
