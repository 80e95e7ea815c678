"""Intake's own database: referrals, consents, caseloads, and clients (encrypted) with keys."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ReferralStatusChanged
from ketenbus.contracts.values import ConsentPurpose, Sealed, new_id
from ketenbus.intake.domain import OPEN_STATES, Consent, Organisation, Referral, ReferralState
from ketenbus.intake.personal import (
    IntakeKeys,
    PersonalDetails,
    decrypt_details,
    encrypt_details,
    identity_hash,
    seal_contact_for_notifications,
    seal_contact_for_partner,
    unwrap_client_key,
    wrap_client_key,
)
from ketenbus.kit.errors import TransientError
from ketenbus.kit.uow import Transaction

T = TypeVar("T")


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The same Idempotency-Key from the same organisation always means the same referral.
    await db.referrals.create_index(
        [("referrer.organisation_id", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    await db.referrals.create_index("client_ref")
    await db.referrals.create_index("duplicate_of")
    await db.referrals.create_index(
        [("placement.organisation_id", 1), ("state", 1), ("crisis", -1), ("received_at", 1)]
    )
    await db.clients.create_index([("organisation_id", 1), ("identity_hash", 1)])
    await db.consents.create_index("client_ref")


class ConcurrentChange(TransientError):
    """Someone else changed the record since we read it: read again and retry."""


def _dump(adapter: TypeAdapter[Any], item: Any) -> dict[str, Any]:
    document: dict[str, Any] = adapter.dump_python(item, exclude={"events"})
    document["_id"] = document.pop("id")
    return document


def _load(adapter: TypeAdapter[T], document: dict[str, Any]) -> T:
    return adapter.validate_python({**document, "id": document["_id"]})


_REFERRAL = TypeAdapter(Referral)
_CONSENT = TypeAdapter(Consent)


def _referral_document(referral: Referral) -> dict[str, Any]:
    # `crisis` is kept beside the urgency so that the waiting list sorts on it.
    return {**_dump(_REFERRAL, referral), "crisis": referral.crisis}


class ReferralRepository:
    def __init__(self, tx: Transaction, kafka_partners: frozenset[str]) -> None:
        self.tx = tx
        self.collection = tx.db.referrals
        # Referrers with a pair of Kafka topics: they hear the closed loop on their outbound
        # topic. Every other referrer asks the status route; publishing to a topic that does
        # not exist would hold up every event behind it in the outbox.
        self.kafka_partners = kafka_partners

    async def add(
        self,
        referral: Referral,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        await self.collection.insert_one(
            {
                **_referral_document(referral),
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
            },
            session=self.tx.session,
        )
        self._publish(referral)

    async def save(self, referral: Referral) -> None:
        state = _referral_document(referral)
        del state["_id"]
        await self.collection.update_one(
            {"_id": referral.id}, {"$set": state}, session=self.tx.session
        )
        self._publish(referral)

    async def get(self, referral_id: str) -> Referral | None:
        document = await self.collection.find_one({"_id": referral_id}, session=self.tx.session)
        return _load(_REFERRAL, document) if document else None

    async def by_idempotency_key(
        self, organisation_id: str, key: str
    ) -> tuple[Referral, str | None] | None:
        """The referral made under this key, with the fingerprint of the request that made it."""
        document = await self.collection.find_one(
            {"referrer.organisation_id": organisation_id, "idempotency_key": key},
            session=self.tx.session,
        )
        return (_load(_REFERRAL, document), document.get("fingerprint")) if document else None

    async def open_for_client(self, organisation_id: str, client_ref: str) -> Referral | None:
        document = await self.collection.find_one(
            {
                "client_ref": client_ref,
                "placement.organisation_id": organisation_id,
                "state": {"$in": [s.value for s in OPEN_STATES]},
            },
            sort=[("received_at", ASCENDING)],
            session=self.tx.session,
        )
        return _load(_REFERRAL, document) if document else None

    async def waiting_counts(self, organisation_id: str) -> tuple[int, int]:
        """(crises waiting, everyone waiting) at an organisation."""
        query = {"placement.organisation_id": organisation_id, "state": "waitlisted"}
        everyone = await self.collection.count_documents(query, session=self.tx.session)
        crises = await self.collection.count_documents(
            {**query, "crisis": True}, session=self.tx.session
        )
        return crises, everyone

    async def next_waiting(self, organisation_id: str) -> Referral | None:
        """First on the waiting list: crisis first, then whoever waits longest."""
        document = await self.collection.find_one(
            {"placement.organisation_id": organisation_id, "state": "waitlisted"},
            sort=[("crisis", DESCENDING), ("received_at", ASCENDING)],
            session=self.tx.session,
        )
        return _load(_REFERRAL, document) if document else None

    async def linked_to(self, referral_id: str) -> list[Referral]:
        cursor = self.collection.find(
            {"duplicate_of": referral_id, "state": ReferralState.LINKED.value},
            session=self.tx.session,
        )
        return [_load(_REFERRAL, d) async for d in cursor]

    async def of_client(self, client_ref: str) -> list[Referral]:
        cursor = self.collection.find({"client_ref": client_ref}, session=self.tx.session)
        return [_load(_REFERRAL, d) async for d in cursor]

    def _publish(self, referral: Referral) -> None:
        self.tx.publish_all(
            event
            for event in referral.events
            if not isinstance(event, ReferralStatusChanged)
            or event.referrer_organisation_id in self.kafka_partners
        )
        referral.events.clear()


class ConsentRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.consents

    async def add(self, consent: Consent) -> None:
        await self.collection.insert_one(_dump(_CONSENT, consent), session=self.tx.session)
        self._publish(consent)

    async def save(self, consent: Consent) -> None:
        await self.collection.replace_one(
            {"_id": consent.id}, _dump(_CONSENT, consent), session=self.tx.session
        )
        self._publish(consent)

    async def get(self, consent_id: str) -> Consent | None:
        document = await self.collection.find_one({"_id": consent_id}, session=self.tx.session)
        return _load(_CONSENT, document) if document else None

    async def of_client(self, client_ref: str) -> list[Consent]:
        cursor = self.collection.find({"client_ref": client_ref}, session=self.tx.session)
        return [_load(_CONSENT, d) async for d in cursor.sort("granted_at", ASCENDING)]

    async def active(
        self, client_ref: str, partner_organisation_id: str, purpose: ConsentPurpose
    ) -> Consent | None:
        document = await self.collection.find_one(
            {
                "client_ref": client_ref,
                "partner_organisation_id": partner_organisation_id,
                "purpose": purpose.value,
                "withdrawn_at": None,
            },
            session=self.tx.session,
        )
        return _load(_CONSENT, document) if document else None

    def _publish(self, consent: Consent) -> None:
        self.tx.publish_all(consent.events)
        consent.events.clear()


class OrganisationRepository:
    """Caseloads. The capacity comes from configuration; the count of places taken from here."""

    def __init__(self, tx: Transaction, capacity_of: Any) -> None:
        self.tx = tx
        self.capacity_of = capacity_of
        self.collection = tx.db.organisations

    async def get(self, organisation_id: str) -> Organisation:
        document = await self.collection.find_one({"_id": organisation_id}, session=self.tx.session)
        capacity = self.capacity_of(organisation_id)
        if document is None:
            return Organisation(organisation_id, capacity)
        return Organisation(organisation_id, capacity, document["occupied"], document["version"])

    async def save(self, organisation: Organisation) -> None:
        expected = organisation.version
        organisation.version += 1
        state = {"occupied": organisation.occupied, "version": organisation.version}
        try:
            result = await self.collection.update_one(
                {"_id": organisation.id, "version": expected},
                {"$set": state},
                upsert=expected == 0,
                session=self.tx.session,
            )
        except DuplicateKeyError:
            raise ConcurrentChange(organisation.id) from None
        if result.matched_count != 1 and result.upserted_id is None:
            raise ConcurrentChange(organisation.id)


class ClientRepository:
    """Clients and their keys. The only place personal data is decrypted."""

    def __init__(self, tx: Transaction, keys: IntakeKeys) -> None:
        self.tx = tx
        self.keys = keys

    async def register(self, details: PersonalDetails, organisation_id: str) -> str:
        """The client's reference at this organisation: existing if we know the person."""
        person = identity_hash(self.keys.pseudonym, details)
        known = await self.tx.db.clients.find_one(
            {"organisation_id": organisation_id, "identity_hash": person}, session=self.tx.session
        )
        if known is not None and await self._data_key(known["_id"]) is not None:
            client_ref = str(known["_id"])
            # The newest details win: a new phone number reaches the client, the old does not.
            await self.tx.db.clients.update_one(
                {"_id": client_ref},
                {"$set": {"details": await self._encrypted(client_ref, details)}},
                session=self.tx.session,
            )
            return client_ref
        client_ref = new_id("cl")
        data_key = sealing.new_key()
        await self.tx.db.client_keys.insert_one(
            {"_id": client_ref, **wrap_client_key(self.keys, client_ref, data_key)},
            session=self.tx.session,
        )
        await self.tx.db.clients.insert_one(
            {
                "_id": client_ref,
                "organisation_id": organisation_id,
                "identity_hash": person,
                "details": encrypt_details(client_ref, data_key, details),
            },
            session=self.tx.session,
        )
        return client_ref

    async def _encrypted(self, client_ref: str, details: PersonalDetails) -> dict[str, str]:
        data_key = await self._data_key(client_ref)
        assert data_key is not None
        return encrypt_details(client_ref, data_key, details)

    async def organisation_of(self, client_ref: str) -> str | None:
        client = await self.tx.db.clients.find_one(
            {"_id": client_ref}, projection=["organisation_id"], session=self.tx.session
        )
        return client["organisation_id"] if client else None

    async def _data_key(self, client_ref: str) -> bytes | None:
        stored = await self.tx.db.client_keys.find_one({"_id": client_ref}, session=self.tx.session)
        return unwrap_client_key(self.keys, client_ref, stored) if stored else None

    async def details(self, client_ref: str) -> PersonalDetails | None:
        return (await self._opened(client_ref))[1]

    async def _opened(self, client_ref: str) -> tuple[bytes | None, PersonalDetails | None]:
        """The client's data key and details, the key read once."""
        data_key = await self._data_key(client_ref)
        if data_key is None:
            return None, None
        client = await self.tx.db.clients.find_one({"_id": client_ref}, session=self.tx.session)
        if client is None:
            return data_key, None
        return data_key, decrypt_details(client_ref, data_key, client["details"])

    async def contact_for_notifications(self, client_ref: str) -> Sealed | None:
        data_key, details = await self._opened(client_ref)
        if data_key is None or details is None:
            return None
        return seal_contact_for_notifications(self.keys, client_ref, data_key, details)

    async def contact_for_partner(self, client_ref: str, partner_key: bytes) -> Sealed | None:
        data_key, details = await self._opened(client_ref)
        if data_key is None or details is None:
            return None
        return seal_contact_for_partner(partner_key, client_ref, data_key, details)

    async def erase(self, client_ref: str, at: datetime) -> None:
        """Shred the client's key: intake's encrypted details can no longer be opened. (Copies
        sealed for a recipient carry the key wrapped for it: the recipient deletes them, or the
        topic's retention does.) The keyed hash goes too, so the person is not recognised."""
        await self.tx.db.client_keys.delete_one({"_id": client_ref}, session=self.tx.session)
        await self.tx.db.clients.update_one(
            {"_id": client_ref},
            {"$set": {"erased_at": at}, "$unset": {"identity_hash": ""}},
            session=self.tx.session,
        )


class RejectionRepository:
    """Which dead-lettered partner messages the partner has been told about: once each."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def first_time(self, source: str) -> bool:
        # Looked up first: a duplicate-key error would abort the whole transaction.
        if await self.tx.db.rejections.find_one({"_id": source}, session=self.tx.session):
            return False
        await self.tx.db.rejections.insert_one(
            {"_id": source, "at": self.tx.clock.now()}, session=self.tx.session
        )
        return True


class IntakeTransaction(Transaction):
    @cached_property
    def rejections(self) -> RejectionRepository:
        return RejectionRepository(self)

    @cached_property
    def referrals(self) -> ReferralRepository:
        return ReferralRepository(self, self.resources["kafka_partners"])

    @cached_property
    def consents(self) -> ConsentRepository:
        return ConsentRepository(self)

    @cached_property
    def organisations(self) -> OrganisationRepository:
        return OrganisationRepository(self, self.resources["capacities"].of)

    @cached_property
    def clients(self) -> ClientRepository:
        return ClientRepository(self, self.resources["keys"])
