"""Intake's own database: referrals, consents, caseloads, and clients (encrypted) with keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ReferralStatusChanged
from ketenbus.contracts.values import ConsentPurpose, Sealed, new_id
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
from ketenbus.kit.clock import Clock
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
    await db.consents.create_index("client_ref")


class ConcurrentChange(TransientError):
    """Someone else changed the record since we read it: read again and retry."""


_GATHERED = "intake"


def _gathered(tx: Transaction) -> GatheredIntake:
    """What this unit of work adds, written when it ends (ketenbus.intake.gathered)."""
    return tx.deferred(_GATHERED, lambda: GatheredIntake(tx.db, tx.session))


def _seen(tx: Transaction) -> GatheredIntake | None:
    """What this unit of work added so far, for a read to see; None when it added nothing
    (and always while only reading: a read never makes the gathering)."""
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
        document = await self.collection.find_one(
            {"referrer.organisation_id": organisation_id, "idempotency_key": key},
            session=self.tx.session,
        )
        return (load(REFERRAL, document), document.get("fingerprint")) if document else None

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
        """The client's reference at this organisation: existing if we know the person (also
        when added earlier in this unit of work). The newest details win: a new phone number
        reaches the client, the old does not. A new client, its key and details are inserted
        when the unit of work ends (ketenbus.intake.gathered)."""
        person = identity_hash(self.keys.pseudonym, details)
        seen = _seen(self.tx)
        added = seen.client_known_as(organisation_id, person) if seen is not None else None
        if added is not None:
            added.details = details
            return added.client_ref
        known = await self.tx.db.clients.find_one(
            {"organisation_id": organisation_id, "identity_hash": person}, session=self.tx.session
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
