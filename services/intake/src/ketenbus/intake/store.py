"""Intake's own database: referrals, consents, caseloads, and clients (encrypted) with keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
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
from ketenbus.intake.signal_store import SignalRepository
from ketenbus.kit.clock import Clock
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

    async def waiting_as_committed(self, organisation_id: str) -> AsyncIterator[str]:
        """The waiting list as committed by now, in order, outside this transaction's
        snapshot: a place given back must reach whoever joined the list since it began."""
        cursor = self.collection.find(
            {"placement.organisation_id": organisation_id, "state": "waitlisted"},
            projection=["_id"],
            sort=[("crisis", DESCENDING), ("received_at", ASCENDING)],
        )
        async for document in cursor:
            yield document["_id"]

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


class Caseloads:
    """The places each organisation has, taken and given back one atomic update at a time.

    Why not the caseload count inside the referral's transaction (as before issue 9): every
    referral to an organisation wrote that one document, so concurrent referrals conflicted,
    and after the kit's retries the front door answered 503 (107 of 250 at 25 referrals/s).
    Why not triage in the consumer: the referrer is promised an answer (accepted or
    waitlisted) in the response, and the closed loop's tests and partners rely on it.

    So a place is claimed *outside* any transaction: one conditional update of the
    organisation's places document, `$push` of the referral id only while fewer than
    `capacity` ids are held. The database applies single-document updates one after another,
    so no two referrals get the last place and no caller sees a conflict. The claim is
    idempotent (a referral that holds a place keeps it), so a retried transaction claims
    nothing twice, and it is given back by the same id (`$pull`), so a repeated release
    frees nothing twice. What the transaction does not undo, the caller does: a claim whose
    referral did not commit as accepted is released (`release_unless_accepted`); a process
    killed between claim and commit leaves a hold that `reconcile` removes at start-up.
    """

    def __init__(self, db: AsyncDatabase[Any], capacity_of: Any, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.collection = db.places
        self.capacity_of = capacity_of
        self._known: set[str] = set()

    async def claim(self, organisation_id: str, referral_id: str) -> Organisation:
        """A place for this referral if one is free (or it holds one already). The answer is
        the caseload as this referral sees it: room left if and only if the place is its.

        One round trip when a place is free, two when not; the holders are never read back:
        the list is as long as the caseload, and reading it for every referral made the
        claim cost more the more places were held (issue 9)."""
        capacity = self.capacity_of(organisation_id)
        if capacity is None:
            return Organisation(organisation_id, None)
        await self._exists(organisation_id)
        taken = (
            capacity > 0
            and (
                await self.collection.update_one(
                    {
                        "_id": organisation_id,
                        "holders": {"$ne": referral_id},
                        f"holders.{capacity - 1}": {"$exists": False},
                    },
                    {
                        "$push": {"holders": referral_id},
                        "$set": {f"since.{referral_id}": self.clock.now()},
                    },
                )
            ).modified_count
            == 1
        )
        if taken or await self._holds(organisation_id, referral_id):
            # The last free place as triage sees it: its take_place counts this one.
            return Organisation(organisation_id, capacity, occupied=capacity - 1)
        return Organisation(organisation_id, capacity, occupied=capacity)

    async def _holds(self, organisation_id: str, referral_id: str) -> bool:
        """Whether the referral holds a place already (a retried command, a redelivery)."""
        held = await self.collection.find_one(
            {"_id": organisation_id, "holders": referral_id}, projection=["_id"]
        )
        return held is not None

    async def release(self, organisation_id: str, referral_id: str) -> None:
        await self.collection.update_one(
            {"_id": organisation_id},
            {"$pull": {"holders": referral_id}, "$unset": {f"since.{referral_id}": ""}},
        )

    async def release_unless_accepted(self, referral_id: str) -> list[str]:
        """After a failed command: the place goes back unless the referral did commit as
        accepted (a commit whose result was unknown may have happened). Returns the
        organisations that have a place free again."""
        referral = await self.db.referrals.find_one({"_id": referral_id}, projection=["state"])
        if referral is not None and referral["state"] == ReferralState.ACCEPTED.value:
            return []
        freed = []
        async for document in self.collection.find({"holders": referral_id}, projection=["_id"]):
            organisation_id = document["_id"]
            released = await self.collection.update_one(
                {"_id": organisation_id, "holders": referral_id},
                {"$pull": {"holders": referral_id}, "$unset": {f"since.{referral_id}": ""}},
            )
            if released.modified_count:
                freed.append(organisation_id)
        return freed

    async def occupied(self, organisation_id: str) -> int:
        document = await self.collection.find_one({"_id": organisation_id}) or {}
        return len(document.get("holders", []))

    async def reconcile(self, organisation_ids: Iterable[str], older_than: timedelta) -> None:
        """At start-up: the places held are exactly the accepted referrals, plus claims so
        recent that their transaction may still commit (another replica's)."""
        cutoff = self.clock.now() - older_than
        for organisation_id in organisation_ids:
            await self._exists(organisation_id)
            accepted = {
                d["_id"]
                async for d in self.db.referrals.find(
                    {
                        "placement.organisation_id": organisation_id,
                        "state": ReferralState.ACCEPTED.value,
                    },
                    projection=["_id"],
                )
            }
            document = await self.collection.find_one({"_id": organisation_id}) or {}
            since = document.get("since", {})
            stale = [
                holder
                for holder in document.get("holders", [])
                if holder not in accepted
                and (holder not in since or _aware(since[holder]) < cutoff)
            ]
            missing = sorted(accepted - set(document.get("holders", [])))
            for holder in stale:
                await self.release(organisation_id, holder)
            if missing:
                await self.collection.update_one(
                    {"_id": organisation_id}, {"$push": {"holders": {"$each": missing}}}
                )

    async def _exists(self, organisation_id: str) -> None:
        if organisation_id in self._known:
            return
        # Made at the same moment by another referral: it exists, which is the point.
        with suppress(DuplicateKeyError):
            await self.collection.update_one(
                {"_id": organisation_id},
                {"$setOnInsert": {"holders": [], "since": {}}},
                upsert=True,
            )
        self._known.add(organisation_id)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        return data_key, decrypt_details(client_ref, data_key, client["details"], PersonalDetails)

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
    def __init__(
        self,
        *args: Any,
        keys: IntakeKeys,
        caseloads: Caseloads,
        kafka_partners: frozenset[str],
        **context: Any,
    ) -> None:
        super().__init__(*args, **context)
        self.keys = keys
        # Not bound to this transaction: see `Caseloads`.
        self.caseloads = caseloads
        # Partners that refer on Kafka: they hear about their referrals on their own topic.
        self.kafka_partners = kafka_partners

    @cached_property
    def rejections(self) -> RejectionRepository:
        return RejectionRepository(self)

    @cached_property
    def referrals(self) -> ReferralRepository:
        return ReferralRepository(self, self.kafka_partners)

    @cached_property
    def consents(self) -> ConsentRepository:
        return ConsentRepository(self)

    @cached_property
    def clients(self) -> ClientRepository:
        return ClientRepository(self, self.keys)

    @cached_property
    def signals(self) -> SignalRepository:
        return SignalRepository(self, self.keys)
