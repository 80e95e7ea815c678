"""Notifications' own database: sealed contact details and the reminders, due or done."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.values import Channel, Language, Sealed
from ketenbus.kit.uow import Transaction
from ketenbus.notifications.domain import Reminder, ReminderStatus


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.reminders.create_index([("status", 1), ("due_at", 1)])
    await db.reminders.create_index("client_ref")
    await db.reminders.create_index("appointment_id")


class ContactBook:
    """How to reach each client, still sealed: opened only at the moment of sending."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.contacts

    async def keep(
        self,
        client_ref: str,
        organisation_id: str,
        sealed: Sealed,
        language: Language,
        preferred_channel: Channel,
    ) -> None:
        await self.collection.replace_one(
            {"_id": client_ref},
            {
                "organisation_id": organisation_id,
                "sealed": sealed.model_dump(),
                "language": language.value,
                "preferred_channel": preferred_channel.value,
            },
            upsert=True,
            session=self.tx.session,
        )

    async def find(self, client_ref: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": client_ref}, session=self.tx.session)

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)


class ReminderBook:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.reminders

    async def add(self, reminder: Reminder) -> None:
        await self.collection.insert_one(_document(reminder), session=self.tx.session)
        self._publish(reminder)

    async def save(self, reminder: Reminder) -> None:
        await self.collection.replace_one(
            {"_id": reminder.id}, _document(reminder), session=self.tx.session
        )
        self._publish(reminder)

    async def get(self, reminder_id: str) -> Reminder | None:
        document = await self.collection.find_one({"_id": reminder_id}, session=self.tx.session)
        return _reminder(document) if document else None

    async def due(self, now: datetime, limit: int = 50) -> list[Reminder]:
        documents = self.collection.find(
            {"status": ReminderStatus.SCHEDULED.value, "due_at": {"$lte": now}},
            session=self.tx.session,
        ).sort("due_at", 1)
        return [_reminder(d) async for d in documents.limit(limit)]

    def _publish(self, reminder: Reminder) -> None:
        self.tx.publish_all(reminder.events)
        reminder.events.clear()


def _document(reminder: Reminder) -> dict[str, Any]:
    document = asdict(reminder)
    document["_id"] = document.pop("id")
    del document["events"]
    return document


_REMINDER = TypeAdapter(Reminder)


def _reminder(document: dict[str, Any]) -> Reminder:
    return _REMINDER.validate_python({**document, "id": document["_id"]})


class NotificationTransaction(Transaction):
    @cached_property
    def contacts(self) -> ContactBook:
        return ContactBook(self)

    @cached_property
    def reminders(self) -> ReminderBook:
        return ReminderBook(self)
