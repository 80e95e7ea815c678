"""The commands a MongoDB client sent, for tests that count a unit of work's round trips
(issue 9: a batch's documents are read once and written once, not one by one).

    commands = SentCommands()
    client = AsyncMongoClient(url, event_listeners=[commands])
    ...
    [inserted] = commands.to("referrals", "insert")

A client-level `bulkWrite` (several collections in one command) is listed under each of
its collections: `commands.to("referrals", "bulkWrite")`; `names()` lists it once, with
the tuple of its collections: `("bulkWrite", ("trajectories", "outbox"))`.

A command about no collection (a transaction's commit, a ping) is left out, unless asked
for with `keep_collectionless=True`: then it is kept whatever `collections` says, with the
value it carries under its own name as its `collection` (`commitTransaction`: 1). A test
of a whole unit of work's round trips compares their names in order:

    commands = SentCommands(keep_collectionless=True)
    ...
    assert commands.names() == [("find", "trajectories"), ..., ("commitTransaction", 1)]

A store's test fixture gets a database of its own whose commands it sees from
`watched_database`, which drops it afterwards:

    async with watched_database(mongo_url, "learning_store", commands) as db:
        await store.ensure_indexes(db)
        yield UnitOfWork(db.client, db, service="learning", ...)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase


@dataclass
class SentCommands(monitoring.CommandListener):
    """Every command sent about a collection, as sent, with its `name` and `collection`
    added; `collections` narrows it to those. With `keep_collectionless`, the commands
    about none as well (a transaction's commit)."""

    collections: tuple[str, ...] = ()
    sent: list[dict[str, Any]] = field(default_factory=list)
    keep_collectionless: bool = field(default=False, kw_only=True)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "bulkWrite":
            # A client-level bulk write: one command about several collections, counted
            # once under each (its `nsInfo` names them as "database.collection").
            for namespace in event.command.get("nsInfo", []):
                self._add(namespace["ns"].split(".", 1)[1], event)
            return
        collection = event.command.get(event.command_name)
        if isinstance(collection, str):
            self._add(collection, event)
        elif self.keep_collectionless:
            # Not about a collection (a transaction's commit, a ping): kept whatever
            # `collections` says, under the value it carries (commitTransaction: 1).
            self._record(collection, event)

    def _add(self, collection: str, event: monitoring.CommandStartedEvent) -> None:
        if self.collections and collection not in self.collections:
            return
        self._record(collection, event)

    def _record(self, collection: Any, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(
            {
                "name": event.command_name,
                "collection": collection,
                "request_id": event.request_id,
                **event.command,
            }
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def to(self, collection: str, name: str) -> list[dict[str, Any]]:
        return [c for c in self.sent if c["collection"] == collection and c["name"] == name]

    def inserted(self, collection: str) -> list[dict[str, Any]]:
        """The documents inserted into the collection, in the order sent, whether by an
        insert or in a client-level bulkWrite."""
        return [op["document"] for op in self._writes(collection, "insert")]

    def updated(self, collection: str) -> list[dict[str, Any]]:
        """The updates and replaces of the collection's documents, in the order sent, each
        as an update command has it (`q`, `u`, `upsert`), whether sent by an update or in a
        client-level bulkWrite."""
        return [
            {"q": op["filter"], "u": op["updateMods"], "upsert": op.get("upsert", False)}
            if "filter" in op
            else op
            for op in self._writes(collection, "update")
        ]

    def _writes(self, collection: str, kind: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for command in self.to(collection, kind):
            found += (
                [{"document": d} for d in command["documents"]]
                if kind == "insert"
                else command["updates"]
            )
        for command in self.to(collection, "bulkWrite"):
            spaces = [n["ns"].split(".", 1)[1] for n in command["nsInfo"]]
            found += [op for op in command["ops"] if kind in op and spaces[op[kind]] == collection]
        return found

    def names(self) -> list[tuple[str, Any]]:
        """Each command's name and collection, in the order sent; a client-level bulkWrite
        once, with the tuple of its collections."""
        names: list[tuple[str, Any]] = []
        for _, same in groupby(self.sent, key=lambda c: c["request_id"]):
            [first, *more] = same
            collection = (first["collection"], *(c["collection"] for c in more))
            names.append((first["name"], collection if more else first["collection"]))
        return names

    def clear(self) -> None:
        self.sent.clear()


@asynccontextmanager
async def watched_database(
    mongo_url: str, name: str, commands: SentCommands
) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database of its own (`name` and a random tail), on a client of its own that tells
    `commands` what it sends (its `client`); dropped, and the client closed, at the end."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[commands]
    )
    db = client[f"{name}_{uuid.uuid4().hex[:10]}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()
