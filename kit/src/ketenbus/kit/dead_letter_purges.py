"""Forgetting an erased client's dead letters: once per erasure, by one replica at a time.

The service that purges (ketenbus.contracts.access.DEAD_LETTER_PURGER) asks for a purge in
the transaction in which it handles `ClientErasureRequested` (`DeadLetterPurges(tx).request`),
so a request is neither lost nor made twice for one event. A loop of that service, held by one
replica through the lease "dead-letter-purge" (ketenbus.kit.lease), takes every waiting
request, removes those clients' letters from every dead-letter topic of the chain in one pass
(ketenbus.kit.deadletters.purge) and then deletes the requests. After a crash, or when the
lease went elsewhere mid-pass, the requests are still waiting and the next holder purges
again; a partition without a letter about the clients is left as it is, so that costs only a
read. A request holds the client reference (pseudonymous; the purger's trajectories keep it
anyway) until its purge is done.

A letter about the client dead-lettered after the purge (an event still on its way at the
erasure, a replay) is not reached by it: it stays until the DLQ's retention, or until an
operator runs `python -m ketenbus.kit.deadletters purge <topic> --client <ref>`
(docs/security.md, "What is forgotten when").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit import deadletters
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.sweep import every
from ketenbus.kit.uow import Transaction

log = get_logger(__name__)

PURGES = "dead_letter_purges"
LEASE = "dead-letter-purge"
# Clients purged together in one pass: each pass reads every dead-letter partition once.
AT_ONCE = 100


class DeadLetterPurges:
    """The purges asked for, in the service's database."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def request(self, client_ref: str) -> None:
        await self.tx.db[PURGES].update_one(
            {"_id": client_ref},
            {"$setOnInsert": {"requested_at": self.tx.clock.now()}},
            upsert=True,
            session=self.tx.session,
        )


@dataclass(frozen=True)
class DeadLetterPurger:
    db: AsyncDatabase[Any]
    kafka_options: dict[str, Any]
    # The topics whose `.dlq` is purged: every topic a service of the chain reads.
    topics: Sequence[str]
    # None: this process is the only one (a test).
    lease: Lease | None = None
    every_seconds: float = 5.0

    async def run(self) -> None:
        await every(self.every_seconds, self.purge_waiting, self.lease)

    async def purge_waiting(self) -> deadletters.Purged | None:
        """One pass over the waiting requests; None when none was waiting."""
        waiting = [doc["_id"] async for doc in self.db[PURGES].find({}).limit(AT_ONCE)]
        if not waiting:
            return None
        still_ours = self.lease.held if self.lease is not None else None
        purged = await deadletters.purge(
            self.kafka_options, self.topics, waiting, still_ours=still_ours
        )
        if still_ours is not None and not await still_ours():
            return purged  # stopped halfway, perhaps: the replica that took over purges again
        await self.db[PURGES].delete_many({"_id": {"$in": waiting}})
        # Counts only: the references are the clients that asked to be forgotten.
        log.info(
            "dead letters of erased clients purged",
            clients=len(waiting),
            removed=purged.removed,
            kept=purged.kept,
            partitions=purged.partitions,
        )
        return purged
