"""Intake's own database: referrals, consents, caseloads, and clients (encrypted) with keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ReferralStatusChanged
from ketenbus.contracts.values import ConsentPurpose, Sealed, new_id
from ketenbus.intake.caseloads import Caseloads
from ketenbus.intake.documents import CONSENT, REFERRAL, consent_document, load, referral_document
from ketenbus.intake.domain import OPEN_STATES, Consent, Organisation, Referral, ReferralState
from ketenbus.intake.gathered import GatheredIntake, NewReferral, OpenedClient
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
from ketenbus.kit.errors import TransientError
from ketenbus.kit.uow import Transaction


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The same Idempotency-Key from the same organisation always means the same referral.
    await db.referrals.create_index(
        [("referrer.organisation_id", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    # The lookup by key (every partner referral on Kafka makes one) needs an index of its own:
    # SecantusDB does not find documents through the partial one above, and scanned every
    # referral instead (7 ms a lookup at 3,000 referrals, and growing; issue 9).
    await db.referrals.create_index("idempotency_key")
    await db.referrals.create_index("client_ref")
    await db.referrals.create_index("duplicate_of")
    await db.referrals.create_index(
        [("placement.organisation_id", 1), ("state", 1), ("crisis", -1), ("received_at", 1)]
    )
    await db.clients.create_index([("organisation_id", 1), ("identity_hash", 1)])
    # A batch's read-ahead asks for its persons at every organisation at once.
    await db.clients.create_index("identity_hash")
    await db.consents.create_index("client_ref")


class ConcurrentChange(TransientError):
    """Someone else changed the record since we read it: read again and retry."""


_GATHERED = "intake"


def _gathered(tx: Transaction) -> GatheredIntake:
    """What this unit of work adds, written when it ends (ketenbus.intake.gathered)."""
    return tx.deferred(_GATHERED, lambda: GatheredIntake(tx.db, tx.session))


def _seen(tx: Transaction) -> GatheredIntake | None:
    """What this unit of work added (or read ahead) so far, for a read to see; None when it
    did neither (and always while only reading: a read never makes the gathering)."""
    return cast(GatheredIntake | None, tx.gathered.get(_GATHERED))


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
        """Inserted when the unit of work ends, with the others it adds; seen before that."""
        _gathered(self.tx).referrals[referral.id] = NewReferral(
            referral, idempotency_key, fingerprint
        )
        self._publish(referral)

    async def save(self, referral: Referral) -> None:
        seen = _seen(self.tx)
        if seen is not None and referral.id in seen.referrals:
            seen.referrals[referral.id].referral = referral  # inserted in this state
        else:
            state = referral_document(referral)
            del state["_id"]
            await self.collection.update_one(
                {"_id": referral.id}, {"$set": state}, session=self.tx.session
            )
        self._publish(referral)

    async def get(self, referral_id: str) -> Referral | None:
        seen = _seen(self.tx)
        if seen is not None and referral_id in seen.referrals:
            return seen.referrals[referral_id].referral
        document = await self.collection.find_one({"_id": referral_id}, session=self.tx.session)
        return load(REFERRAL, document) if document else None

    async def by_idempotency_key(
        self, organisation_id: str, key: str
    ) -> tuple[Referral, str | None] | None:
        """The referral made under this key, with the fingerprint of the request that made it."""
        seen = _seen(self.tx)
        for new in seen.referrals.values() if seen is not None else ():
            if (new.referral.referrer.organisation_id, new.idempotency_key) == (
                organisation_id,
                key,
            ):
                return new.referral, new.fingerprint
        if self.unused_as_read_ahead(organisation_id, key):
            return None
        document = await self.collection.find_one(
            {"referrer.organisation_id": organisation_id, "idempotency_key": key},
            session=self.tx.session,
        )
        return (load(REFERRAL, document), document.get("fingerprint")) if document else None

    async def read_ahead_keys(self, keys: Iterable[tuple[str, str]]) -> None:
        """For a batch: which of these (organisation, key) pairs made no referral yet, in
        one query; `by_idempotency_key` then asks the database only about the others."""
        wanted = set(keys)
        if not wanted:
            return
        found = self.collection.find(
            {"idempotency_key": {"$in": sorted({key for _, key in wanted})}},
            projection=["referrer.organisation_id", "idempotency_key"],
            session=self.tx.session,
        )
        made = {(d["referrer"]["organisation_id"], d["idempotency_key"]) async for d in found}
        _gathered(self.tx).unused_keys |= wanted - made

    def unused_as_read_ahead(self, organisation_id: str, key: str) -> bool:
        """Whether the batch's read-ahead found no referral made under this key."""
        seen = _seen(self.tx)
        return seen is not None and (organisation_id, key) in seen.unused_keys

    async def open_for_client(self, organisation_id: str, client_ref: str) -> Referral | None:
        """The client's first open referral at the organisation. A client added in this unit
        of work has none in the database: then only those added here are looked at."""
        seen = _seen(self.tx)
        found: list[Referral] = []
        if seen is None or not seen.is_new_client(client_ref):
            document = await self.collection.find_one(
                {
                    "client_ref": client_ref,
                    "placement.organisation_id": organisation_id,
                    "state": {"$in": [s.value for s in OPEN_STATES]},
                },
                sort=[("received_at", ASCENDING)],
                session=self.tx.session,
            )
            if document:
                found.append(load(REFERRAL, document))
        # After the stored one: of two received at the same moment, the stored one is first.
        found += self._added_where(
            lambda r: (
                r.client_ref == client_ref and r.organisation_id == organisation_id and r.is_open
            )
        )
        return min(found, key=lambda r: r.received_at, default=None)

    async def waiting_counts(self, organisation_id: str) -> tuple[int, int]:
        """(crises waiting, everyone waiting) at an organisation, those added here included."""
        query = {"placement.organisation_id": organisation_id, "state": "waitlisted"}
        everyone = await self.collection.count_documents(query, session=self.tx.session)
        crises = await self.collection.count_documents(
            {**query, "crisis": True}, session=self.tx.session
        )
        seen = _seen(self.tx)
        if seen is not None:
            waiting = seen.referrals_where(
                lambda r: (
                    r.organisation_id == organisation_id and r.state is ReferralState.WAITLISTED
                )
            )
            crises += sum(r.crisis for r in waiting)
            everyone += len(waiting)
        return crises, everyone

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
        return [load(REFERRAL, d) async for d in cursor] + self._added_where(
            lambda r: r.duplicate_of == referral_id and r.state is ReferralState.LINKED
        )

    async def of_client(self, client_ref: str) -> list[Referral]:
        cursor = self.collection.find({"client_ref": client_ref}, session=self.tx.session)
        return [load(REFERRAL, d) async for d in cursor] + self._added_where(
            lambda r: r.client_ref == client_ref
        )

    def _added_where(self, matches: Any) -> list[Referral]:
        seen = _seen(self.tx)
        return seen.referrals_where(matches) if seen is not None else []

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
        """Inserted when the unit of work ends, with the others it adds; seen before that."""
        _gathered(self.tx).consents[consent.id] = consent
        self._publish(consent)

    async def save(self, consent: Consent) -> None:
        seen = _seen(self.tx)
        if seen is not None and consent.id in seen.consents:
            seen.consents[consent.id] = consent  # inserted in this state
        else:
            await self.collection.replace_one(
                {"_id": consent.id}, consent_document(consent), session=self.tx.session
            )
        self._publish(consent)

    async def get(self, consent_id: str) -> Consent | None:
        seen = _seen(self.tx)
        if seen is not None and consent_id in seen.consents:
            return seen.consents[consent_id]
        document = await self.collection.find_one({"_id": consent_id}, session=self.tx.session)
        return load(CONSENT, document) if document else None

    async def of_client(self, client_ref: str) -> list[Consent]:
        cursor = self.collection.find({"client_ref": client_ref}, session=self.tx.session)
        stored = [load(CONSENT, d) async for d in cursor]
        seen = _seen(self.tx)
        added = seen.consents_where(lambda c: c.client_ref == client_ref) if seen else []
        return sorted(stored + added, key=lambda c: c.granted_at)

    async def active(
        self, client_ref: str, partner_organisation_id: str, purpose: ConsentPurpose
    ) -> Consent | None:
        seen = _seen(self.tx)
        for consent in seen.consents.values() if seen is not None else ():
            if (consent.client_ref, consent.partner_organisation_id, consent.purpose) == (
                client_ref,
                partner_organisation_id,
                purpose,
            ) and consent.active:
                return consent
        document = await self.collection.find_one(
            {
                "client_ref": client_ref,
                "partner_organisation_id": partner_organisation_id,
                "purpose": purpose.value,
                "withdrawn_at": None,
            },
            session=self.tx.session,
        )
        return load(CONSENT, document) if document else None

    def _publish(self, consent: Consent) -> None:
        self.tx.publish_all(consent.events)
        consent.events.clear()


class ClientRepository:
    """Clients and their keys. The only place personal data is decrypted."""

    def __init__(self, tx: Transaction, keys: IntakeKeys) -> None:
        self.tx = tx
        self.keys = keys

    async def register(self, details: PersonalDetails, organisation_id: str) -> str:
        """The client's reference at this organisation: existing if we know the person (also
        when added earlier in this unit of work). The newest details win: a new phone number
        reaches the client, the old does not. A new client, its key and details are inserted
        when the unit of work ends (ketenbus.intake.gathered)."""
        person = self.person(details)
        seen = _seen(self.tx)
        added = seen.client_known_as(organisation_id, person) if seen is not None else None
        if added is not None:
            added.details = details
            return added.client_ref
        known = (
            None
            if self.unknown_as_read_ahead(person)
            else await self.tx.db.clients.find_one(
                {"organisation_id": organisation_id, "identity_hash": person},
                session=self.tx.session,
            )
        )
        data_key = await self._data_key(known["_id"]) if known is not None else None
        if known is not None and data_key is not None:
            client_ref = str(known["_id"])
            await self.tx.db.clients.update_one(
                {"_id": client_ref},
                {"$set": {"details": encrypt_details(client_ref, data_key, details)}},
                session=self.tx.session,
            )
            _gathered(self.tx).clients[client_ref] = OpenedClient(
                client_ref, organisation_id, person, data_key, details
            )
            return client_ref
        client_ref = new_id("cl")
        data_key = sealing.new_key()
        _gathered(self.tx).clients[client_ref] = OpenedClient(
            client_ref,
            organisation_id,
            person,
            data_key,
            details,
            wrapped=wrap_client_key(self.keys, client_ref, data_key),
        )
        return client_ref

    async def read_ahead(self, persons: Iterable[PersonalDetails]) -> None:
        """For a batch: which of these persons intake does not know at any organisation, in
        one query; `register` then asks the database only about the others."""
        hashes = {self.person(details) for details in persons}
        if not hashes:
            return
        found = self.tx.db.clients.find(
            {"identity_hash": {"$in": sorted(hashes)}},
            projection=["identity_hash"],
            session=self.tx.session,
        )
        known = {d["identity_hash"] async for d in found}
        _gathered(self.tx).unknown_persons |= hashes - known

    def person(self, details: PersonalDetails) -> str:
        """The keyed hash that recognises the person (at an organisation)."""
        return identity_hash(self.keys.pseudonym, details)

    def keep_opened(self, event_id: str, details: PersonalDetails) -> None:
        """A partner's referral's client details, opened by its batch's read-ahead: its
        handler takes them from here (`opened_ahead`) instead of opening the seal again."""
        _gathered(self.tx).opened[event_id] = details

    def opened_ahead(self, event_id: str) -> PersonalDetails | None:
        seen = _seen(self.tx)
        return seen.opened.get(event_id) if seen is not None else None

    def unknown_as_read_ahead(self, person: str) -> bool:
        """Whether the batch's read-ahead found no client of this person (its keyed hash)."""
        seen = _seen(self.tx)
        return seen is not None and person in seen.unknown_persons

    async def organisation_of(self, client_ref: str) -> str | None:
        opened = self._opened_here(client_ref)
        if opened is not None:
            return opened.organisation_id
        client = await self.tx.db.clients.find_one(
            {"_id": client_ref}, projection=["organisation_id"], session=self.tx.session
        )
        return client["organisation_id"] if client else None

    def _opened_here(self, client_ref: str) -> OpenedClient | None:
        """The client, if this unit of work added or registered it: key and details at hand."""
        seen = _seen(self.tx)
        return seen.clients.get(client_ref) if seen is not None else None

    async def _data_key(self, client_ref: str) -> bytes | None:
        opened = self._opened_here(client_ref)
        if opened is not None:
            return opened.data_key
        stored = await self.tx.db.client_keys.find_one({"_id": client_ref}, session=self.tx.session)
        return unwrap_client_key(self.keys, client_ref, stored) if stored else None

    async def details(self, client_ref: str) -> PersonalDetails | None:
        return (await self._opened(client_ref))[1]

    async def _opened(self, client_ref: str) -> tuple[bytes | None, PersonalDetails | None]:
        """The client's data key and details, the key read once (not at all, nor the details
        decrypted, for a client this unit of work added or registered)."""
        opened = self._opened_here(client_ref)
        if opened is not None:
            return opened.data_key, opened.details
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
        topic's retention does.) The keyed hash goes too, so the person is not recognised.
        Whatever this unit of work holds of the client is forgotten first; one it added is
        written before it is erased, as if it had been added in an earlier one."""
        seen = _seen(self.tx)
        if seen is not None:
            if seen.is_new_client(client_ref):
                await seen.flush()
            seen.clients.pop(client_ref, None)
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

    async def claim_place(self, organisation_id: str, referral_id: str) -> Organisation:
        """A place for the referral: claimed ahead for its batch, or else now (`Caseloads`)."""
        seen = _seen(self)
        if seen is not None and referral_id in seen.places_claimed:
            return self.caseloads.held(organisation_id)
        return await self.caseloads.claim(organisation_id, referral_id)

    async def claim_places_ahead(self, claims: list[tuple[str, str]]) -> None:
        """Places for a batch's referrals, (organisation, referral), in one round trip; those
        it could not claim (an organisation full) are claimed by `claim_place` as before."""
        _gathered(self).places_claimed |= await self.caseloads.claim_ahead(claims)

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
