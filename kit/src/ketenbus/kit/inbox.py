"""The idempotent inbox: which events this service has already handled.

The claim is written in the same transaction as the state change, so an event redelivered
after a crash is recognised, and its effect is never doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.last_write import LastWrite

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

    def claim_all(self, last: LastWrite, envelopes: list[Any]) -> None:
        """Claims for these events in the unit of work's last write: a repeat among them
        makes it raise `AlreadyHandled`."""
        now = datetime.now(UTC)
        last.insert(
            INBOX,
            [{"_id": self._key(e.id), "type": e.type, "handled_at": now} for e in envelopes],
            on_duplicate=lambda: AlreadyHandled("an event in the batch was handled before"),
        )

    async def claim(self, session: AsyncClientSession, event_id: str, event_type: str) -> None:
        try:
            await self.collection.insert_one(
                {"_id": self._key(event_id), "type": event_type, "handled_at": datetime.now(UTC)},
                session=session,
            )
        except DuplicateKeyError:
            raise AlreadyHandled(event_id) from None
