"""The reminders (or module watches) of one unit of work: notifications' `deferred` writes
(ketenbus.kit.uow). Each is read once and then kept; what was added and saved is written in
one ordered bulk write when the unit of work ends.

A consumed batch of AppointmentScheduled paid an insert per event, a round trip each; a
cancel or a move paid a find and a replace. Gathered, the batch's reminders go to the
database in one write at its end. Kept also means seen: a handler later in the batch (the
appointment cancelled or moved, the consent withdrawn, the client erased) gets the objects
the handlers before it planned or changed, which the database will not have until the end.

Small on purpose (keep, matching, add, save, drop, flush): trajectory's `gathered` is the
same idea, and both are meant to move onto one class in the kit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

T = TypeVar("T")


class Gathered(Generic[T]):
    """The documents of one collection as one unit of work sees them, as domain objects.

    `key` names an object's `_id`; `document_of` and `object_of` go to and from the stored
    document. A saved object that was not stored yet is written with `upsert` (module
    watches are saved whether or not they exist); an added one is inserted.
    """

    def __init__(
        self,
        collection: AsyncCollection[Any],
        session: AsyncClientSession,
        *,
        key: Callable[[T], str],
        document_of: Callable[[T], dict[str, Any]],
        object_of: Callable[[dict[str, Any]], T],
        upsert: bool = False,
    ) -> None:
        self.collection, self.session = collection, session
        self.key, self.document_of, self.object_of = key, document_of, object_of
        self.upsert = upsert
        self.kept: dict[str, T] = {}
        self.added: set[str] = set()  # not stored yet: inserted at the end
        # What to write, in the order first added or saved (a dict as an ordered set).
        self.changed: dict[str, None] = {}

    def get(self, key: str) -> T | None:
        return self.kept.get(key)

    def keep(self, document: dict[str, Any]) -> T:
        """The object of this stored document: the one kept under its id already, which may
        have changed since, or else the document's, kept from now on."""
        kept = self.kept.get(document["_id"])
        if kept is None:
            kept = self.kept[document["_id"]] = self.object_of(document)
        return kept

    def matching(self, matches: Callable[[T], bool]) -> list[T]:
        return [kept for kept in self.kept.values() if matches(kept)]

    def merged(self, documents: Iterable[dict[str, Any]], matches: Callable[[T], bool]) -> list[T]:
        """What the database found, the kept object in place of a kept one's document, and
        the kept ones it cannot know of (added, or changed to match), each once."""
        found = {self.key(kept): kept for kept in map(self.keep, documents)}
        found.update((self.key(kept), kept) for kept in self.matching(matches))
        return [kept for kept in found.values() if matches(kept)]

    def add(self, value: T) -> None:
        key = self.key(value)
        if key in self.kept:
            raise ValueError(f"{key} exists already")
        self.kept[key] = value
        self.added.add(key)
        self.changed[key] = None

    def save(self, value: T) -> None:
        key = self.key(value)
        if self.kept.setdefault(key, value) is not value:
            raise ValueError(f"a second copy of {key} in one unit of work")
        self.changed[key] = None

    def drop(self, matches: Callable[[T], bool]) -> None:
        """Deleted by the unit of work: no longer kept, and not written at its end."""
        for key in [self.key(kept) for kept in self.matching(matches)]:
            del self.kept[key]
            self.added.discard(key)
            self.changed.pop(key, None)

    async def flush(self) -> None:
        """Each changed object written once, in its final state: inserted when added, else
        replaced."""
        keys, self.changed = list(self.changed), {}
        if not keys:
            return
        writes = [self._write(key) for key in keys]
        try:
            await self.collection.bulk_write(writes, ordered=True, session=self.session)
        except BulkWriteError as error:
            # Not chained: the bulk error holds whole documents, which a log must not show.
            raise _single_write_error(error, self.collection.name) from None
        self.added.clear()

    def _write(self, key: str) -> InsertOne[Any] | ReplaceOne[Any]:
        document = self.document_of(self.kept[key])
        if key in self.added:
            return InsertOne(document)
        return ReplaceOne({"_id": key}, document, upsert=self.upsert)


def _single_write_error(error: BulkWriteError, collection: str) -> Exception:
    """The first failed write, raised as one insert or replace would have raised it (a
    reminder id twice as DuplicateKeyError), without the document pymongo adds to it: a
    client's reference and appointments have no place in a log."""
    failed = error.details.get("writeErrors") or []
    if not failed:
        return WriteError(f"the bulk write of {collection} failed", error.code)
    first = {key: value for key, value in failed[0].items() if key != "op"}
    kind = DuplicateKeyError if first.get("code") == 11000 else WriteError
    return kind(first.get("errmsg", "write failed"), first.get("code"), first)
