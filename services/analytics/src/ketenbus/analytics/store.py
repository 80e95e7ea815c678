"""Analytics' own database: the fact collections the projection writes and the measures read.

Erasure: the person's facts keep counting, under a random token instead of the client
reference. So that a later event about the same person (a still-open trajectory closing, a
module completed, an event from another topic that arrives after the erasure) cannot write
the reference back, the store keeps a ledger of erased references: the SHA-256 of each (never
the reference itself; references are random, so the hash cannot be reversed) with the token
that replaced it. Every fact update that would set an erased reference sets the token instead.
The ledger is not a fact collection: a rebuild does not drop it, and uses it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.analytics.facts import Facts
from ketenbus.analytics.projection import (
    APPOINTMENTS,
    CASES,
    FACT_COLLECTIONS,
    REFERRALS,
    REPLACED_BY,
    SNAPSHOTS,
    Update,
    updates_for,
)
from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import ClientErasureRequested
from ketenbus.kit.uow import Transaction

EVENT_COUNTS = "event_counts"
ERASED = "erased_clients"
# Per organisation, the periods it published a benchmark snapshot for and the snapshot in
# force for each: analytics' own record (not a projection), so that a second request sees
# the first at once, and two at the same time conflict on the one document.
PUBLICATIONS = "benchmark_publications"


def erased_key(client_ref: str) -> str:
    """How the ledger of erasures knows a reference without keeping it."""
    return hashlib.sha256(client_ref.encode()).hexdigest()


class FactStore:
    def __init__(self, db: AsyncDatabase[Any], session: AsyncClientSession | None = None) -> None:
        self.db, self.session = db, session

    async def ensure_indexes(self) -> None:
        for name in FACT_COLLECTIONS:
            await self.db[name].create_index("organisation_id")

    async def apply(self, updates: list[Update]) -> None:
        for update in updates:
            operations: dict[str, Any] = {}
            if update.set:
                operations["$set"] = update.set
            if update.max:
                operations["$max"] = update.max
            if update.min:
                operations["$min"] = update.min
            if operations:
                await self.db[update.collection].update_one(
                    {"_id": update.key}, operations, upsert=True, session=self.session
                )

    async def project(self, event: Event) -> None:
        """What one event tells, into the facts; the live consumer and a rebuild alike."""
        await self.apply(await self.anonymised(updates_for(event)))
        if isinstance(event, ClientErasureRequested):
            await self.forget(event.client_ref)

    async def anonymised(self, updates: list[Update]) -> list[Update]:
        """The updates, with the token in place of every reference erased before."""
        refs = {u.set["client_ref"] for u in updates if u.set.get("client_ref")}
        tokens = {}
        for ref in refs:
            known = await self.db[ERASED].find_one({"_id": erased_key(ref)}, session=self.session)
            if known is not None:
                tokens[ref] = known["token"]
        if not tokens:
            return updates
        return [
            dataclasses.replace(u, set={**u.set, "client_ref": tokens[u.set["client_ref"]]})
            if u.set.get("client_ref") in tokens
            else u
            for u in updates
        ]

    async def erased_tokens(self) -> dict[str, str]:
        """The whole ledger: hash of an erased reference -> its token (for a rebuild)."""
        cursor = self.db[ERASED].find({}, session=self.session)
        return {d["_id"]: d["token"] async for d in cursor}

    async def remember_erased(self, client_ref: str, token: str) -> str:
        """Record the erasure (once: the first token stays); returns the token in force."""
        await self.db[ERASED].update_one(
            {"_id": erased_key(client_ref)},
            {"$setOnInsert": {"token": token}},
            upsert=True,
            session=self.session,
        )
        found = await self.db[ERASED].find_one(
            {"_id": erased_key(client_ref)}, session=self.session
        )
        assert found is not None
        return str(found["token"])

    async def forget(self, client_ref: str) -> None:
        """After erasure the person's facts still count, but can no longer be linked to any
        reference the chain knows: a random token replaces the client reference, now and in
        every fact a later event brings (the ledger, above)."""
        anonymous = await self.remember_erased(client_ref, f"anon_{uuid.uuid4().hex}")
        for name in FACT_COLLECTIONS:
            await self.db[name].update_many(
                {"client_ref": client_ref},
                {"$set": {"client_ref": anonymous}},
                session=self.session,
            )

    async def documents(self, collection: str, organisation: str | None) -> list[dict[str, Any]]:
        query = {} if organisation is None else {"organisation_id": organisation}
        return await self.db[collection].find(query, session=self.session).to_list()

    async def facts(self, organisation: str | None = None) -> Facts:
        """Every fact about one organisation (or all of them)."""
        loaded = {
            name: await self.documents(name, organisation)
            for name in FACT_COLLECTIONS
            if name != SNAPSHOTS
        }
        return Facts.of(loaded.__getitem__)

    async def pulse_facts(self, since: datetime) -> Facts:
        """Only what the live gauges need: open cases, the waiting list, recent appointments."""
        open_cases = await self.db[CASES].find({"closed_at": None}, session=self.session).to_list()
        waiting = await (
            self.db[REFERRALS]
            .find(
                {"waitlisted_at": {"$ne": None}, "waitlist_exited_at": None, "declined_at": None},
                session=self.session,
            )
            .to_list()
        )
        recent = await (
            self.db[APPOINTMENTS]
            .find(
                {"$or": [{"attended_at": {"$gte": since}}, {"missed_at": {"$gte": since}}]},
                session=self.session,
            )
            .to_list()
        )
        loaded = {CASES: open_cases, REFERRALS: waiting, APPOINTMENTS: recent}
        return Facts.of(lambda name: loaded.get(name, []))

    async def snapshots(self, period: str | None = None) -> list[dict[str, Any]]:
        """The snapshots in force (none another one replaced), oldest first."""
        query: dict[str, Any] = {"period": {"$exists": True}, REPLACED_BY: {"$exists": False}}
        if period is not None:
            query["period"] = period
        return await (
            self.db[SNAPSHOTS].find(query, session=self.session).sort("published_at", 1).to_list()
        )

    async def event_counts(self) -> dict[str, int]:
        cursor = self.db[EVENT_COUNTS].find(session=self.session)
        return {d["_id"]: d["count"] async for d in cursor}

    async def snapshot_known(self, snapshot_id: str) -> bool:
        """Whether a snapshot of this id was ever published (replaced ones included)."""
        found = await self.db[SNAPSHOTS].find_one({"_id": snapshot_id}, session=self.session)
        return found is not None and "period" in found

    async def publications(self, organisation: str) -> dict[str, dict[str, str]]:
        """The periods an organisation published for: period -> its snapshot id and label."""
        found = await self.db[PUBLICATIONS].find_one({"_id": organisation}, session=self.session)
        return dict(found["periods"]) if found else {}

    async def record_publication(
        self, organisation: str, period: str, snapshot_id: str, label: str
    ) -> None:
        await self.db[PUBLICATIONS].update_one(
            {"_id": organisation},
            {"$set": {f"periods.{period}": {"snapshot_id": snapshot_id, "label": label}}},
            upsert=True,
            session=self.session,
        )

    async def count(self, event_type: str) -> None:
        await self.db[EVENT_COUNTS].update_one(
            {"_id": event_type}, {"$inc": {"count": 1}}, upsert=True, session=self.session
        )


class AnalyticsTransaction(Transaction):
    @property
    def facts(self) -> FactStore:
        return FactStore(self.db, self.session)
