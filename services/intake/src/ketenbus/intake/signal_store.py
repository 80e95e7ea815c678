"""Early-warning signals in intake's database: the signal, and its details encrypted with a
key of the signal's own.

Why a key per signal and not the client's: a signal is not a client. Nobody consented, and
most residents never become one; registering them as clients would let the chain recognise
them later. The signal's key is wrapped with the master key like a client's; deleting the
signal deletes the key first, so a backup restored after the deletion cannot open the details.
A resident who accepts help becomes a client through the referral's reception, from then on
under the client's own key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts import sealing
from ketenbus.intake.personal import (
    IntakeKeys,
    SignalDetails,
    decrypt_details,
    encrypt_details,
    unwrap_client_key,
    wrap_client_key,
)
from ketenbus.intake.signals import Signal, SignalState
from ketenbus.kit.uow import Transaction

_SIGNAL = TypeAdapter(Signal)
# What the store keeps beside the aggregate's own fields.
_STORE_FIELDS = ("details", "idempotency_key", "fingerprint")


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The same Idempotency-Key from the same creditor always means the same signal.
    await db.signals.create_index(
        [("creditor_organisation_id", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    # For the lookup by key: SecantusDB does not find documents through the partial index
    # above, it scans the collection (see the referrals' index in store.py).
    await db.signals.create_index("idempotency_key")
    await db.signals.create_index([("organisation_id", 1), ("received_at", 1)])
    await db.signals.create_index([("state", 1), ("outreach_due_by", 1)])
    await db.signals.create_index("received_at")  # the six-month sweep


def _document(signal: Signal) -> dict[str, Any]:
    document: dict[str, Any] = _SIGNAL.dump_python(signal, exclude={"events"})
    document["_id"] = document.pop("id")
    # BSON has datetimes but no dates: the calendar days are kept as ISO text.
    document["signal_date"] = signal.signal_date.isoformat()
    if signal.end_of_supply_on is not None:
        document["end_of_supply_on"] = signal.end_of_supply_on.isoformat()
    return document


def _signal(document: dict[str, Any]) -> Signal:
    own = {k: v for k, v in document.items() if k not in _STORE_FIELDS and k != "_id"}
    return _SIGNAL.validate_python({**own, "id": document["_id"]})


class SignalRepository:
    def __init__(self, tx: Transaction, keys: IntakeKeys) -> None:
        self.tx = tx
        self.keys = keys
        self.collection = tx.db.signals

    async def add(
        self,
        signal: Signal,
        details: SignalDetails,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        data_key = sealing.new_key()
        await self.tx.db.signal_keys.insert_one(
            {"_id": signal.id, **wrap_client_key(self.keys, signal.id, data_key)},
            session=self.tx.session,
        )
        await self.collection.insert_one(
            {
                **_document(signal),
                "details": encrypt_details(signal.id, data_key, details),
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
            },
            session=self.tx.session,
        )
        self._publish(signal)

    async def save(self, signal: Signal) -> None:
        state = _document(signal)
        del state["_id"]
        await self.collection.update_one(
            {"_id": signal.id}, {"$set": state}, session=self.tx.session
        )
        self._publish(signal)

    async def get(self, signal_id: str) -> Signal | None:
        document = await self.collection.find_one({"_id": signal_id}, session=self.tx.session)
        return _signal(document) if document else None

    async def details(self, signal_id: str) -> SignalDetails | None:
        stored = await self.tx.db.signal_keys.find_one({"_id": signal_id}, session=self.tx.session)
        document = await self.collection.find_one(
            {"_id": signal_id}, projection=["details"], session=self.tx.session
        )
        if stored is None or document is None:
            return None
        data_key = unwrap_client_key(self.keys, signal_id, stored)
        return decrypt_details(signal_id, data_key, document["details"], SignalDetails)

    async def by_idempotency_key(
        self, creditor_organisation_id: str, key: str
    ) -> tuple[Signal, str | None] | None:
        document = await self.collection.find_one(
            {"creditor_organisation_id": creditor_organisation_id, "idempotency_key": key},
            session=self.tx.session,
        )
        return (_signal(document), document.get("fingerprint")) if document else None

    async def of_organisation(
        self, organisation_id: str, state: SignalState | None, overdue: bool | None
    ) -> list[Signal]:
        query: dict[str, Any] = {"organisation_id": organisation_id}
        if state is not None:
            query["state"] = state.value
        if overdue is not None:
            query["overdue_flagged_at"] = {"$ne": None} if overdue else None
        cursor = self.collection.find(
            query, projection={f: 0 for f in _STORE_FIELDS}, session=self.tx.session
        )
        return [_signal(d) async for d in cursor.sort("received_at", ASCENDING)]

    async def due_without_outreach(self, now: datetime) -> list[str]:
        """Open signals whose window passed with no outreach and no flag yet."""
        cursor = self.collection.find(
            {
                "state": SignalState.OPEN.value,
                "attempts": [],
                "overdue_flagged_at": None,
                "outreach_due_by": {"$lte": now},
            },
            projection=["_id"],
            session=self.tx.session,
        )
        return [d["_id"] async for d in cursor]

    async def received_before(self, moment: datetime) -> list[str]:
        cursor = self.collection.find(
            {"received_at": {"$lt": moment}}, projection=["_id"], session=self.tx.session
        )
        return [d["_id"] async for d in cursor]

    async def delete(self, signal: Signal) -> None:
        """The key first: without it the details cannot be opened, wherever a copy survives."""
        await self.tx.db.signal_keys.delete_one({"_id": signal.id}, session=self.tx.session)
        await self.collection.delete_one({"_id": signal.id}, session=self.tx.session)
        self._publish(signal)

    def _publish(self, signal: Signal) -> None:
        self.tx.publish_all(signal.events)
        signal.events.clear()
