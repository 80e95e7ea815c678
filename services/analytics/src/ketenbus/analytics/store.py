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

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.analytics.facts import UNKNOWN, Appointment, Facts
from ketenbus.analytics.measures import PulseFacts
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
from ketenbus.contracts.envelope import Envelope, Event
from ketenbus.contracts.events import ClientErasureRequested
from ketenbus.kit.last_write import LastWrite, write_alone
from ketenbus.kit.uow import Transaction

EVENT_COUNTS = "event_counts"
ERASED = "erased_clients"
# Per organisation, the periods it published a benchmark snapshot for and the snapshot in
# force for each: analytics' own record (not a projection), so that a second request sees
# the first at once, and two at the same time conflict on the one document.
PUBLICATIONS = "benchmark_publications"


@dataclass(frozen=True)
class Projected:
    """What a run of events makes of the facts (`FactStore.projected`)."""

    upserts: list[tuple[str, Any, dict[str, Any]]]  # collection, key, update operators
    tokens: dict[str, str]  # every erased reference among them -> its token
    new_tokens: dict[str, str]  # of those, erased by these events, not in the ledger yet
    erased_now: list[str]


def erased_key(client_ref: str) -> str:
    """How the ledger of erasures knows a reference without keeping it."""
    return hashlib.sha256(client_ref.encode()).hexdigest()


class FactStore:
    def __init__(self, db: AsyncDatabase[Any], session: AsyncClientSession | None = None) -> None:
        self.db, self.session = db, session

    async def ensure_indexes(self) -> None:
        await asyncio.gather(
            *(self.db[name].create_index("organisation_id") for name in FACT_COLLECTIONS)
        )

    async def project(self, event: Event) -> None:
        """What one event tells, into the facts (project_all of one)."""
        await self.project_all([event])

    async def project_all(self, events: Sequence[Event]) -> None:
        """What these events tell, in their order, into the facts: the upserts one event at
        a time would make (`$set`, `$max`, `$min` of each update), as one ordered bulk write
        per collection, after one look in the ledger of erasures for all the references.
        A reference erased before, or by one of these events, is written as its token."""
        projected = await self.projected(events)
        writes: dict[str, list[UpdateOne]] = {}
        for collection, key, operations in projected.upserts:
            writes.setdefault(collection, []).append(
                UpdateOne({"_id": key}, operations, upsert=True)
            )
        for name, operations_of_name in writes.items():
            await self.db[name].bulk_write(operations_of_name, session=self.session)
        if projected.new_tokens:
            await self.remember_all_erased(projected.new_tokens)
        for ref in projected.erased_now:
            await self._replace_everywhere(ref, projected.tokens[ref])

    async def projected(self, events: Sequence[Event]) -> Projected:
        """The upserts these events make into the facts, in their order, with the tokens of
        the references erased before or by them (the ledger looked at once for them all)."""
        updates = [update for event in events for update in updates_for(event)]
        erased_now = list(
            dict.fromkeys(e.client_ref for e in events if isinstance(e, ClientErasureRequested))
        )
        refs = {u.set["client_ref"] for u in updates if u.set.get("client_ref")}
        tokens = await self._tokens(refs | set(erased_now))
        new_tokens = {ref: f"anon_{uuid.uuid4().hex}" for ref in erased_now if ref not in tokens}
        tokens.update(new_tokens)
        upserts = [
            (update.collection, update.key, operations)
            for update in updates
            if (operations := _operations(update, tokens))
        ]
        return Projected(upserts, tokens, new_tokens, erased_now)

    async def _tokens(self, refs: set[str]) -> dict[str, str]:
        """The ledger's token of each of these references that was erased."""
        if not refs:
            return {}
        by_key = {erased_key(ref): ref for ref in refs}
        found = self.db[ERASED].find({"_id": {"$in": list(by_key)}}, session=self.session)
        return {by_key[d["_id"]]: d["token"] async for d in found}

    async def erased_tokens(self) -> dict[str, str]:
        """The whole ledger: hash of an erased reference -> its token (for a rebuild)."""
        cursor = self.db[ERASED].find({}, session=self.session)
        return {d["_id"]: d["token"] async for d in cursor}

    async def remember_all_erased(self, tokens: Mapping[str, str]) -> None:
        """Record these erasures (reference -> token) in one bulk write; where the ledger
        knows a reference already, its first token stays."""
        if not tokens:
            return
        await self.db[ERASED].bulk_write(
            [
                UpdateOne({"_id": erased_key(ref)}, {"$setOnInsert": {"token": token}}, upsert=True)
                for ref, token in tokens.items()
            ],
            ordered=False,
            session=self.session,
        )

    async def _replace_everywhere(self, client_ref: str, token: str) -> None:
        """After erasure the person's facts still count, but can no longer be linked to any
        reference the chain knows: a random token replaces the client reference, now and in
        every fact a later event brings (the ledger, above)."""
        for name in FACT_COLLECTIONS:
            await self.db[name].update_many(
                {"client_ref": client_ref},
                {"$set": {"client_ref": token}},
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

    async def pulse_facts(self, since: datetime) -> PulseFacts:
        """Only what the live gauges need. The open cases and the waiting list are counted
        per organisation by the database: read into memory to be counted, a region's
        thousands grew analytics by 16 MB per 5,000 open cases. The appointments of the
        recent window are read (whether one counts depends on which of its times is set)."""
        open_cases = await self._count_by_organisation(
            CASES, {"opened_at": {"$ne": None}, "closed_at": None}
        )
        waiting = await self._count_by_organisation(
            REFERRALS,
            {"waitlisted_at": {"$ne": None}, "waitlist_exited_at": None, "declined_at": None},
        )
        recent = self.db[APPOINTMENTS].find(
            {"$or": [{"attended_at": {"$gte": since}}, {"missed_at": {"$gte": since}}]},
            session=self.session,
        )
        return PulseFacts(open_cases, waiting, [Appointment.of(d) async for d in recent])

    async def _count_by_organisation(self, name: str, match: dict[str, Any]) -> dict[str, int]:
        cursor = await self.db[name].aggregate(
            [{"$match": match}, {"$group": {"_id": "$organisation_id", "count": {"$sum": 1}}}],
            session=self.session,
        )
        counts: Counter[str] = Counter()
        async for found in cursor:
            counts[found["_id"] or UNKNOWN] += int(found["count"])
        return dict(counts)

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


def _operations(update: Update, tokens: Mapping[str, str]) -> dict[str, Any]:
    """The update as Mongo operators, with the token in place of an erased reference."""
    operations: dict[str, Any] = {}
    if update.set:
        ref = update.set.get("client_ref")
        operations["$set"] = (
            {**update.set, "client_ref": tokens[ref]} if ref in tokens else update.set
        )
    if update.max:
        operations["$max"] = update.max
    if update.min:
        operations["$min"] = update.min
    return operations


class GatheredFacts:
    """A unit of work's projection (its `deferred` writes): the consumed events gathered as
    their handlers run, projected and counted when it ends, in the unit of work's last write
    (ketenbus.kit.last_write) with its inbox claims. One by one, a batch of a hundred events
    took some three hundred round trips to the database."""

    def __init__(self, store: FactStore) -> None:
        self.store = store
        self.envelopes: list[Envelope[Any]] = []

    def add(self, envelope: Envelope[Any]) -> None:
        self.envelopes.append(envelope)

    async def flush(self) -> None:
        assert self.store.session is not None  # gathered only inside a transaction
        await write_alone(self, self.store.db, self.store.session)

    async def join(self, last: LastWrite) -> None:
        envelopes, self.envelopes = self.envelopes, []
        events = [e.data for e in envelopes]
        if any(isinstance(event, ClientErasureRequested) for event in events):
            # An erasure rewrites the facts stored already (and the ledger): written apart.
            await self.store.project_all(events)
        else:
            projected = await self.store.projected(events)
            for collection, key, operations in projected.upserts:
                last.update(collection, {"_id": key}, operations)
        for name, count in Counter(e.type for e in envelopes).items():
            last.update(EVENT_COUNTS, {"_id": name}, {"$inc": {"count": count}})


class AnalyticsTransaction(Transaction):
    @property
    def facts(self) -> FactStore:
        return FactStore(self.db, self.session)

    @property
    def projection(self) -> GatheredFacts:
        """The events to project and count, written when the unit of work ends."""
        return self.deferred("facts", lambda: GatheredFacts(self.facts))
