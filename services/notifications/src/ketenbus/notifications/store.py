"""Notifications' own database: sealed contact details, consents to reminders, opt-outs,
reminders, module watches.

Contact details stay sealed as they came from intake; the only other trace of them is the
keyed hash of the phone number (for STOP replies). Everything here is forgotten on erasure:
deleted, except the reminders, which stay as what happened under a random token.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo import ReplaceOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.values import Channel, Language, Sealed
from ketenbus.kit.uow import Transaction
from ketenbus.notifications.domain import PENDING, ConsentState, Reminder, ReminderStatus
from ketenbus.notifications.planning import ModuleWatch


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.reminders.create_index([("status", 1), ("send_at", 1)])
    await db.reminders.create_index([("status", 1), ("claimed_until", 1)])
    await db.reminders.create_index("client_ref")
    await db.reminders.create_index("appointment_id", sparse=True)
    await db.reminders.create_index("enrolment_id", sparse=True)
    await db.contacts.create_index("phone_index", sparse=True)
    await db.module_watches.create_index("client_ref")


class ContactBook:
    """How to reach each client, still sealed: opened only at the moment of sending."""

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
        await self.collection.replace_one(
            {"_id": client_ref},
            {
                "organisation_id": organisation_id,
                "sealed": sealed.model_dump(),
                "language": language.value,
                "preferred_channel": preferred_channel.value,
                "phone_index": phone_index,
                "shared_at": shared_at,
            },
            upsert=True,
            session=self.tx.session,
        )

    async def find(self, client_ref: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": client_ref}, session=self.tx.session)

    async def by_phone(self, organisation_id: str, phone_index: str) -> list[dict[str, Any]]:
        cursor = self.collection.find(
            {"organisation_id": organisation_id, "phone_index": phone_index},
            session=self.tx.session,
        )
        return [document async for document in cursor]

    async def forget(self, client_ref: str, shared_until: datetime | None = None) -> None:
        """Delete the card; with `shared_until`, only a card shared then or before (one shared
        later came with a consent given since)."""
        query: dict[str, Any] = {"_id": client_ref}
        if shared_until is not None:
            query["shared_at"] = {"$lte": shared_until}
        await self.collection.delete_one(query, session=self.tx.session)


class ReminderConsents:
    """Which clients agreed to hear from us (intake's `reminders` consent): the consents in
    force per client. No consent in force, no message to the client, whatever is planned."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.reminder_consents

    async def grant(self, client_ref: str, consent_id: str, at: datetime) -> None:
        await self.collection.update_one(
            {"_id": client_ref},
            {"$addToSet": {"active": consent_id}, "$set": {"changed_at": at}},
            upsert=True,
            session=self.tx.session,
        )

    async def withdraw(self, client_ref: str, consent_id: str, at: datetime) -> bool:
        """True when no consent to reminders is left in force for the client."""
        after = await self.collection.find_one_and_update(
            {"_id": client_ref},
            {"$pull": {"active": consent_id}, "$set": {"changed_at": at, "withdrawn": True}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.tx.session,
        )
        return not (after or {}).get("active")

    async def withdrawn_since(self, client_ref: str, at: datetime) -> bool:
        """Whether the client's last consent to reminders was withdrawn at or after `at`,
        and none given since."""
        document = await self.collection.find_one({"_id": client_ref}, session=self.tx.session)
        if document is None or document.get("active"):
            return False
        return bool(document.get("withdrawn")) and document["changed_at"] >= at

    async def state(self, client_ref: str) -> ConsentState:
        document = await self.collection.find_one({"_id": client_ref}, session=self.tx.session)
        if document is None:
            return ConsentState.UNKNOWN
        return ConsentState.GIVEN if document.get("active") else ConsentState.WITHDRAWN

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)


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
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.reminders

    async def add(self, reminder: Reminder) -> None:
        await self.collection.insert_one(_document(reminder), session=self.tx.session)
        self._publish(reminder)

    async def add_all(self, reminders: list[Reminder]) -> None:
        """One round trip for all of them (an appointment has two reminders)."""
        if not reminders:
            return
        await self.collection.insert_many(
            [_document(r) for r in reminders], ordered=True, session=self.tx.session
        )
        for reminder in reminders:
            self._publish(reminder)

    async def save(self, reminder: Reminder) -> None:
        await self.collection.replace_one(
            {"_id": reminder.id}, _document(reminder), session=self.tx.session
        )
        self._publish(reminder)

    async def save_all(self, reminders: list[Reminder]) -> None:
        if len(reminders) < 2:
            for reminder in reminders:
                await self.save(reminder)
            return
        await self.collection.bulk_write(
            [ReplaceOne({"_id": r.id}, _document(r)) for r in reminders],
            ordered=True,
            session=self.tx.session,
        )
        for reminder in reminders:
            self._publish(reminder)

    async def get(self, reminder_id: str) -> Reminder | None:
        document = await self.collection.find_one({"_id": reminder_id}, session=self.tx.session)
        return _reminder(document) if document else None

    async def of_appointment(self, appointment_id: str) -> list[Reminder]:
        return await self._find({"appointment_id": appointment_id, "audience": "client"})

    async def of_enrolment(self, enrolment_id: str) -> list[Reminder]:
        return await self._find({"enrolment_id": enrolment_id})

    async def of_client(self, client_ref: str) -> list[Reminder]:
        return await self._find({"client_ref": client_ref})

    async def forget_client(self, client_ref: str) -> None:
        """After erasure the client's reminders stay as what happened (sent, cancelled), but
        under a random token: no reference the chain knows leads to them any more."""
        await self.collection.update_many(
            {"client_ref": client_ref},
            {"$set": {"client_ref": f"anon_{uuid.uuid4().hex}"}},
            session=self.tx.session,
        )

    async def waiting(self, client_ref: str, purpose: str) -> list[Reminder]:
        return await self._find(
            {"client_ref": client_ref, "purpose": purpose, "status": ReminderStatus.SCHEDULED}
        )

    async def claimable_ids(self, now: datetime, real_now: datetime, limit: int) -> list[str]:
        """Reminders whose time has come, and claims left behind by a dispatcher that died."""
        cursor = self.collection.find(
            {
                "$or": [
                    {
                        "status": ReminderStatus.SCHEDULED.value,
                        "send_at": {"$lte": now},
                        "$or": [{"retry_at": None}, {"retry_at": {"$lte": real_now}}],
                    },
                    {"status": ReminderStatus.SENDING.value, "claimed_until": {"$lte": real_now}},
                ]
            },
            projection=["_id"],
            session=self.tx.session,
        )
        return [d["_id"] async for d in cursor.sort("send_at", 1).limit(limit)]

    async def next_send_at(self) -> datetime | None:
        document = await self.collection.find_one(
            {"status": ReminderStatus.SCHEDULED.value},
            projection=["send_at"],
            sort=[("send_at", 1)],
            session=self.tx.session,
        )
        return document["send_at"] if document else None

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

    async def _find(self, query: dict[str, Any]) -> list[Reminder]:
        cursor = self.collection.find(query, session=self.tx.session).sort("due_at", 1)
        return [_reminder(d) async for d in cursor]

    def _publish(self, reminder: Reminder) -> None:
        self.tx.publish_all(reminder.events)
        reminder.events.clear()


class ModuleWatches:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.module_watches

    async def get(self, enrolment_id: str) -> ModuleWatch | None:
        document = await self.collection.find_one({"_id": enrolment_id}, session=self.tx.session)
        if document is None:
            return None
        return _WATCH.validate_python({**document, "enrolment_id": document["_id"]})

    async def save(self, watch: ModuleWatch) -> None:
        document = asdict(watch)
        document["_id"] = document.pop("enrolment_id")
        await self.collection.replace_one(
            {"_id": watch.enrolment_id}, document, upsert=True, session=self.tx.session
        )

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)


def _document(reminder: Reminder) -> dict[str, Any]:
    document = asdict(reminder)
    document["_id"] = document.pop("id")
    del document["events"]
    if isinstance(reminder.offset, timedelta):
        document["offset"] = reminder.offset.total_seconds()  # BSON has no durations
    return document


_REMINDER = TypeAdapter(Reminder)
_WATCH = TypeAdapter(ModuleWatch)


def _reminder(document: dict[str, Any]) -> Reminder:
    return _REMINDER.validate_python({**document, "id": document["_id"]})


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
