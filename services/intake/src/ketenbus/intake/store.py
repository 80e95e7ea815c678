"""Intake's own database: referrals, clients (encrypted), their keys, idempotency keys."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts import sealing
from ketenbus.contracts.events import Urgency
from ketenbus.contracts.values import (
    DeclineReason,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    Sealed,
    new_id,
)
from ketenbus.intake.domain import Referral, ReferralState, Referrer
from ketenbus.intake.personal import (
    IntakeKeys,
    PersonalDetails,
    decrypt_details,
    encrypt_details,
    identity_hash,
    seal_contact_for_notifications,
    unwrap_client_key,
    wrap_client_key,
)
from ketenbus.kit.uow import Transaction


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The same Idempotency-Key from the same organisation always means the same referral.
    await db.referrals.create_index(
        [("referrer.organisation_id", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    await db.referrals.create_index("client_ref")
    await db.clients.create_index([("organisation_id", 1), ("identity_hash", 1)])


class ReferralRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.referrals

    async def add(self, referral: Referral, idempotency_key: str | None = None) -> None:
        await self.collection.insert_one(
            {**_referral_document(referral), "idempotency_key": idempotency_key},
            session=self.tx.session,
        )
        self.tx.publish_all(referral.events)
        referral.events.clear()

    async def save(self, referral: Referral) -> None:
        state = _referral_document(referral)
        del state["_id"]
        await self.collection.update_one(
            {"_id": referral.id}, {"$set": state}, session=self.tx.session
        )
        self.tx.publish_all(referral.events)
        referral.events.clear()

    async def get(self, referral_id: str) -> Referral | None:
        document = await self.collection.find_one({"_id": referral_id}, session=self.tx.session)
        return _referral_from(document) if document else None

    async def by_idempotency_key(self, organisation_id: str, key: str) -> Referral | None:
        document = await self.collection.find_one(
            {"referrer.organisation_id": organisation_id, "idempotency_key": key},
            session=self.tx.session,
        )
        return _referral_from(document) if document else None


def _referral_document(referral: Referral) -> dict[str, Any]:
    return {
        "_id": referral.id,
        "client_ref": referral.client_ref,
        "referrer": {
            "type": referral.referrer.type.value,
            "organisation_id": referral.referrer.organisation_id,
            "reference": referral.referrer.reference,
        },
        "topic": referral.topic.value,
        "urgency": referral.urgency.model_dump(),
        "postcode_area": referral.postcode_area,
        "consent_id": referral.consent_id,
        "received_at": referral.received_at,
        "state": referral.state.value,
        "organisation_id": referral.organisation_id,
        "municipality": referral.municipality,
        "loop": {
            "status": referral.loop_status.value,
            "reason": referral.loop_reason.value if referral.loop_reason else None,
            "redirect": referral.loop_redirect,
            "changed_at": referral.loop_changed_at,
        },
    }


def _referral_from(document: dict[str, Any]) -> Referral:
    referrer = document["referrer"]
    return Referral(
        id=document["_id"],
        client_ref=document["client_ref"],
        referrer=Referrer(
            ReferrerType(referrer["type"]), referrer["organisation_id"], referrer["reference"]
        ),
        topic=ReferralTopic(document["topic"]),
        urgency=Urgency(**document["urgency"]),
        postcode_area=document["postcode_area"],
        consent_id=document["consent_id"],
        received_at=document["received_at"],
        state=ReferralState(document["state"]),
        organisation_id=document["organisation_id"],
        municipality=document["municipality"],
        loop_status=ReferralStatus(document["loop"]["status"]),
        loop_reason=DeclineReason(document["loop"]["reason"])
        if document["loop"]["reason"]
        else None,
        loop_redirect=document["loop"]["redirect"],
        loop_changed_at=document["loop"]["changed_at"],
    )


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
            return str(known["_id"])
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

    async def _data_key(self, client_ref: str) -> bytes | None:
        stored = await self.tx.db.client_keys.find_one({"_id": client_ref}, session=self.tx.session)
        return unwrap_client_key(self.keys, client_ref, stored) if stored else None

    async def details(self, client_ref: str) -> PersonalDetails | None:
        data_key = await self._data_key(client_ref)
        client = await self.tx.db.clients.find_one({"_id": client_ref}, session=self.tx.session)
        if data_key is None or client is None:
            return None
        return decrypt_details(client_ref, data_key, client["details"])

    async def contact_for_notifications(self, client_ref: str) -> Sealed | None:
        data_key = await self._data_key(client_ref)
        details = await self.details(client_ref)
        if data_key is None or details is None:
            return None
        return seal_contact_for_notifications(self.keys, client_ref, data_key, details)


class IntakeTransaction(Transaction):
    @cached_property
    def referrals(self) -> ReferralRepository:
        return ReferralRepository(self)

    @cached_property
    def clients(self) -> ClientRepository:
        return ClientRepository(self, self.resources["keys"])
