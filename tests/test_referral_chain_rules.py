"""The rules of intake and trajectory, through real processes on their own Apache Kafka
and SecantusDB: region, capacity and the waiting list, duplicates, idempotency, who may see a
status, what happens to a partner's bad message, consent, erasure, and reminders to workers.

One stack for the module (starting processes is the slow part); each test uses residents of
its own, and the last one reads every topic the others wrote to.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fhir.resources.R4B.task import Task
from pymongo import AsyncMongoClient

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import (
    AppointmentRegistrationOverdue,
    ConsentStatement,
    PartnerReferralWithdrawn,
    PartnerStatus,
    ReferralStatusChanged,
    ReferralSubmitted,
    Urgency,
)
from ketenbus.contracts.events.intake import partner_card
from ketenbus.contracts.values import ConsentGiver, ConsentPurpose, ReferralTopic, ReferrerType
from ketenbus.devstack import partner_keys, service_keys
from ketenbus.devstack.chain_client import eventually
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.partners import DebtCounsellingPartner, GpPractice
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.kit.broker import partitions_of

from . import contacts_topic

pytestmark = [pytest.mark.stack, pytest.mark.chain]

GP = "huisarts-de-linde"
OTHER_GP = "huisarts-oosterpoort"
DEBT = "schuldhulp-midden"


def person(name: str, postcode: str, phone: str, email: str, born: str) -> dict[str, Any]:
    return {
        "name": name,
        "date_of_birth": born,
        "postcode": postcode,
        "phone": phone,
        "email": email,
        "language": "nl",
        "preferred_channel": "email",
    }


OUTSIDE = person(
    "Joost Verhoeven", "1011 AB", "06-11122233", "joost.verhoeven@example.org", "1990-01-01"
)
ANNA = person(
    "Annemarie Visscher", "3811 AA", "06-22233344", "a.visscher@example.org", "1985-02-03"
)
BOB = person("Bernard Smeekens", "3812 BB", "06-33344455", "b.smeekens@example.org", "1970-05-06")
CHRIS = person(
    "Christiaan Mulderink", "3813 CC", "06-44455566", "c.mulderink@example.org", "1962-07-08"
)
DIRK = person(
    "Dirkjan Bosschaart", "3511 AD", "06-55566677", "d.bosschaart@example.org", "1977-09-10"
)
EVA = person("Evelien Graafsma", "3512 EV", "06-66677788", "e.graafsma@example.org", "1993-11-12")
FRANK = person("Frans Koekkoek", "3701 FK", "06-77788899", "f.koekkoek@example.org", "1958-12-13")
KAFKA = person(
    "Kimberley Meijerink", "3513 KM", "06-88899900", "k.meijerink@example.org", "2001-03-14"
)
GERDA = person(
    "Geertruida Hoogendijk", "3514 GH", "06-99900011", "g.hoogendijk@example.org", "1968-06-15"
)
EVERYONE = [OUTSIDE, ANNA, BOB, CHRIS, DIRK, EVA, FRANK, KAFKA, GERDA]


def traces(who: dict[str, Any]) -> list[str]:
    """How a person could show up in plaintext: name and its parts, phone in two spellings,
    mail. (Names of five letters and more: a shorter one turns up by chance in base64.)"""
    return [
        who["name"],
        *who["name"].split(),
        who["phone"],
        who["phone"].replace("-", ""),
        who["email"],
    ]


def referral(
    client: dict[str, Any],
    reference: str,
    *,
    urgency: dict[str, bool] | None = None,
    purposes: tuple[str, ...] = ("referral_feedback",),
) -> dict[str, Any]:
    return {
        "referrer_type": "gp",
        "referrer_reference": reference,
        "topic": "debts_material",
        "urgency": urgency or {"threatened_eviction": False, "disconnection": False},
        "client": client,
        "consent": {
            "given_by": "client",
            "purposes": list(purposes),
            "granted_at": "2026-03-02T09:10:00+01:00",
        },
    }


@dataclass
class Chain:
    stack: EmbeddedStack
    gp: GpPractice
    other_gp: GpPractice
    debt: DebtCounsellingPartner
    http: httpx.AsyncClient

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.service_url(service)}{path}"

    def as_(self, organisation: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.api_token(organisation, role)}"}

    async def trajectory(self, organisation: str, referral_id: str) -> dict[str, Any]:
        async def opened() -> Any:
            found = await self.http.get(
                self.url("trajectory", "/v1/trajectories"),
                params={"referral_id": referral_id},
                headers=self.as_(organisation, "worker"),
            )
            return found.json()[0] if found.status_code == 200 and found.json() else None

        return await eventually(opened, f"the trajectory of {referral_id}")

    async def act(
        self, organisation: str, trajectory_id: str, action: str, body: Any = None
    ) -> httpx.Response:
        return await self.http.post(
            self.url("trajectory", f"/v1/trajectories/{trajectory_id}{action}"),
            json=body,
            headers=self.as_(organisation, "worker"),
        )

    async def handled(self, service: str, event: str) -> int:
        """How many events of a type the service has processed (its /metrics)."""
        text = (await self.http.get(self.url(service, "/metrics"))).text
        pattern = re.compile(
            rf'^ketenbus_events_handled_total\{{event_type="nl\.ketenbus\.[a-z]+\.{event}\.v1",'
            r'outcome="processed"\} (\S+)$',
            re.MULTILINE,
        )
        found = pattern.search(text)
        return int(float(found.group(1))) if found else 0


@pytest.fixture(scope="module")
def rules_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    home = tmp_path_factory.mktemp("referral-rules")
    capacity = home / "capacity.json"
    # Amersfoort runs one trajectory at a time: the second referral waits.
    capacity.write_text(json.dumps({"organisations": {"welzijn-amersfoort": 1}}))
    stack = EmbeddedStack(
        home / "stack",
        partners=[GP, OTHER_GP, DEBT],
        outlive_caller=False,
        # Own databases even on a shared MongoDB (MONGODB_URL set): nothing of another run.
        database_prefix=f"rules{uuid.uuid4().hex[:8]}",
    )
    stack.start_infrastructure(timeout=120)
    try:
        stack.start_services(
            ("intake", "trajectory"),
            {
                "CAPACITY_FILE": str(capacity),
                "REGISTRATION_GRACE": "PT1S",
                "OVERDUE_CHECK_SECONDS": "0.2",
            },
        )
        stack.wait_ready(("intake", "trajectory"), timeout=120)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
async def chain_rules(rules_stack: EmbeddedStack) -> AsyncIterator[Chain]:
    stack = rules_stack
    kafka = stack.kafka
    intake = stack.service_url("intake")
    gp = GpPractice(
        GP,
        kafka,
        intake_url=intake,
        api_key=stack.api_token(GP, "referrer"),
        sharing_key=partner_keys.key(stack.home, GP),
    )
    other_gp = GpPractice(
        OTHER_GP, kafka, intake_url=intake, api_key=stack.api_token(OTHER_GP, "referrer")
    )
    debt = DebtCounsellingPartner(DEBT, kafka, sharing_key=partner_keys.key(stack.home, DEBT))
    http = httpx.AsyncClient(timeout=10.0)
    for partner in (gp, other_gp, debt):
        await partner.start()
    try:
        yield Chain(stack, gp, other_gp, debt, http)
    finally:
        await http.aclose()
        for partner in (gp, other_gp, debt):
            await partner.stop()


async def test_a_referral_from_outside_the_region_is_declined_with_a_redirect(chain_rules):
    answer = await chain_rules.gp.refer(referral(OUTSIDE, "HDL-OUT-1"))

    assert answer.status_code == 201, answer.text
    declined = answer.json()
    assert declined["status"] == "declined"
    assert declined["reason"] == "outside_region"
    assert "gemeente" in declined["redirect"]
    heard = await chain_rules.gp.wait_for_statuses(declined["referral_id"], ["declined"])
    assert heard == ["declined"]


async def test_the_same_idempotency_key_twice_gives_one_referral(chain_rules):
    key = f"HDL-{uuid.uuid4().hex}"
    first = await chain_rules.gp.refer(referral(EVA, "HDL-EVA-1"), idempotency_key=key)
    again = await chain_rules.gp.refer(referral(EVA, "HDL-EVA-1"), idempotency_key=key)
    changed = referral(EVA, "HDL-EVA-1", purposes=("referral_feedback", "reminders"))
    misused = await chain_rules.gp.refer(changed, idempotency_key=key)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["referral_id"] == first.json()["referral_id"]
    assert misused.status_code == 409
    assert "different referral" in misused.json()["detail"]
    referral_id = first.json()["referral_id"]
    await chain_rules.gp.wait_for_statuses(referral_id, ["received", "accepted"])
    made = {
        e.data.referral_id
        for e in chain_rules.gp.received
        if getattr(e.data, "referrer_reference", None) == "HDL-EVA-1"
    }
    assert made == {referral_id}
    await chain_rules.trajectory("welzijn-utrecht", referral_id)


async def test_only_the_referring_organisation_sees_the_status(chain_rules):
    made = await chain_rules.gp.refer(referral(EVA, "HDL-EVA-2"))
    referral_id = made.json()["referral_id"]

    own = await chain_rules.gp.status(referral_id)
    other = await chain_rules.other_gp.status(referral_id)
    no_scope = await chain_rules.gp.status(
        referral_id, api_key=chain_rules.stack.api_token("welzijn-utrecht", "worker")
    )
    async with httpx.AsyncClient() as anonymous:
        no_key = await anonymous.get(
            chain_rules.url("intake", f"/v1/referrals/{referral_id}/status")
        )

    assert own.status_code == 200 and own.json()["referral_id"] == referral_id
    assert other.status_code == 404
    assert referral_id not in other.text
    assert no_scope.status_code == 403
    assert no_key.status_code == 401


async def test_a_duplicate_is_linked_and_a_full_caseload_waits_crisis_first(chain_rules):
    org = "welzijn-amersfoort"
    anna = (await chain_rules.gp.refer(referral(ANNA, "HDL-ANNA"))).json()
    assert anna["status"] == "accepted"
    # The same person, referred again by another practice while her referral is open.
    again = (await chain_rules.other_gp.refer(referral(ANNA, "HOP-ANNA"))).json()
    assert again["status"] == "accepted"
    assert again["referral_id"] != anna["referral_id"]
    bob = (await chain_rules.gp.refer(referral(BOB, "HDL-BOB"))).json()
    assert bob["status"] == "waitlisted"
    crisis = {"threatened_eviction": True, "disconnection": False}
    chris = (await chain_rules.gp.refer(referral(CHRIS, "HDL-CHRIS", urgency=crisis))).json()
    assert chris["status"] == "waitlisted"

    anna_trajectory = await chain_rules.trajectory(org, anna["referral_id"])
    closed = await chain_rules.act(
        org, anna_trajectory["trajectory_id"], "/closure", {"reason": "goal_reached"}
    )
    assert closed.status_code == 200, closed.text

    # The place goes to the crisis, not to Bob, who was waiting longer.
    chris_trajectory = await chain_rules.trajectory(org, chris["referral_id"])
    assert chris_trajectory["crisis"] is True
    assert await chain_rules.gp.wait_for_statuses(
        chris["referral_id"], ["received", "waitlisted", "accepted"]
    ) == ["received", "waitlisted", "accepted"]
    assert (await chain_rules.gp.status(bob["referral_id"])).json()["status"] == "waitlisted"
    # Both referrers of Anna hear the loop close; she had one trajectory, not two.
    assert await chain_rules.gp.wait_for_statuses(
        anna["referral_id"], ["received", "accepted", "closed"]
    ) == ["received", "accepted", "closed"]
    assert await chain_rules.other_gp.wait_for_statuses(
        again["referral_id"], ["received", "accepted", "closed"]
    ) == ["received", "accepted", "closed"]
    everyone = await chain_rules.http.get(
        chain_rules.url("trajectory", "/v1/trajectories"), headers=chain_rules.as_(org, "worker")
    )
    assert sorted(t["referral_id"] for t in everyone.json()) == sorted(
        [anna["referral_id"], chris["referral_id"]]
    )


async def test_a_bad_partner_message_goes_to_the_dead_letters_and_the_partner_hears_why(
    chain_rules,
):
    gp = chain_rules.gp
    good_key = partner_keys.key(chain_rules.stack.home, GP)

    def submitted(reference: str, client: Any, key: bytes) -> ReferralSubmitted:
        return ReferralSubmitted(
            partner_organisation_id=GP,
            referrer_type=ReferrerType.GP,
            referrer_reference=reference,
            topic=ReferralTopic.DEBTS_MATERIAL,
            urgency=Urgency(),
            consent=ConsentStatement(
                given_by=ConsentGiver.CLIENT,
                purposes=(ConsentPurpose.REFERRAL_FEEDBACK,),
                granted_at=datetime.now(UTC),
            ),
            client=sealing.seal(
                json.dumps(client).encode(),
                data_key=sealing.new_key(),
                key_id=reference,
                recipient_key=key,
            ),
            submitted_at=datetime.now(UTC),
        )

    await gp.send_raw(b"{not json at all", key="HDL-RAW")
    await gp.send(submitted("HDL-WRONG-KEY", KAFKA, sealing.new_key()))
    await gp.send(submitted("HDL-BAD-DATA", {**KAFKA, "postcode": "no postcode"}, good_key))
    incomplete = json.loads(
        wrap(submitted("HDL-INCOMPLETE", KAFKA, good_key), source=GP).to_bytes()
    )
    del incomplete["data"]["client"]
    await gp.send_raw(json.dumps(incomplete).encode(), key="HDL-INCOMPLETE")
    accepted = await gp.refer_on_kafka("HDL-KAFKA-OK", KAFKA)

    wrong_key = await gp.wait_for_rejection("HDL-WRONG-KEY")
    bad_data = await gp.wait_for_rejection("HDL-BAD-DATA")
    missing = await gp.wait_for_rejection("HDL-INCOMPLETE")
    unreadable = await gp.wait_for_rejection(None)
    assert "cannot be opened with the key" in wrong_key.reason
    assert "client: postcode" in bad_data.reason
    assert "data.client" in missing.reason and "Field required" in missing.reason
    assert "not an event envelope" in unreadable.reason or "MalformedEnvelope" in unreadable.reason
    for rejection in (wrong_key, bad_data, missing, unreadable):
        for trace in traces(KAFKA):
            assert trace not in rejection.reason
    # The good one, right behind the bad ones, went through.
    ok = await gp.wait_for(
        lambda received: next(
            (
                e.data.referral_id
                for e in received
                if isinstance(e.data, ReferralStatusChanged)
                and e.data.referrer_reference == "HDL-KAFKA-OK"
            ),
            None,
        ),
        "the first status of the referral made on Kafka",
    )
    assert await gp.wait_for_statuses(ok, ["received", "accepted"]) == ["received", "accepted"]
    assert accepted.data.referrer_reference == "HDL-KAFKA-OK"

    async def both_put_aside() -> list[Any] | None:
        # Intake's letters come before its rejections; trajectory reads the topic on its own.
        letters = await read_topic(chain_rules.stack.kafka, f"{gp.inbound}.dlq")
        readers = {dict(r.headers).get("x-dlq-consumer") for r in letters}
        return letters if {b"intake", b"trajectory"} <= readers else None

    dead = await eventually(both_put_aside, "intake's and trajectory's dead letters")
    by_intake = [
        (dict(r.headers)["x-dlq-reason"].decode(), r.value)
        for r in dead
        if dict(r.headers).get("x-dlq-consumer") == b"intake"
    ]
    assert len(by_intake) == 4
    # Trajectory reads the same topic for hand-off answers: it puts aside only what nobody
    # could read, and passes by the referrals it does not handle.
    by_trajectory = [
        r.value for r in dead if dict(r.headers).get("x-dlq-consumer") == b"trajectory"
    ]
    assert by_trajectory == [b"{not json at all"]
    assert {value for _, value in by_intake} >= {b"{not json at all"}
    assert any("HDL-WRONG-KEY" in value.decode(errors="replace") for _, value in by_intake)


async def read_topic(kafka: KafkaAccess, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + 20
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_withdrawn_consent_stops_feedback_and_the_hand_off(chain_rules):
    org = "welzijn-utrecht"
    purposes = ("referral_feedback", "debt_counselling")
    dirk = (await chain_rules.gp.refer(referral(DIRK, "HDL-DIRK", purposes=purposes))).json()
    trajectory = await chain_rules.trajectory(org, dirk["referral_id"])
    trajectory_id, client_ref = trajectory["trajectory_id"], trajectory["client_ref"]

    async def handed_off() -> Any:
        asked = await chain_rules.act(
            org, trajectory_id, "/partner-referrals", {"partner_organisation_id": DEBT}
        )
        return asked.json() if asked.status_code == 201 else None

    hand_off = await eventually(handed_off, "the hand-off, once trajectory knows the consent")
    assert (await chain_rules.debt.next_request()).contact["name"] == DIRK["name"]

    consents = await chain_rules.http.get(
        chain_rules.url("intake", f"/v1/clients/{client_ref}/consents"),
        headers=chain_rules.as_(org, "worker"),
    )
    assert {(c["partner_organisation_id"], c["purpose"]) for c in consents.json()} == {
        (GP, "referral_feedback"),
        (DEBT, "debt_counselling"),
    }
    for consent in consents.json():
        withdrawn = await chain_rules.http.post(
            chain_rules.url(
                "intake", f"/v1/clients/{client_ref}/consents/{consent['consent_id']}/withdrawal"
            ),
            headers=chain_rules.as_(org, "worker"),
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawn_at"] is not None

    # The debt partner is told to stop and forgets the contact; nothing more goes to it.
    await chain_rules.debt.wait_for(
        lambda received: any(
            isinstance(e.data, PartnerReferralWithdrawn)
            and e.data.partner_referral_id == hand_off["partner_referral_id"]
            for e in received
        ),
        "the withdrawal of the hand-off",
    )
    assert chain_rules.debt.hand_offs[hand_off["partner_referral_id"]].contact is None
    # The card sealed for the partner is taken back: trajectory forgets it, and the
    # withdrawal's tombstone compacts it off the contacts topic.
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(chain_rules.stack.mongo_url, tz_aware=True)
    try:
        cards = mongo[chain_rules.stack.database_name("trajectory")].partner_cards

        async def card_forgotten() -> bool:
            return await cards.count_documents({"client_ref": client_ref}) == 0

        await eventually(card_forgotten, "trajectory to forget the partner's card")
    finally:
        await mongo.close()
    left = await contacts_topic.card_compacted_away(
        chain_rules.stack.kafka, client_ref, partner_card(DEBT)
    )
    assert [r.value for r in left] == [None]  # the tombstone alone, for a while
    await chain_rules.debt.report(hand_off["partner_referral_id"], PartnerStatus.STABILISING)
    again = await chain_rules.act(
        org, trajectory_id, "/partner-referrals", {"partner_organisation_id": DEBT}
    )
    assert again.status_code == 409 and "consent" in again.json()["detail"]

    # First contact is made, intake handles it, and the GP hears nothing of it.
    first_contacts = await chain_rules.handled("intake", "FirstContactMade")
    made = await chain_rules.act(
        org,
        trajectory_id,
        "/contacts",
        {"channel": "phone", "minutes": 20, "occurred_at": datetime.now(UTC).isoformat()},
    )
    assert made.status_code == 201, made.text

    async def handled() -> bool:
        return await chain_rules.handled("intake", "FirstContactMade") > first_contacts

    await eventually(handled, "intake to handle the first contact")
    assert chain_rules.gp.statuses(dirk["referral_id"]) == ["received", "accepted"]
    current = (
        await chain_rules.http.get(
            chain_rules.url("trajectory", f"/v1/trajectories/{trajectory_id}"),
            headers=chain_rules.as_(org, "worker"),
        )
    ).json()
    assert current["first_contact_at"] is not None
    assert [p["status"] for p in current["partner_referrals"]] == ["withdrawn"]


async def test_after_erasure_no_store_can_tell_who_the_person_was(chain_rules):
    org = "welzijn-utrecht"
    stack = chain_rules.stack
    dirk = next(e for e in chain_rules.gp.received if e.data.referrer_reference == "HDL-DIRK")
    trajectory = await chain_rules.trajectory(org, dirk.data.referral_id)
    client_ref = trajectory["client_ref"]

    master = sealing.key_from_text(service_keys.load_or_create(stack.home)["KETENBUS_MASTER_KEY"])
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    try:
        intake = mongo[stack.database_name("intake")]
        # Before: the client's own key opens the details, and they are Dirkjan's.
        assert json.loads(await open_details(intake, client_ref, master))["name"] == DIRK["name"]

        erased = await chain_rules.http.post(
            chain_rules.url("intake", f"/v1/clients/{client_ref}/erasure"),
            headers=chain_rules.as_(org, "worker"),
        )
        assert erased.status_code == 202, erased.text

        trajectories = mongo[stack.database_name("trajectory")]

        async def forgotten() -> bool:
            found = await trajectories.trajectories.find_one({"client_ref": client_ref})
            return found is not None and found["forgotten_at"] is not None

        await eventually(forgotten, "trajectory to forget the client")
        assert await trajectories.consents.count_documents({"client_ref": client_ref}) == 0
        assert await trajectories.partner_cards.count_documents({"client_ref": client_ref}) == 0

        # Nothing in any store reads as the person any more.
        for service in ("intake", "trajectory"):
            database = mongo[stack.database_name(service)]
            for collection in await database.list_collection_names():
                async for document in database[collection].find():
                    text = json.dumps(document, default=str)
                    for trace in traces(DIRK):
                        assert trace not in text, f"{service}.{collection} holds {trace!r}"

        # The encrypted details are still there, and nothing can open them.
        client = await intake.clients.find_one({"_id": client_ref})
        assert client is not None and "identity_hash" not in client
        assert await intake.client_keys.find_one({"_id": client_ref}) is None
        with pytest.raises(LookupError):
            await open_details(intake, client_ref, master)
        with pytest.raises(sealing.SealBroken):
            sealing.decrypt(
                bytes.fromhex(client["details"]["nonce"]),
                bytes.fromhex(client["details"]["ciphertext"]),
                master,
                client_ref.encode(),
            )
        # A neighbour's details still open: the shredding hit one person only.
        other = await intake.clients.find_one({"_id": {"$ne": client_ref}, "erased_at": None})
        assert json.loads(await open_details(intake, other["_id"], master))["name"]
    finally:
        await mongo.close()


async def open_details(intake: Any, client_ref: str, master: bytes) -> bytes:
    """What intake does to read a client: unwrap the client's key, then open the details."""
    wrapped = await intake.client_keys.find_one({"_id": client_ref})
    if wrapped is None:
        raise LookupError(f"no key for {client_ref}: shredded")
    client = await intake.clients.find_one({"_id": client_ref})
    data_key = sealing.decrypt(
        bytes.fromhex(wrapped["nonce"]),
        bytes.fromhex(wrapped["wrapped"]),
        master,
        client_ref.encode(),
    )
    return sealing.decrypt(
        bytes.fromhex(client["details"]["nonce"]),
        bytes.fromhex(client["details"]["ciphertext"]),
        data_key,
        client_ref.encode(),
    )


async def test_an_unregistered_appointment_reminds_the_worker_and_is_never_marked_missed(
    chain_rules,
):
    org = "welzijn-heuvelrug"
    frank = (await chain_rules.gp.refer(referral(FRANK, "HDL-FRANK"))).json()
    trajectory = await chain_rules.trajectory(org, frank["referral_id"])
    trajectory_id = trajectory["trajectory_id"]
    # It was this morning and lasted half an hour; the worker has not registered it.
    began = datetime.now(UTC) - timedelta(hours=2)
    planned = await chain_rules.act(
        org,
        trajectory_id,
        "/appointments",
        {"kind": "intake", "starts_at": began.isoformat(), "duration_minutes": 30},
    )
    assert planned.status_code == 201, planned.text
    appointment_id = planned.json()["appointment_id"]

    async def reminded() -> Any:
        current = await chain_rules.http.get(
            chain_rules.url("trajectory", f"/v1/trajectories/{trajectory_id}"),
            headers=chain_rules.as_(org, "worker"),
        )
        [appointment] = current.json()["appointments"]
        return appointment if appointment["registration_overdue"] else None

    appointment = await eventually(reminded, "the reminder to register the appointment")
    assert appointment["status"] == "scheduled"

    async def overdue_on_the_bus() -> list[Any] | None:
        # Stored with the flag, published by the relay after the commit.
        trajectory_topic = await read_topic(
            chain_rules.stack.kafka, "ketenbus.trajectory.trajectories.v1"
        )
        found = [
            json.loads(r.value)
            for r in trajectory_topic
            if json.loads(r.value)["type"] == AppointmentRegistrationOverdue.event_type()
        ]
        return found or None

    overdue = await eventually(overdue_on_the_bus, "the overdue registration on the bus")
    assert [o["data"]["appointment_id"] for o in overdue] == [appointment_id]
    assert overdue[0]["data"]["worker_id"] == "mw.heuvelrug"
    attended = await chain_rules.act(org, trajectory_id, f"/appointments/{appointment_id}/attended")
    assert attended.status_code == 200, attended.text


def fhir_bundle(client: dict[str, Any], reference: str) -> dict[str, Any]:
    """The example GP Bundle intake ships (docs/partners.md shows it), for this client."""
    text = resources.files("ketenbus.intake").joinpath("data/fhir-referral-bundle.json")
    bundle = json.loads(text.read_text("utf-8"))
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "ServiceRequest":
            resource["identifier"][0]["value"] = reference
        if resource["resourceType"] == "Patient":
            given, family = client["name"].split(" ", 1)
            resource["name"] = [{"use": "official", "given": [given], "family": family}]
            resource["birthDate"] = client["date_of_birth"]
            resource["address"] = [{"use": "home", "postalCode": client["postcode"]}]
            resource["telecom"] = [
                {"system": "email", "value": client["email"], "rank": 1},
                {"system": "phone", "value": client["phone"], "rank": 2},
            ]
    return bundle


async def test_a_fhir_bundle_is_a_referral_whose_task_follows_the_loop(chain_rules):
    org = "welzijn-utrecht"
    http, stack = chain_rules.http, chain_rules.stack
    fhir_json = {"Content-Type": "application/fhir+json"}
    headers = {**chain_rules.as_(GP, "referrer"), **fhir_json}
    key = {"Idempotency-Key": f"HDL-{uuid.uuid4().hex}"}
    bundle = fhir_bundle(GERDA, "HDL-FHIR-1")
    submit = chain_rules.url("intake", "/v1/fhir/Bundle")

    made = await http.post(submit, content=json.dumps(bundle), headers={**headers, **key})
    again = await http.post(submit, content=json.dumps(bundle), headers={**headers, **key})
    without_consent = {
        **bundle,
        "entry": [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"],
    }
    invalid = await http.post(submit, content=json.dumps(without_consent), headers=headers)
    spoofed = await http.post(
        submit,
        content=json.dumps(bundle),
        headers={**chain_rules.as_(OTHER_GP, "referrer"), **fhir_json},
    )

    assert made.status_code == 201, made.text
    assert made.headers["content-type"].startswith("application/fhir+json")
    task = made.json()
    Task.model_validate(task)
    assert made.headers["location"] == f"/v1/fhir/Task/{task['id']}"
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "accepted",
        "accepted",
    )
    assert task["focus"]["identifier"]["value"] == "HDL-FHIR-1"
    assert (again.status_code, again.json()["id"]) == (200, task["id"])
    assert invalid.status_code == 422
    assert invalid.json()["resourceType"] == "OperationOutcome"
    assert spoofed.status_code == 403
    assert spoofed.json()["issue"][0]["expression"] == ["Task.requester.identifier"]
    for answer in (made, again, invalid, spoofed):
        for trace in traces(GERDA):
            assert trace not in answer.text

    # The same referral the JSON door knows: its loop on the GP's topic, its status.
    [referral_id] = [i["value"] for i in task["identifier"]]
    assert await chain_rules.gp.wait_for_statuses(referral_id, ["received", "accepted"]) == [
        "received",
        "accepted",
    ]
    assert (await chain_rules.gp.status(referral_id)).json()["status"] == "accepted"
    task_url = chain_rules.url("intake", f"/v1/fhir/Task/{task['id']}")
    other = await http.get(task_url, headers=chain_rules.as_(OTHER_GP, "referrer"))
    assert other.status_code == 404 and other.json()["resourceType"] == "OperationOutcome"
    assert referral_id not in other.text

    async def task_becomes(status: str) -> dict[str, Any]:
        async def read() -> Any:
            answer = await http.get(task_url, headers=chain_rules.as_(GP, "referrer"))
            assert answer.status_code == 200, answer.text
            current = answer.json()
            return current if current["status"] == status else None

        current: dict[str, Any] = await eventually(read, f"the Task {status}")
        Task.model_validate(current)
        return current

    trajectory = await chain_rules.trajectory(org, referral_id)
    contact = await chain_rules.act(
        org,
        trajectory["trajectory_id"],
        "/contacts",
        {"channel": "phone", "minutes": 20, "occurred_at": datetime.now(UTC).isoformat()},
    )
    assert contact.status_code == 201, contact.text
    in_progress = await task_becomes("in-progress")
    assert in_progress["businessStatus"]["text"] == "Eerste contact"

    closed = await chain_rules.act(
        org, trajectory["trajectory_id"], "/closure", {"reason": "goal_reached"}
    )
    assert closed.status_code == 200, closed.text
    completed = await task_becomes("completed")
    assert completed["businessStatus"]["coding"][0]["code"] == "closed"
    assert "statusReason" not in completed
    loop = ["received", "accepted", "first_contact", "closed"]
    assert await chain_rules.gp.wait_for_statuses(referral_id, loop) == loop
    log = stack.log_path("intake").read_text(encoding="utf-8")
    for trace in traces(GERDA):
        assert trace not in log, f"intake's log holds {trace!r}"


async def test_the_partner_api_and_topics_are_documented(chain_rules):
    http = chain_rules.http
    page = await http.get(chain_rules.url("intake", "/docs"))
    openapi = (await http.get(chain_rules.url("intake", "/openapi.json"))).json()
    intake = (await http.get(chain_rules.url("intake", "/asyncapi.json"))).json()
    trajectory = (await http.get(chain_rules.url("trajectory", "/asyncapi.json"))).json()
    asyncapi_page = await http.get(chain_rules.url("intake", "/asyncapi"))

    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert {"/v1/referrals", "/v1/referrals/{referral_id}/status"} <= set(openapi["paths"])
    assert {"receive_ReferralSubmitted", "send_ReferralStatusChanged", "send_ReferralRejected"} <= (
        set(intake["operations"])
    )
    assert {"send_PartnerReferralRequested", "receive_PartnerCompleted"} <= set(
        trajectory["operations"]
    )
    assert "ketenbus.partners.{organisation}.inbound.v1" in asyncapi_page.text


async def test_no_topic_holds_anyones_name_phone_or_mail(chain_rules):
    consumer = AIOKafkaConsumer(
        **chain_rules.stack.kafka.client_options(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
    finally:
        await consumer.stop()
    everything = {topic: await read_topic(chain_rules.stack.kafka, topic) for topic in topics}

    assert sum(len(records) for records in everything.values()) > 50
    for topic, records in everything.items():
        for record in records:
            value = record.value or b""  # a tombstone on the contacts topic has none
            for who in EVERYONE:
                for trace in traces(who):
                    assert trace.encode() not in value, f"{topic} holds {trace!r}"
