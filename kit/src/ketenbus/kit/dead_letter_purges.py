"""Forgetting erased clients' dead letters: at the erasure, and those that come after it.

The service that purges (ketenbus.contracts.access.DEAD_LETTER_PURGER) asks for a purge in
the transaction in which it handles `ClientErasureRequested` (`DeadLetterPurges(tx).request`),
so a request is neither lost nor made twice for one event. The same transaction puts the
SHA-256 of the reference (never the reference) in its ledger of erased clients.

A loop of that service, held by one replica through the lease "dead-letter-purge"
(ketenbus.kit.lease), does two things each pass:
- it takes every waiting request, removes those clients' letters from every dead-letter topic
  of the chain (ketenbus.kit.deadletters), and then deletes the requests. After a crash, or
  when the lease went elsewhere mid-pass, the requests are still waiting and the next holder
  purges again; a partition without a letter about the clients is left as it is, so that
  costs only a read. A request holds the client reference until its purge is done.
- it reads the letters that arrived on each dead-letter partition since the last pass (the
  offset it read up to is kept per partition); a letter that names an erased client (its
  reference's hash is in the ledger) has that partition purged at once. So a letter about
  the client that a service put aside after the erasure (an event still on its way, a replay)
  is forgotten within a pass too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit import deadletters
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.sweep import every
from ketenbus.kit.uow import Transaction

log = get_logger(__name__)

PURGES = "dead_letter_purges"  # waiting purges: the reference, until purged
ERASED = "dead_letter_erasures"  # the ledger: SHA-256 of each erased reference
READ_UP_TO = "dead_letter_offsets"  # per dead-letter partition: letters looked at up to here
LEASE = "dead-letter-purge"
# Clients purged together in one pass: each pass reads every dead-letter partition once.
AT_ONCE = 100


def erased_hash(client_ref: str) -> str:
    return hashlib.sha256(client_ref.encode()).hexdigest()


class DeadLetterPurges:
    """The purges asked for, in the service's database."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def request(self, client_ref: str) -> None:
        at = self.tx.clock.now()
        await self.tx.db[PURGES].update_one(
            {"_id": client_ref},
            {"$setOnInsert": {"requested_at": at}},
            upsert=True,
            session=self.tx.session,
        )
        await self.tx.db[ERASED].update_one(
            {"_id": erased_hash(client_ref)},
            {"$setOnInsert": {"erased_at": at}},
            upsert=True,
            session=self.tx.session,
        )


class DeadLetterPurger:
    def __init__(
        self,
        db: AsyncDatabase[Any],
        kafka_options: dict[str, Any],
        topics: Sequence[str],
        *,
        lease: Lease | None = None,
        every_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.kafka_options = kafka_options
        # The topics whose `.dlq` is purged: every topic a service of the chain reads.
        self.topics = topics
        # None: this process is the only one (a test).
        self.lease = lease
        self.every_seconds = every_seconds

    async def run(self) -> None:
        # One set of Kafka clients for every pass; a failure ends the loop (the runtime
        # starts it again), and with it the clients.
        async with deadletters.Purging(self.kafka_options) as purging:
            await every(self.every_seconds, lambda: self.one_pass(purging), self.lease)

    async def still_ours(self) -> bool:
        return self.lease is None or await self.lease.held()

    async def one_pass(self, purging: deadletters.Purging) -> deadletters.Purged:
        return await self.purge_waiting(purging) + await self.purge_late_letters(purging)

    async def purge_waiting(self, purging: deadletters.Purging) -> deadletters.Purged:
        """The clients whose erasure asked for a purge, from every dead-letter partition."""
        waiting = [doc["_id"] async for doc in self.db[PURGES].find({}).limit(AT_ONCE)]
        if not waiting:
            return deadletters.Purged(0, 0, 0)
        purged = await deadletters.purge_with(
            purging, self.topics, waiting, still_ours=self.still_ours
        )
        if not await self.still_ours():
            return purged  # stopped halfway, perhaps: the replica that took over purges again
        await self.db[PURGES].delete_many({"_id": {"$in": waiting}})
        self._log("at the erasure", len(waiting), purged)
        return purged

    async def purge_late_letters(self, purging: deadletters.Purging) -> deadletters.Purged:
        """Letters put aside since the last pass that name an erased client."""
        holding = await purging.holding(await purging.partitions(self.topics))
        read = {doc["_id"]: doc["offset"] async for doc in self.db[READ_UP_TO].find({})}
        total = deadletters.Purged(0, 0, 0)
        for partition, (first, end) in holding.items():
            place = f"{partition.topic}/{partition.partition}"
            start = max(read.get(place, first), first)
            if start >= end:
                continue
            if not await self.still_ours():
                break
            letters = await purging.letters(partition, start, end)
            named = {ref for letter in letters for ref in deadletters.client_refs_in(letter)}
            erased = await self._erased(named)
            if erased:
                purged = await purging.purge(partition, erased, end)
                self._log("after the erasure", len(erased), purged)
                total = total + purged
            await self.db[READ_UP_TO].update_one(
                {"_id": place}, {"$set": {"offset": end}}, upsert=True
            )
        return total

    async def _erased(self, client_refs: Collection[str]) -> set[str]:
        if not client_refs:
            return set()
        by_hash = {erased_hash(ref): ref for ref in client_refs}
        found = self.db[ERASED].find({"_id": {"$in": list(by_hash)}}, {"_id": 1})
        return {by_hash[doc["_id"]] async for doc in found}

    @staticmethod
    def _log(when: str, clients: int, purged: deadletters.Purged) -> None:
        # Counts only: the references are the clients that asked to be forgotten.
        log.info(
            "dead letters of erased clients purged",
            when=when,
            clients=clients,
            removed=purged.removed,
            kept=purged.kept,
            partitions=purged.partitions,
        )
