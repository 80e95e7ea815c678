"""Trajectory's own database: one document per trajectory (appointments, contacts, modules,
homework and hand-offs inside it), the consents for hand-offs, and the contact cards sealed
for the partners."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.events import PartnerContactSealed
from ketenbus.contracts.values import Sealed
from ketenbus.kit.dead_letter_purges import DeadLetterPurges
from ketenbus.kit.gathered import GatheredDocuments
from ketenbus.kit.uow import Transaction
from ketenbus.trajectory.domain import HandOffConsent, Trajectory


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # One trajectory per referral, however often the referral event is delivered.
    await db.trajectories.create_index("referral_id", unique=True)
    await db.trajectories.create_index([("organisation_id", 1), ("client_ref", 1)])
    await db.trajectories.create_index("client_ref")
    await db.trajectories.create_index("modules.enrolment_id")
    await db.trajectories.create_index("partner_referrals.id")
    await db.trajectories.create_index([("appointments.status", 1), ("appointments.ends_at", 1)])
    await db.consents.create_index([("client_ref", 1), ("partner_organisation_id", 1)])
    await db.partner_cards.create_index([("client_ref", 1), ("partner_organisation_id", 1)])
    await db.partner_cards.create_index("consent_id")


class TrajectoryRepository:
    """The trajectories as one unit of work sees them. In a transaction each is read once and
    kept (`GatheredDocuments`, shared by every event of a consumed batch): a later read,
    by whatever key, gets the same object with what the handlers before changed, and `add`
    and `save` gather what the unit of work writes in one bulk write when it ends, a changed
    one only at the version it was read at. Their events are published at once, so the
    outbox keeps the handlers' order. Outside a transaction (`uow.reading()`) reads go to
    the database, and nothing is written."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.trajectories

    async def add(self, trajectory: Trajectory) -> None:
        self._documents().add(trajectory)
        self._publish(trajectory)

    async def save(self, trajectory: Trajectory) -> None:
        """Written when the unit of work ends, at the version it was read at; raises
        ConcurrentChange there when someone else changed it meanwhile."""
        self._documents().save(trajectory)
        self._publish(trajectory)

    async def get(self, trajectory_id: str) -> Trajectory | None:
        return await self._documents().get(trajectory_id)

    async def read_ahead(self, trajectory_ids: Iterable[str]) -> None:
        """These trajectories read in one query, for the actions of a group (desk.py)."""
        await self._documents().read_ahead("_id", trajectory_ids)

    async def by_referral(self, referral_id: str) -> Trajectory | None:
        return await self._documents().one(
            {"referral_id": referral_id}, lambda t: t.referral_id == referral_id
        )

    async def read_ahead_by_referral(self, referral_ids: Iterable[str]) -> None:
        """The trajectories of these referrals read in one query, for a batch's handlers."""
        await self._documents().read_ahead("referral_id", referral_ids)

    async def by_enrolment(self, enrolment_id: str) -> Trajectory | None:
        return await self._documents().one(
            {"modules.enrolment_id": enrolment_id},
            lambda t: any(m.enrolment_id == enrolment_id for m in t.modules),
        )

    async def by_partner_referral(self, partner_referral_id: str) -> Trajectory | None:
        return await self._documents().one(
            {"partner_referrals.id": partner_referral_id},
            lambda t: any(p.id == partner_referral_id for p in t.partner_referrals),
        )

    async def of_client(self, client_ref: str) -> list[Trajectory]:
        query = {"client_ref": client_ref}
        documents = await self.collection.find(query, session=self.tx.session).to_list()
        return await self._documents().merged(documents, lambda t: t.client_ref == client_ref)

    async def find(self, organisation_id: str, **criteria: str) -> list[Trajectory]:
        """The organisation's newest hundred that meet the criteria (trajectory's fields)."""
        query = {"organisation_id": organisation_id, **criteria}
        documents = await (
            self.collection.find(query, session=self.tx.session)
            .sort("opened_at", -1)
            .limit(100)
            .to_list()
        )
        found = await self._documents().merged(
            documents,
            lambda t: all(getattr(t, field) == value for field, value in query.items()),
        )
        return sorted(found, key=lambda t: t.opened_at, reverse=True)[:100]

    async def with_unregistered_appointments(self, ended_before: datetime) -> list[str]:
        """Trajectories with an appointment that ended before then and still has no
        attendance registered, and no reminder sent about it yet: as stored (the overdue
        check asks before its units of work)."""
        cursor = self.collection.find(
            {
                "closed_at": None,
                "appointments": {
                    "$elemMatch": {
                        "status": "scheduled",
                        "overdue_reported_at": None,
                        "ends_at": {"$lte": ended_before},
                    }
                },
            },
            projection=["_id"],
            session=self.tx.session,
        )
        return [d["_id"] async for d in cursor.limit(200)]

    def _documents(self) -> GatheredDocuments[Trajectory]:
        return GatheredDocuments.of(self.tx, self.collection, STORED, version="version")

    def _publish(self, trajectory: Trajectory) -> None:
        self.tx.publish_all(trajectory.events)
        trajectory.events.clear()


class StoredTrajectory:
    """A trajectory as its document (`Codec`): its events are not kept, they go out."""

    def id_of(self, trajectory: Trajectory) -> str:
        return trajectory.id

    async def to_document(self, trajectory: Trajectory) -> dict[str, Any]:
        """The dict `dataclasses.asdict` made (enumerations and datetimes as they are; a
        test holds them to it), by pydantic's serializer: asdict deep-copies every value,
        some ten times slower for a new trajectory, thirty for one with every list filled."""
        document = _TRAJECTORY.dump_python(trajectory, exclude={"events"})
        document["_id"] = document.pop("id")
        return document

    async def from_document(self, document: dict[str, Any]) -> Trajectory:
        """Enumerations and nested appointments included."""
        return _TRAJECTORY.validate_python({**document, "id": document["_id"]})


_TRAJECTORY = TypeAdapter(Trajectory)
STORED = StoredTrajectory()


class ConsentRepository:
    """The client's consents to a hand-off, as intake announced them on the clients topic, and
    the contact cards intake sealed for the partners, as the compacted contacts topic holds
    them: the latest per client and partner, under the topic's key, gone at its tombstone.
    Trajectory cannot open a card; it passes it on at a hand-off under the consent in force."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.consents
        self.cards = tx.db.partner_cards

    async def granted(
        self, consent_id: str, client_ref: str, partner_organisation_id: str, purpose: str
    ) -> None:
        await self.collection.update_one(
            {"_id": consent_id},
            {
                "$set": {
                    "client_ref": client_ref,
                    "partner_organisation_id": partner_organisation_id,
                    "purpose": purpose,
                },
                "$setOnInsert": {"withdrawn_at": None},
            },
            upsert=True,
            session=self.tx.session,
        )

    async def withdrawn(self, consent_id: str, at: datetime) -> None:
        await self.collection.update_one(
            {"_id": consent_id},
            {"$set": {"withdrawn_at": at}},
            upsert=True,
            session=self.tx.session,
        )

    async def was_withdrawn(self, consent_id: str) -> bool:
        document = await self.collection.find_one(
            {"_id": consent_id, "withdrawn_at": {"$ne": None}}, session=self.tx.session
        )
        return document is not None

    async def keep_card(self, key: str, card: PartnerContactSealed) -> None:
        """The card under its key on the contacts topic, replacing the one before it there."""
        await self.cards.replace_one(
            {"_id": key},
            {
                "client_ref": card.client_ref,
                "partner_organisation_id": card.partner_organisation_id,
                "consent_id": card.consent_id,
                "contact": card.contact.model_dump(),
                "sealed_at": card.sealed_at,
            },
            upsert=True,
            session=self.tx.session,
        )

    async def forget_card(self, key: str) -> None:
        await self.cards.delete_one({"_id": key}, session=self.tx.session)

    async def forget_cards_of_consent(self, consent_id: str) -> None:
        await self.cards.delete_many({"consent_id": consent_id}, session=self.tx.session)

    async def for_hand_off(
        self, client_ref: str, partner_organisation_id: str
    ) -> HandOffConsent | None:
        """The partner's card, when the consent it was sealed under is in force."""
        card = await self.cards.find_one(
            {"client_ref": client_ref, "partner_organisation_id": partner_organisation_id},
            session=self.tx.session,
        )
        if card is None:
            return None
        consent = await self.collection.find_one(
            {
                "_id": card["consent_id"],
                "client_ref": client_ref,
                "partner_organisation_id": partner_organisation_id,
                "purpose": "debt_counselling",
                "withdrawn_at": None,
            },
            session=self.tx.session,
        )
        if consent is None:
            return None  # not heard of yet, or withdrawn: nothing goes to the partner
        return HandOffConsent(
            consent["_id"], partner_organisation_id, Sealed.model_validate(card["contact"])
        )

    async def forget_client(self, client_ref: str) -> None:
        """The client's consents and every card sealed for a partner."""
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)
        await self.cards.delete_many({"client_ref": client_ref}, session=self.tx.session)


class TrajectoryTransaction(Transaction):
    @cached_property
    def trajectories(self) -> TrajectoryRepository:
        return TrajectoryRepository(self)

    @cached_property
    def consents(self) -> ConsentRepository:
        return ConsentRepository(self)

    @cached_property
    def dead_letter_purges(self) -> DeadLetterPurges:
        return DeadLetterPurges(self)
