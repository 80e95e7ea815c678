"""Notifications' own database: sealed contact details, consents to reminders, opt-outs,
reminders, module watches.

Contact details stay sealed as they came from intake; the only other trace of them is the
keyed hash of the phone number (for STOP replies). Everything here is forgotten on erasure:
deleted, except the reminders, which stay as what happened under a random token.

Reminders, module watches, contact cards and consents to reminders are kept and gathered
over a unit of work and written in one bulk write per collection at its end (the kit's
`GatheredDocuments`); a later handler of the batch reads them as the handlers before it left
them (a withdrawal asks which consents are left, a card asks whether consent was withdrawn
since). A batch reads its clients' consents ahead, in one query (handlers.py). Opt-outs and
daily counts are written at once: they come once per message sent or per STOP.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.values import Channel, Language, Sealed
from ketenbus.kit.gathered import AS_STORED, GatheredDocuments
from ketenbus.kit.uow import Transaction
from ketenbus.notifications.domain import (
    PENDING,
    Audience,
    ConsentState,
    Reminder,
    ReminderStatus,
)
from ketenbus.notifications.planning import ModuleWatch

SCHEDULED = ReminderStatus.SCHEDULED.value
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before any retry: a closed range for the engine


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The dispatcher's questions (ReminderBook.claimable_ids, next_send_at).
    await db.reminders.create_index([("status", 1), ("retry_at", 1), ("send_at", 1)])
    await db.reminders.create_index([("status", 1), ("claimed_until", 1)])
    await db.reminders.create_index("client_ref")
    await db.reminders.create_index("appointment_id", sparse=True)
    await db.reminders.create_index("enrolment_id", sparse=True)
    await db.contacts.create_index("phone_index", sparse=True)
    await db.module_watches.create_index("client_ref")


class ContactBook:
    """How to reach each client, still sealed: opened only at the moment of sending. In a
    transaction the cards are kept and written when it ends (`GatheredDocuments`, one bulk
    write for a consumed batch); a card is kept whole as it comes, without reading the one
    it replaces."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.contacts

    async def keep(
        self,
        *,
        client_ref: str,
        organisation_id: str,
        sealed: Sealed,
        language: Language,
        preferred_channel: Channel,
        phone_index: str | None,
        shared_at: datetime,
    ) -> None:
        self._documents().put(
            {
                "_id": client_ref,
                "organisation_id": organisation_id,
                "sealed": sealed.model_dump(),
                "language": language.value,
                "preferred_channel": preferred_channel.value,
                "phone_index": phone_index,
                "shared_at": shared_at,
            }
        )

    async def find(self, client_ref: str) -> dict[str, Any] | None:
        return await self._documents().get(client_ref)

    async def by_phone(self, organisation_id: str, phone_index: str) -> list[dict[str, Any]]:
        cursor = self.collection.find(
            {"organisation_id": organisation_id, "phone_index": phone_index},
            session=self.tx.session,
        )
        return await self._documents().merged(
            await cursor.to_list(),
            lambda c: c["organisation_id"] == organisation_id and c["phone_index"] == phone_index,
        )

    async def forget(self, client_ref: str, shared_until: datetime | None = None) -> None:
        """Delete the card; with `shared_until`, only a card shared then or before (one shared
        later came with a consent given since)."""
        query: dict[str, Any] = {"_id": client_ref}
        if shared_until is not None:
            query["shared_at"] = {"$lte": shared_until}
        self._documents().forget(
            lambda c: (
                c["_id"] == client_ref and (shared_until is None or c["shared_at"] <= shared_until)
            )
        )
        await self.collection.delete_one(query, session=self.tx.session)

    def _documents(self) -> GatheredDocuments[dict[str, Any]]:
        return GatheredDocuments.of(self.tx, self.collection, AS_STORED, upsert=True)


class ReminderConsents:
    """Which clients agreed to hear from us (intake's `reminders` consent): the consents in
    force per client. No consent in force, no message to the client, whatever is planned.
    Kept and gathered as the cards are; a consumed batch reads its clients' ahead."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.reminder_consents

    async def read_ahead(self, client_refs: Iterable[str]) -> None:
        await self._documents().read_ahead("_id", client_refs)

    async def grant(self, client_ref: str, consent_id: str, at: datetime) -> None:
        consents = await self._of(client_ref)
        if consent_id not in consents["active"]:
            consents["active"].append(consent_id)
        consents["changed_at"] = at
        self._documents().save(consents)

    async def withdraw(self, client_ref: str, consent_id: str, at: datetime) -> bool:
        """True when no consent to reminders is left in force for the client."""
        consents = await self._of(client_ref)
        consents["active"] = [c for c in consents["active"] if c != consent_id]
        consents["changed_at"], consents["withdrawn"] = at, True
        self._documents().save(consents)
        return not consents["active"]

    async def withdrawn_since(self, client_ref: str, at: datetime) -> bool:
        """Whether the client's last consent to reminders was withdrawn at or after `at`,
        and none given since."""
        document = await self._documents().get(client_ref)
        if document is None or document.get("active"):
            return False
        return bool(document.get("withdrawn")) and document["changed_at"] >= at

    async def state(self, client_ref: str) -> ConsentState:
        document = await self._documents().get(client_ref)
        if document is None:
            return ConsentState.UNKNOWN
        return ConsentState.GIVEN if document.get("active") else ConsentState.WITHDRAWN

    async def forget(self, client_ref: str) -> None:
        self._documents().forget(lambda c: c["_id"] == client_ref)
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)

    async def _of(self, client_ref: str) -> dict[str, Any]:
        """The client's consents, kept for this unit of work (new when none are stored)."""
        found = await self._documents().get(client_ref)
        if found is None:
            return {"_id": client_ref, "active": []}
        found.setdefault("active", [])  # a withdrawal before any grant stored none
        return found

    def _documents(self) -> GatheredDocuments[dict[str, Any]]:
        return GatheredDocuments.of(self.tx, self.collection, AS_STORED, upsert=True)


class OptOuts:
    """The channels a client asked us not to use. Kept apart from the contact card, which
    intake may share again (a new address does not undo a STOP)."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.opt_outs

    async def of(self, client_ref: str) -> frozenset[Channel]:
        document = await self.collection.find_one({"_id": client_ref}, session=self.tx.session)
        return frozenset(Channel(c) for c in (document or {}).get("channels", ()))

    async def add(self, client_ref: str, channel: Channel, at: datetime) -> bool:
        """True when this is news (the channel was not opted out yet)."""
        before = await self.collection.find_one_and_update(
            {"_id": client_ref},
            {"$addToSet": {"channels": channel.value}, "$setOnInsert": {"since": at}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
            session=self.tx.session,
        )
        return channel.value not in (before or {}).get("channels", ())

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)


class DailySends:
    """Messages per client per local day. One small document per client and day: two
    dispatchers counting for one client write the same document, so one of them retries."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.daily_sends

    async def count(self, client_ref: str, day: str) -> int:
        document = await self.collection.find_one(
            {"_id": f"{client_ref}/{day}"}, session=self.tx.session
        )
        return int((document or {}).get("count", 0))

    async def add_one(self, client_ref: str, day: str) -> None:
        await self.collection.update_one(
            {"_id": f"{client_ref}/{day}"},
            {"$inc": {"count": 1}, "$set": {"client_ref": client_ref}},
            upsert=True,
            session=self.tx.session,
        )

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)


class ReminderBook:
    """The reminders as one unit of work sees them. In a transaction each is read once and
    kept (`GatheredDocuments`, shared by every event of a consumed batch): a later read gets
    the same object, with what the handlers before changed, and `add` and `save` gather what
    the unit of work writes in one bulk write when it ends. Their events are published at
    once, so the outbox keeps the handlers' order. Outside a transaction (`uow.reading()`)
    reads go to the database, and nothing is written."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.reminders

    async def add(self, reminder: Reminder) -> None:
        self._documents().add(reminder)
        self._publish(reminder)

    async def add_all(self, reminders: list[Reminder]) -> None:
        for reminder in reminders:
            await self.add(reminder)

    async def save(self, reminder: Reminder) -> None:
        self._documents().save(reminder)
        self._publish(reminder)

    async def save_all(self, reminders: list[Reminder]) -> None:
        for reminder in reminders:
            await self.save(reminder)

    async def get(self, reminder_id: str) -> Reminder | None:
        return await self._documents().get(reminder_id)

    async def of_appointment(self, appointment_id: str) -> list[Reminder]:
        return await self._find(
            {"appointment_id": appointment_id, "audience": Audience.CLIENT.value},
            lambda r: r.appointment_id == appointment_id and r.audience is Audience.CLIENT,
        )

    async def of_enrolment(self, enrolment_id: str) -> list[Reminder]:
        return await self._find(
            {"enrolment_id": enrolment_id}, lambda r: r.enrolment_id == enrolment_id
        )

    async def of_client(self, client_ref: str) -> list[Reminder]:
        return await self._find({"client_ref": client_ref}, lambda r: r.client_ref == client_ref)

    async def forget_client(self, client_ref: str) -> None:
        """After erasure the client's reminders stay as what happened (sent, cancelled), but
        under a random token: no reference the chain knows leads to them any more. Those
        kept in the unit of work (planned in its batch, say) get the same token."""
        token = f"anon_{uuid.uuid4().hex}"
        await self.collection.update_many(
            {"client_ref": client_ref},
            {"$set": {"client_ref": token}},
            session=self.tx.session,
        )
        documents = self._documents()
        # No documents of our own to merge: the kept ones alone.
        for reminder in await documents.merged([], lambda r: r.client_ref == client_ref):
            reminder.client_ref = token
            documents.save(reminder)

    async def waiting(self, client_ref: str, purpose: str) -> list[Reminder]:
        return await self._find(
            {"client_ref": client_ref, "purpose": purpose, "status": ReminderStatus.SCHEDULED},
            lambda r: (
                r.client_ref == client_ref
                and r.purpose == purpose
                and r.status is ReminderStatus.SCHEDULED
            ),
        )

    # The dispatcher's and the gauges' questions, asked before their units of work (in
    # `uow.reading()`): answered as stored.

    # Each question below is one equality and one closed range on an index of its own: the
    # engine (secantusd-rs 0.5) reads every scheduled reminder for a question with an `$or`,
    # two ranges, or a range open at one end (a missing value sorts below any date), and
    # sorts them all before it takes the first: 36 and 53 ms at 30,000 reminders, twice a
    # second (measured by hand, 2026-12-04: the database's idle CPU 3.5-4.1 s per 10 s -> 0.5).

    async def claimable_ids(self, now: datetime, real_now: datetime, limit: int) -> list[str]:
        """Reminders whose time has come, those whose retry has come, and claims left
        behind by a dispatcher that died: the earliest `limit` of them."""
        due = await self._earliest(
            {"status": SCHEDULED, "retry_at": None, "send_at": {"$lte": now}}, limit
        )
        retried = await self._earliest(
            {"status": SCHEDULED, "retry_at": {"$gte": EPOCH, "$lte": real_now}}, limit
        )
        abandoned = await self._earliest(
            {"status": ReminderStatus.SENDING.value, "claimed_until": {"$lte": real_now}}, limit
        )
        # A retry is of a reminder claimed once, so due then; asked here as well, since the
        # engine would not answer both ranges from one index.
        retried = [d for d in retried if d["send_at"] <= now]
        found = sorted([*due, *retried, *abandoned], key=lambda d: d["send_at"])
        return [d["_id"] for d in found[:limit]]

    async def next_send_at(self, before: datetime) -> datetime | None:
        """When the next reminder falls due, if before then. One waiting for its retry is
        not counted: the retry's moment is in real time, and the poll finds it."""
        found = await self._earliest(
            {"status": SCHEDULED, "retry_at": None, "send_at": {"$lte": before}}, 1
        )
        return found[0]["send_at"] if found else None

    async def _earliest(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = self.collection.find(query, projection=["send_at"], session=self.tx.session)
        return await cursor.sort("send_at", 1).limit(limit).to_list()

    async def pending_by_organisation(self, overdue_before: datetime) -> dict[str, tuple[int, int]]:
        """Per organisation: reminders still to send, and those among them that are late."""
        cursor = await self.collection.aggregate(
            [
                {"$match": {"status": {"$in": [s.value for s in PENDING]}}},
                {
                    "$group": {
                        "_id": "$organisation_id",
                        "due": {"$sum": 1},
                        "overdue": {
                            "$sum": {"$cond": [{"$lt": ["$send_at", overdue_before]}, 1, 0]}
                        },
                    }
                },
            ],
            session=self.tx.session,
        )
        return {d["_id"]: (int(d["due"]), int(d["overdue"])) async for d in cursor}

    async def _find(
        self, query: dict[str, Any], matches: Callable[[Reminder], bool]
    ) -> list[Reminder]:
        """What the database finds, merged with what the unit of work keeps, by due time."""
        cursor = self.collection.find(query, session=self.tx.session).sort("due_at", 1)
        found = await self._documents().merged(await cursor.to_list(), matches)
        return sorted(found, key=lambda r: r.due_at)

    def _documents(self) -> GatheredDocuments[Reminder]:
        return GatheredDocuments.of(self.tx, self.collection, STORED_REMINDER)

    def _publish(self, reminder: Reminder) -> None:
        self.tx.publish_all(reminder.events)
        reminder.events.clear()


class ModuleWatches:
    """Kept and gathered as the reminders are: progress events about one enrolment come in
    order, so a batch reads each watch once and writes it once."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.module_watches

    async def get(self, enrolment_id: str) -> ModuleWatch | None:
        return await self._documents().get(enrolment_id)

    async def save(self, watch: ModuleWatch) -> None:
        """Written (inserted or replaced: a watch is saved whether or not it is stored yet)
        when the unit of work ends."""
        self._documents().save(watch)

    async def forget(self, client_ref: str) -> None:
        """Every watch of the client: stored, and what this unit of work kept or made."""
        self._documents().forget(lambda w: w.client_ref == client_ref)
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)

    def _documents(self) -> GatheredDocuments[ModuleWatch]:
        return GatheredDocuments.of(self.tx, self.collection, STORED_WATCH, upsert=True)


class StoredReminder:
    """A reminder as its document (`Codec`): its events are not kept, they go out."""

    def id_of(self, reminder: Reminder) -> str:
        return reminder.id

    async def to_document(self, reminder: Reminder) -> dict[str, Any]:
        document = _fields(reminder, _REMINDER_FIELDS)
        document["_id"] = document.pop("id")
        document["failed_channels"] = list(reminder.failed_channels)
        if isinstance(reminder.offset, timedelta):
            document["offset"] = reminder.offset.total_seconds()  # BSON has no durations
        return document

    async def from_document(self, document: dict[str, Any]) -> Reminder:
        return _REMINDER.validate_python({**document, "id": document["_id"]})


class StoredWatch:
    """A module watch as its document (`Codec`), under its enrolment's id."""

    def id_of(self, watch: ModuleWatch) -> str:
        return watch.enrolment_id

    async def to_document(self, watch: ModuleWatch) -> dict[str, Any]:
        document = _fields(watch, _WATCH_FIELDS)
        document["_id"] = document.pop("enrolment_id")
        return document

    async def from_document(self, document: dict[str, Any]) -> ModuleWatch:
        return _WATCH.validate_python({**document, "enrolment_id": document["_id"]})


def _fields(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields as they are, not `asdict`'s deep copies (a deepcopy of every datetime was a
    third of a consumed batch's CPU). The values are immutable; a list is copied apart."""
    return {name: getattr(value, name) for name in names}


_REMINDER_FIELDS = tuple(f.name for f in fields(Reminder) if f.name != "events")
_WATCH_FIELDS = tuple(f.name for f in fields(ModuleWatch))
_REMINDER = TypeAdapter(Reminder)
_WATCH = TypeAdapter(ModuleWatch)
STORED_REMINDER = StoredReminder()
STORED_WATCH = StoredWatch()


class NotificationTransaction(Transaction):
    @cached_property
    def contacts(self) -> ContactBook:
        return ContactBook(self)

    @cached_property
    def reminder_consents(self) -> ReminderConsents:
        return ReminderConsents(self)

    @cached_property
    def opt_outs(self) -> OptOuts:
        return OptOuts(self)

    @cached_property
    def daily_sends(self) -> DailySends:
        return DailySends(self)

    @cached_property
    def reminders(self) -> ReminderBook:
        return ReminderBook(self)

    @cached_property
    def module_watches(self) -> ModuleWatches:
        return ModuleWatches(self)
