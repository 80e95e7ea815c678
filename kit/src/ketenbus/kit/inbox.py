"""The idempotent inbox: which events this service has already handled.

The claim is written in the same transaction as the state change, so an event redelivered
after a crash is recognised, and its effect is never doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ketenbus.kit.errors import AlreadyHandled

INBOX = "inbox"


class Inbox:
    def __init__(self, db: AsyncDatabase[Any], consumer: str) -> None:
        self.collection = db[INBOX]
        self.consumer = consumer

    def _key(self, event_id: str) -> str:
        return f"{self.consumer}:{event_id}"

    async def seen(self, event_id: str) -> bool:
        return (
            await self.collection.find_one({"_id": self._key(event_id)}, projection=[]) is not None
        )

    async def already_handled(self, event_ids: list[str]) -> set[str]:
        """Which of these events were handled before: one query for a whole batch."""
        keys = [self._key(event_id) for event_id in event_ids]
        found = self.collection.find({"_id": {"$in": keys}}, projection=[])
        prefix = len(self.consumer) + 1
        return {document["_id"][prefix:] async for document in found}

    async def claim_all(self, session: AsyncClientSession, envelopes: list[Any]) -> None:
        if not envelopes:
            return
        now = datetime.now(UTC)
        try:
            await self.collection.insert_many(
                [{"_id": self._key(e.id), "type": e.type, "handled_at": now} for e in envelopes],
                session=session,
            )
        except BulkWriteError as error:
            raise AlreadyHandled("an event in the batch was handled before") from error

    async def claim(self, session: AsyncClientSession, event_id: str, event_type: str) -> None:
        try:
            await self.collection.insert_one(
                {"_id": self._key(event_id), "type": event_type, "handled_at": datetime.now(UTC)},
                session=session,
            )
        except DuplicateKeyError:
            raise AlreadyHandled(event_id) from None
