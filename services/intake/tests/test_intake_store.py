"""Intake's repositories on the real database (SecantusDB): what a unit of work adds is
written once when it ends, and seen before that by every handler of its batch; a place is
claimed in one round trip."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.events import (
    ClientContactShared,
    ClientWaitlisted,
    ConsentStatement,
    ReferralReceived,
    ReferralSubmitted,
    TrajectoryClosed,
    Urgency,
)
from ketenbus.contracts.values import (
    ClosureReason,
    ConsentGiver,
    ConsentPurpose,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.intake import front_desk, reception, store
from ketenbus.intake.bootstrap import IntakeDependencies, intake_keys
from ketenbus.intake.caseloads import Caseloads
from ketenbus.intake.domain import Referrer
from ketenbus.intake.handlers import handlers
from ketenbus.intake.partners import ReferralRefused
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import CapacityTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.clock import FixedClock
from ketenbus.kit.consumer import BoundHandlers
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import UnitOfWork

from .test_intake_domain import NOW

pytestmark = pytest.mark.stack

GP = "huisarts-de-linde"
AMERSFOORT = "welzijn-amersfoort"  # serves postcode area 3811 (intake's packaged regions)
UTRECHT = "welzijn-utrecht"  # serves 3512


@dataclass
class Service:
    uow: UnitOfWork[IntakeTransaction]
    handle: BoundHandlers
    commands: SentCommands
    partner_key: bytes
    deps: IntakeDependencies

    @property
    def db(self) -> Any:
        return self.uow.db

    async def in_batch(self, envelopes: list[Envelope[Any]]) -> list[Any]:
        """The events handled as the consumer hands them a batch (read ahead, then each
        handled); what it published."""
        async with self.uow.batch(envelopes) as batch:
            await self.handle.read_ahead(batch, envelopes)
            for envelope in envelopes:
                await self.handle(envelope, uow=batch)
        return [outgoing.data for outgoing in batch.outgoing]

    def referral(
        self, who: dict[str, Any], reference: str | None = None, key: bytes | None = None
    ) -> Envelope[Any]:
        """A partner's referral on its inbound topic, the person sealed with its key (or
        `key`)."""
        reference = reference or f"REF-{uuid.uuid4().hex[:8]}"
        sealed = sealing.seal(
            json.dumps(who).encode(),
            data_key=sealing.new_key(),
            key_id=f"{GP}-{reference}",
            recipient_key=key or self.partner_key,
        )
        submitted = ReferralSubmitted(
            partner_organisation_id=GP,
            referrer_type=ReferrerType.GP,
            referrer_reference=reference,
            topic=ReferralTopic.DEBTS_MATERIAL,
            urgency=Urgency(),
            consent=ConsentStatement(
                given_by=ConsentGiver.CLIENT,
                purposes=(ConsentPurpose.REFERRAL_FEEDBACK,),
                granted_at=NOW,
            ),
            client=sealed,
            submitted_at=NOW,
        )
        return wrap(submitted, source=GP, time=NOW)


def resident(name: str, postcode: str = "3811 AA", phone: str = "06-12345678") -> dict[str, Any]:
    return {
        "name": name,
        "date_of_birth": "1985-02-03",
        "postcode": postcode,
        "phone": phone,
        "email": "resident@example.org",
        "language": "nl",
        "preferred_channel": "email",
    }


@pytest.fixture
async def service(mongo_url: str) -> AsyncIterator[Service]:
    commands = SentCommands()
    partner_key = sealing.new_key()
    text = sealing.key_to_text
    settings = IntakeSettings(
        ketenbus_master_key=text(sealing.new_key()),
        contact_sharing_key=text(sealing.new_key()),
        pseudonym_key=text(sealing.new_key()),
        partner_organisations=GP,
        partner_sharing_keys={GP: text(partner_key)},
    )
    keys = intake_keys(settings)
    clock = FixedClock(NOW)
    async with watched_database(mongo_url, "intake_store", commands) as db:
        await store.ensure_indexes(db)
        caseloads = Caseloads(db, CapacityTable({AMERSFOORT: 1, UTRECHT: 100}).of, clock)
        transaction = partial(
            IntakeTransaction, keys=keys, caseloads=caseloads, kafka_partners=frozenset({GP})
        )
        uow = UnitOfWork(
            db.client, db, service="intake", clock=clock, transaction_class=transaction
        )
        deps = IntakeDependencies.from_settings(
            settings, uow=uow, clock=clock, keys=keys, caseloads=caseloads
        )
        yield Service(uow, handlers.bind(deps), commands, partner_key, deps)


async def test_two_referrals_of_one_resident_in_one_batch_make_one_client_and_a_duplicate(
    service: Service,
):
    first = service.referral(resident("Annemarie Visscher", postcode="3512 AB"))
    # The same person (name and date of birth) with a new phone number, from another reference.
    second = service.referral(
        resident("Annemarie  Visscher", postcode="3512 AB", phone="06-87654321")
    )

    await service.in_batch([first, second])

    clients = await service.db.clients.find().to_list()
    assert len(clients) == 1
    referrals = {r["referrer"]["reference"]: r async for r in service.db.referrals.find()}
    original = referrals[first.data.referrer_reference]
    duplicate = referrals[second.data.referrer_reference]
    assert original["state"] == "accepted" and duplicate["state"] == "linked"
    assert duplicate["duplicate_of"] == original["_id"]
    assert original["client_ref"] == duplicate["client_ref"] == clients[0]["_id"]
    # One place, for the original: a duplicate claims none.
    assert await service.deps.caseloads.occupied(UTRECHT) == 1
    # The newest details win, also within one batch.
    async with service.uow.reading() as tx:
        details = await tx.clients.details(clients[0]["_id"])
    assert details is not None and details.phone == "06-87654321"


async def test_a_referral_resent_within_one_batch_is_made_once(service: Service):
    first = service.referral(resident("Bernard Smeekens"), reference="HDL-1")
    resent = service.referral(resident("Bernard Smeekens"), reference="HDL-1")
    assert first.id != resent.id

    await service.in_batch([first, resent])

    assert await service.db.referrals.count_documents({}) == 1
    assert await service.db.clients.count_documents({}) == 1
    assert await service.db.consents.count_documents({}) == 1


async def test_a_seal_the_read_ahead_could_not_open_is_refused_by_its_handler(service: Service):
    """The read-ahead leaves a referral whose seal it cannot open (sealed with another key)
    to its handler, which refuses it; the batch without it is received."""
    good = service.referral(resident("Klaas Lammers", "3512 KL"), "HDL-G")
    # Sealed with a key that is not the one intake shares with this partner.
    forged = service.referral(resident("Lies Molenaar", "3512 LM"), "HDL-F", sealing.new_key())

    with pytest.raises(ReferralRefused):
        await service.in_batch([good, forged])
    await service.in_batch([good])

    assert [r["referrer"]["reference"] async for r in service.db.referrals.find()] == ["HDL-G"]


async def test_a_batch_opens_each_partners_seal_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
):
    """The read-ahead opens the client's details and its handler takes them from there: a
    seal is decrypted (and its details validated) once per referral, not twice."""
    opened: list[str] = []
    open_sealed = sealing.open_sealed

    def counted(sealed: Any, key: bytes) -> bytes:
        opened.append(sealed.key_id)
        return open_sealed(sealed, key)

    monkeypatch.setattr(sealing, "open_sealed", counted)
    batch = [
        service.referral(resident(f"Open Eenmaal{n}", "3512 AB"), f"HDL-O{n}") for n in range(3)
    ]

    await service.in_batch(batch)

    assert sorted(opened) == [f"{GP}-HDL-O{n}" for n in range(3)]
    assert await service.db.clients.count_documents({}) == 3


async def test_a_batch_looks_up_on_their_own_only_the_keys_and_persons_read_ahead_as_known(
    service: Service,
):
    await service.in_batch([service.referral(resident("Carla Doornbos", "3512 CD"), "HDL-2")])
    service.commands.clear()
    resent = service.referral(resident("Carla Doornbos", "3512 CD"), "HDL-2")
    again = service.referral(resident("Carla Doornbos", "3512 CD"), "HDL-3")
    newcomer = service.referral(resident("Dirk Eelman", "3512 DE"), "HDL-4")

    await service.in_batch([resent, again, newcomer])

    referrals = {r["referrer"]["reference"]: r async for r in service.db.referrals.find()}
    assert sorted(referrals) == ["HDL-2", "HDL-3", "HDL-4"]
    assert referrals["HDL-3"]["duplicate_of"] == referrals["HDL-2"]["_id"]
    assert await service.db.clients.count_documents({}) == 2
    # Read ahead once each; then the resent key and the known person on their own.
    read_ahead, *alone = [c["filter"] for c in service.commands.to("referrals", "find")]
    assert read_ahead["idempotency_key"] == {"$in": ["kafka:HDL-2", "kafka:HDL-3", "kafka:HDL-4"]}
    assert [f["idempotency_key"] for f in alone if "idempotency_key" in f] == ["kafka:HDL-2"]
    read_ahead, *alone = [c["filter"] for c in service.commands.to("clients", "find")]
    assert len(read_ahead["identity_hash"]["$in"]) == 2
    assert len(alone) == 1  # Carla: known, so her client is found and her details renewed
    # Places: Carla's first referral and Dirk's (claimed ahead); none for the resent one or
    # the one linked to Carla's open referral.
    assert {p["_id"] async for p in service.db.places.find()} == {
        referrals["HDL-2"]["_id"],
        referrals["HDL-4"]["_id"],
    }
    assert await service.deps.caseloads.occupied(UTRECHT) == 2


async def test_a_batch_writes_each_collection_once_and_reads_nothing_it_wrote(
    service: Service,
):
    batch = [service.referral(resident(f"Resident Nummer{n:03d}", "3512 AB")) for n in range(20)]

    await service.in_batch(batch)

    assert await service.db.referrals.count_documents({"state": "accepted"}) == 20
    # The four collections and the outbox each written once (more than TOGETHER_AT_MOST
    # documents: a bulk write per collection, not one client-level bulkWrite).
    for collection in ("referrals", "clients", "client_keys", "consents", "outbox"):
        assert len(service.commands.to(collection, "insert")) == 1, collection
        assert service.commands.to(collection, "bulkWrite") == [], collection
    # For the batch: its keys looked up, and its persons, in one query each. Nothing of what
    # the batch wrote is read back, nor the places.
    assert len(service.commands.to("referrals", "find")) == 1
    assert len(service.commands.to("clients", "find")) == 1
    assert len(service.commands.to("client_keys", "find")) == 0
    # The organisation's caseload made once (per process), then the batch's places claimed
    # ahead, each count raised and place inserted, in one bulk write.
    assert len(service.commands.to("caseloads", "update")) == 1
    assert len(service.commands.to("places", "bulkWrite")) == 1
    assert service.commands.to("places", "find") == []
    assert service.commands.to("caseloads", "find") == []
    assert await service.deps.caseloads.occupied(UTRECHT) == 20


async def test_positions_on_the_waiting_list_count_those_waitlisted_earlier_in_the_batch(
    service: Service,
):
    # Amersfoort has one place.
    batch = [service.referral(resident(f"Wachtende Nummer{n}", "3811 AA")) for n in range(3)]

    published = await service.in_batch(batch)

    positions = [e.position for e in published if isinstance(e, ClientWaitlisted)]
    assert positions == [1, 2]
    states = sorted([r["state"] async for r in service.db.referrals.find()])
    assert states == ["accepted", "waitlisted", "waitlisted"]
    # Claimed ahead: the first place; the write stopped at the second, which found Amersfoort
    # full, and left the rest to their handlers, which found it full too.
    assert await service.deps.caseloads.occupied(AMERSFOORT) == 1
    assert await service.db.places.count_documents({"organisation_id": AMERSFOORT}) == 1


async def test_a_close_reaches_a_duplicate_that_arrived_in_the_same_batch(service: Service):
    original = service.referral(resident("Christiaan Mulderink", "3512 AB"))
    await service.in_batch([original])
    stored = await service.db.referrals.find_one({})
    duplicate = service.referral(resident("Christiaan Mulderink", "3512 AB"))
    closed = wrap(
        TrajectoryClosed(
            trajectory_id=new_id("trj"),
            client_ref=stored["client_ref"],
            organisation_id=UTRECHT,
            referral_id=stored["_id"],
            reason=ClosureReason.GOAL_REACHED,
            online_dossier_used=False,
            closed_at=NOW + timedelta(days=30),
        ),
        source="trajectory",
        time=NOW,
    )

    await service.in_batch([duplicate, closed])

    states = {r["_id"]: r["state"] async for r in service.db.referrals.find()}
    assert len(states) == 2 and set(states.values()) == {"closed"}


async def test_a_contact_card_is_sealed_from_what_the_command_holds(service: Service):
    details = PersonalDetails.model_validate(resident("Dirkjan Bosschaart", "3512 AD"))
    submission = reception.Submission(
        referrer=Referrer(ReferrerType.GP, GP, "HDL-2"),
        topic=ReferralTopic.DEBTS_MATERIAL,
        urgency=Urgency(),
        client=details,
        consent=reception.ConsentGiven(
            ConsentGiver.CLIENT,
            (ConsentPurpose.REFERRAL_FEEDBACK, ConsentPurpose.REMINDERS),
            NOW,
        ),
    )
    async with service.uow.command() as tx:
        referral = await reception.receive(tx, submission, service.deps.regions)
        outgoing = list(tx.outgoing)

    (shared,) = [e.data for e in outgoing if isinstance(e.data, ClientContactShared)]
    card = json.loads(sealing.open_sealed(shared.contact, service.deps.keys.contact_sharing))
    assert card == {"name": "Dirkjan", "phone": "06-12345678", "email": "resident@example.org"}
    assert shared.client_ref == referral.client_ref
    # The client's key and details were not read back to seal it.
    assert len(service.commands.to("client_keys", "find")) == 0
    assert len(service.commands.to("clients", "find")) == 1  # the person looked up, once
    assert await service.db.consents.count_documents({"client_ref": referral.client_ref}) == 2


async def test_a_front_door_referral_takes_three_round_trips_and_the_commit(service: Service):
    """The person looked up, the place claimed, the new documents and the outbox's in one
    bulk write; then the commit (issue 9: five inserts were five round trips)."""
    await service.deps.caseloads.claim(UTRECHT, "ref_warm")  # the caseload made
    service.commands.clear()
    details = PersonalDetails.model_validate(resident("Femke Brouwershaven", "3512 AF"))
    submission = reception.Submission(
        referrer=Referrer(ReferrerType.GP, GP, "HDL-3"),
        topic=ReferralTopic.DEBTS_MATERIAL,
        urgency=Urgency(),
        client=details,
        consent=reception.ConsentGiven(ConsentGiver.CLIENT, (ConsentPurpose.REMINDERS,), NOW),
    )

    async with service.uow.command() as tx:
        referral = await reception.receive(tx, submission, service.deps.regions)

    sent = [(c["name"], c["collection"]) for c in service.commands.sent]
    written = [c for c in sent if c[0] == "bulkWrite"]
    # The place claimed (its count and the place, one write), then the new documents.
    assert written[:2] == [("bulkWrite", "caseloads"), ("bulkWrite", "places")]
    assert sorted(written[2:]) == [
        ("bulkWrite", name)
        for name in ("client_keys", "clients", "consents", "outbox", "referrals")
    ]
    assert [c for c in sent if c[0] != "bulkWrite"] == [("find", "clients")]
    # The outbox's documents in the order the events were staged, after the new documents.
    [together] = service.commands.to("outbox", "bulkWrite")
    namespaces = [n["ns"].split(".", 1)[1] for n in together["nsInfo"]]
    assert namespaces[-1] == "outbox"
    staged = [r["headers"]["event_type"] async for r in service.db.outbox.find().sort("position")]
    assert staged == [type(e.data).event_type() for e in tx.outgoing]
    stored = await service.db.referrals.find_one({"_id": referral.id})
    assert stored is not None and stored["client_ref"] == referral.client_ref
    assert await service.db.client_keys.count_documents({"_id": referral.client_ref}) == 1


def at_the_door(who: dict[str, Any], reference: str, key: str | None = None) -> front_desk.Received:
    """A GP's referral at the front door, checked (as `api.refer` makes it)."""
    return front_desk.Received(
        reception.Submission(
            referrer=Referrer(ReferrerType.GP, GP, reference),
            topic=ReferralTopic.DEBTS_MATERIAL,
            urgency=Urgency(),
            client=PersonalDetails.model_validate(who),
            consent=reception.ConsentGiven(
                ConsentGiver.CLIENT, (ConsentPurpose.REFERRAL_FEEDBACK,), NOW
            ),
        ),
        idempotency_key=key,
        request_print=f"print-{reference}",
        referral_id=new_id("ref"),
        correlation_id=f"corr-{reference}",
    )


async def test_referrals_at_the_door_together_read_ahead_and_write_once(service: Service):
    """A group of the front door (ketenbus.intake.front_desk): its keys and persons read in
    one query each, its places claimed in one write, its documents written in one."""
    uow, caseloads, regions = service.uow, service.deps.caseloads, service.deps.regions
    [earlier] = await front_desk.receive_together(
        uow,
        caseloads,
        regions,
        [at_the_door(resident("Gerda Hoekstra", "3512 GH"), "HDL-1", "key-0001")],
    )
    assert earlier is not None
    service.commands.clear()
    group = [
        at_the_door(resident(f"Resident Nummer{n:03d}", "3512 AB"), f"HDL-N{n}", f"key-n{n:03d}")
        for n in range(8)
    ]
    replay = at_the_door(resident("Gerda Hoekstra", "3512 GH"), "HDL-1", "key-0001")
    unkeyed = at_the_door(resident("Henk Iepema", "3512 HI"), "HDL-2")
    repeated = at_the_door(resident("Ina Jansma", "3512 IJ"), "HDL-3", "key-n001")

    made = await front_desk.receive_together(
        uow, caseloads, regions, [*group, replay, unkeyed, repeated]
    )

    # Read ahead: the keys once, and the replayed key on its own; the persons once.
    assert len(service.commands.to("referrals", "find")) == 2
    assert len(service.commands.to("clients", "find")) == 1
    # The nine places claimed in one write, the documents and the outbox each in one.
    assert len(service.commands.to("places", "bulkWrite")) == 1
    for collection in ("referrals", "clients", "consents", "outbox"):
        written = service.commands.to(collection, "insert") + service.commands.to(
            collection, "bulkWrite"
        )
        assert len(written) == 1, collection
    # The replayed key and the key repeated within the group are left to their own path.
    assert made[8] is None and made[10] is None
    referrals = [m[0] for m in made if m is not None]
    assert [r.state.value for r in referrals] == ["accepted"] * 9
    assert all(not replayed for _, replayed in filter(None, made))
    stored = {r["_id"]: r async for r in service.db.referrals.find()}
    assert {r.id for r in referrals} | {earlier[0].id} == set(stored)
    assert {stored[r.id]["idempotency_key"] for r in referrals[:8]} == {
        f"key-n{n:03d}" for n in range(8)
    }
    # Each referral's events carry its own correlation id.
    outbox = [
        r
        async for r in service.db.outbox.find({"headers.event_type": ReferralReceived.event_type()})
    ]
    assert {r["headers"]["correlation_id"] for r in outbox} >= {"corr-HDL-N0", "corr-HDL-2"}
    assert await caseloads.occupied(UTRECHT) == 10


async def test_a_group_at_the_door_that_fails_gives_back_the_places_it_claimed(
    service: Service,
):
    """A group undone (here: its write conflicts with a key made meanwhile by another
    replica) holds no place afterwards: each of its referrals is then received alone and
    claims again (ketenbus.kit.together)."""
    uow, caseloads, regions = service.uow, service.deps.caseloads, service.deps.regions
    group = [
        at_the_door(resident(f"Resident Nummer{n:03d}", "3512 AB"), f"HDL-N{n}", f"key-n{n:03d}")
        for n in range(3)
    ]
    other_replica = at_the_door(resident("Jan Kuipers", "3512 JK"), "HDL-N1", "key-n001")

    read_ahead = reception.read_ahead
    with pytest.MonkeyPatch.context() as patch:

        async def made_meanwhile(*args: Any, **kwargs: Any) -> None:
            await read_ahead(*args, **kwargs)
            patch.setattr(reception, "read_ahead", read_ahead)
            await front_desk.receive_together(uow, caseloads, regions, [other_replica])

        patch.setattr(reception, "read_ahead", made_meanwhile)
        with pytest.raises(PyMongoError):  # a write conflict
            await front_desk.receive_together(uow, caseloads, regions, group)

    assert {p["_id"] async for p in service.db.places.find()} == {other_replica.referral_id}
    assert await caseloads.occupied(UTRECHT) == 1
    assert await service.db.referrals.count_documents({}) == 1


async def test_a_place_is_claimed_in_one_round_trip_and_found_again_by_its_holder(
    service: Service,
):
    caseloads = service.deps.caseloads  # Amersfoort: one place
    first = await caseloads.claim(AMERSFOORT, "ref_first")
    service.commands.clear()

    second = await caseloads.claim(AMERSFOORT, "ref_second")
    again = await caseloads.claim(AMERSFOORT, "ref_first")

    assert first.has_room and again.has_room and not second.has_room
    assert await caseloads.occupied(AMERSFOORT) == 1
    assert await caseloads.release(AMERSFOORT, "ref_first")
    assert not await caseloads.release(AMERSFOORT, "ref_first")  # given back once
    assert await caseloads.occupied(AMERSFOORT) == 0
    service.commands.clear()
    assert (await caseloads.claim(AMERSFOORT, "ref_second")).has_room
    assert service.commands.names() == [("bulkWrite", ("caseloads", "places"))]


async def test_a_place_claimed_again_while_places_are_free_is_counted_once(service: Service):
    caseloads = service.deps.caseloads  # Utrecht: a hundred places

    for _ in range(3):
        assert (await caseloads.claim(UTRECHT, "ref_retried")).has_room

    assert await caseloads.occupied(UTRECHT) == 1
    assert await service.db.places.count_documents({"organisation_id": UTRECHT}) == 1


async def test_places_claimed_ahead_again_are_counted_once_and_the_rest_left_to_claim(
    service: Service,
):
    caseloads = service.deps.caseloads  # Utrecht: a hundred places
    first = [(UTRECHT, "ref_a"), (UTRECHT, "ref_b")]
    assert await caseloads.claim_ahead(first) == {"ref_a", "ref_b"}

    # A batch undone and read ahead again: the write stops at the first place held already
    # and claims nothing after it; the handlers claim those one by one.
    again = [*first, (UTRECHT, "ref_c")]
    assert await caseloads.claim_ahead(again) == set()
    assert await caseloads.occupied(UTRECHT) == 2
    for _, referral_id in again:
        assert (await caseloads.claim(UTRECHT, referral_id)).has_room

    assert await caseloads.occupied(UTRECHT) == 3
    assert await service.db.places.count_documents({"organisation_id": UTRECHT}) == 3


async def test_reconcile_gives_back_stale_places_and_makes_the_accepted_ones_hold_again(
    service: Service,
):
    """At start-up: a claim whose referral never committed (older than the cutoff) gives its
    place back, a recent one is kept (its transaction may still commit), an accepted referral
    without a place gets one, and the count is the number of places again. A places document
    of the layout before 2026-12-03 is gone."""
    caseloads, db = service.deps.caseloads, service.db
    await service.in_batch([service.referral(resident("Gerrit Accepteerman", "3512 AB"))])
    accepted = await db.referrals.find_one({"state": "accepted"})
    await db.places.delete_one({"_id": accepted["_id"]})  # a place lost, the count kept
    await caseloads.claim(UTRECHT, "ref_stale")
    await db.places.update_one({"_id": "ref_stale"}, {"$set": {"since": NOW - timedelta(hours=1)}})
    await caseloads.claim(UTRECHT, "ref_recent")
    await db.caseloads.update_one({"_id": UTRECHT}, {"$inc": {"held": 5}})  # a count gone astray
    await db.places.insert_one({"_id": "welzijn-oud", "holders": ["ref_x"], "since": {}})

    await caseloads.reconcile([UTRECHT], older_than=timedelta(minutes=5))

    held = {p["_id"] async for p in db.places.find({"organisation_id": UTRECHT})}
    assert held == {accepted["_id"], "ref_recent"}
    assert await caseloads.occupied(UTRECHT) == 2
    assert await db.places.count_documents({"holders": {"$exists": True}}) == 0


async def test_a_referral_is_looked_up_by_its_key_through_an_index(service: Service):
    """The partial unique index keeps a key unique; SecantusDB does not search with it."""
    await service.in_batch([service.referral(resident("Evelien Graafsma", "3512 EV"))])

    explained = await service.db.command(
        "explain",
        {
            "find": "referrals",
            "filter": {"referrer.organisation_id": GP, "idempotency_key": "kafka:HDL-9"},
        },
    )

    assert "COLLSCAN" not in str(explained["queryPlanner"]["winningPlan"])
