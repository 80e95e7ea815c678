"""A repository's aggregates as one unit of work sees them (its `deferred` writes,
ketenbus.kit.uow): each read once and then kept, and what was added and saved written
once, in the unit of work's last write.

Events about one client come in order, so a consumed batch touches the same aggregate
again and again (a module assigned, its homework, completed): a find and a write per
event, a round trip each. Kept, an aggregate is read once per unit of work and written
once, in its final state. Kept also means seen: a handler later in the batch gets the very
object the handlers before it changed, which the database will not have until the end.

A repository gives it a `Codec` (the aggregate's id, its document and back) and, for
optimistic concurrency, the name of an int field the aggregate and its document share (or,
for objects saved whether or not they are stored yet, `upsert=True`), and asks
`GatheredDocuments.of(tx, ...)` for it on every call (trajectory's store.py):

    def _documents(self) -> GatheredDocuments[Trajectory]:
        return GatheredDocuments.of(self.tx, self.collection, STORED, version="version")

    async def by_referral(self, referral_id: str) -> Trajectory | None:
        return await self._documents().one(
            {"referral_id": referral_id}, lambda t: t.referral_id == referral_id
        )

    async def save(self, trajectory: Trajectory) -> None:
        self._documents().save(trajectory)
        self._publish(trajectory)       # events at once: the outbox keeps the handlers' order

A consumed batch whose events would each look up an aggregate by one field may read them
all ahead in one query: `read_ahead(field, values)` keeps what it finds, and afterwards
`get(id)` (field `_id`) or `one({field: value}, ...)` for one of those values answers from
what is kept, without a query, also when nothing was stored. The consumer calls a service's
read-aheads (`EventHandlers.read_ahead`, ketenbus.kit.consumer) before the batch's handlers.

Reads: `get(id)`; `one(query, matches)`; `merged(documents, matches)` for a list the
repository queried itself (none: the kept ones alone). The last two name their query twice,
as the database's filter and as a test on an object (`matches`), which answers it for the
kept ones. A query the kept objects cannot answer (a count, a projection) comes after
`flush()`, which writes them first. Writes: `add`, `save`; `put` (with `upsert`, no
version) for an object written whole whatever is stored under its id, without reading it
(a blind replace); `forget(matches)` lets go of
what the repository deletes, so that a delete in the middle of a batch takes what the batch
added or changed before it.

When the unit of work ends (`join`): the added inserted, then the saved replaced (with
`upsert`, inserted when not stored yet: notifications' module watches), in the unit of
work's last write with its inbox claims and outbox (ketenbus.kit.last_write), one command.
A replace that finds its document changed (another version) or gone raises
`ConcurrentChange` (transient: the batch is undone and retried); a failed write comes out as
the single `DuplicateKeyError` or `WriteError` it would have been alone, without the
document pymongo puts in a bulk error (an aggregate holds personal data, which no log may
show).

Outside a transaction (`uow.reading()`) there is no unit of work to keep anything for:
`of()` gives a store for that one read, and refuses writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from ketenbus.kit.last_write import LastWrite, write_alone
from ketenbus.kit.uow import Transaction

T = TypeVar("T")

Document = dict[str, Any]


class Codec(Protocol[T]):
    """How a repository stores its aggregate. Async both ways, for a codec that needs the
    database (learning's seals homework answers with a key it looks up)."""

    def id_of(self, item: T) -> str: ...

    async def to_document(self, item: T) -> Document: ...

    async def from_document(self, document: Document) -> T: ...


class AsStored:
    """The codec of a repository whose aggregate is its document, a dict with its `_id`."""

    def id_of(self, document: Document) -> str:
        return str(document["_id"])

    async def to_document(self, document: Document) -> Document:
        return document

    async def from_document(self, document: Document) -> Document:
        return document


AS_STORED = AsStored()


class GatheredDocuments(Generic[T]):
    def __init__(
        self,
        collection: AsyncCollection[Any],
        session: AsyncClientSession,
        codec: Codec[T],
        *,
        version: str | None = None,
        upsert: bool = False,
    ) -> None:
        if version is not None and upsert:
            # An upsert at a version it was not read at would insert a second copy.
            raise ValueError("a versioned object is replaced as read, not upserted")
        self.collection, self.session, self.codec = collection, session, codec
        # The int field the aggregate and its document share, for optimistic concurrency.
        self.version = version
        # A saved object may not be stored yet: its replace inserts it then.
        self.upsert = upsert
        self.kept: dict[str, T] = {}
        # Kept, but not stored yet: inserted when flushed.
        self.added: set[str] = set()
        # With a version: the version each stored one was read at.
        self.read_at: dict[str, int] = {}
        # What to write, in the order first added or saved (a dict as an ordered set).
        self.changed: dict[str, None] = {}
        # Field -> the values every stored object of is kept (`read_ahead`).
        self.read_by: dict[str, set[Any]] = {}

    @classmethod
    def of(
        cls,
        tx: Transaction,
        collection: AsyncCollection[Any],
        codec: Codec[T],
        *,
        version: str | None = None,
        upsert: bool = False,
    ) -> GatheredDocuments[T]:
        """The unit of work's store for the collection (one for every event of a batch);
        outside a transaction, one for this read alone."""
        if not tx.session.in_transaction:
            return cls(collection, tx.session, codec, version=version, upsert=upsert)
        return tx.deferred(
            f"documents of {collection.name}",
            lambda: cls(collection, tx.session, codec, version=version, upsert=upsert),
        )

    # ------------------------------------------------------------------ reads

    async def get(self, item_id: str) -> T | None:
        kept = self.kept.get(item_id)
        if kept is not None or self._read_ahead("_id", item_id):
            return kept
        document = await self.collection.find_one({"_id": item_id}, session=self.session)
        return await self._keep(document) if document else None

    async def one(self, query: Document, matches: Callable[[T], bool]) -> T | None:
        """The kept object that matches, else the database's: what it finds is kept, unless
        kept already (then the kept one, if it still matches: it may have changed)."""
        kept = self._matching(matches)
        if kept:
            return kept[0]
        if len(query) == 1 and self._read_ahead(*next(iter(query.items()))):
            return None  # every stored one was read ahead: none matches any more
        document = await self.collection.find_one(query, session=self.session)
        if document is None:
            return None
        item = await self._keep(document)
        return item if matches(item) else None

    async def read_ahead(self, field: str, values: Iterable[Any]) -> None:
        """Every stored object whose `field` is one of `values`, read in one query and kept
        (those read ahead before are not asked again)."""
        done = self.read_by.setdefault(field, set())
        wanted = set(values) - done
        if not wanted:
            return
        query = {field: {"$in": sorted(wanted)}}
        async for document in self.collection.find(query, session=self.session):
            await self._keep(document)
        done |= wanted

    async def merged(self, documents: list[Document], matches: Callable[[T], bool]) -> list[T]:
        """The objects of the documents the repository found (its own query, sorted and
        limited as it likes): the kept object in place of a kept one's document, and the kept
        ones the database cannot know of (added, or changed to match), each once, in no
        particular order."""
        found: dict[str, T] = {}
        for document in documents:
            item = await self._keep(document)
            found[self.codec.id_of(item)] = item
        found.update((self.codec.id_of(item), item) for item in self._matching(matches))
        return [item for item in found.values() if matches(item)]

    # ------------------------------------------------------------------ writes

    def add(self, item: T) -> None:
        """Inserted when the unit of work ends (one that is stored already fails there)."""
        self._writing()
        item_id = self.codec.id_of(item)
        if item_id in self.kept:
            raise ValueError(f"{item_id} exists already")
        self.kept[item_id] = item
        self.added.add(item_id)
        self.changed[item_id] = None

    def save(self, item: T) -> None:
        """Replaced when the unit of work ends (with `upsert`, inserted if not stored yet);
        with a version, only at the version it was read at, and one version further however
        often the unit of work saved it."""
        self._writing()
        item_id = self.codec.id_of(item)
        kept = self.kept.setdefault(item_id, item)
        if kept is not item:
            raise ValueError(f"a second copy of {item_id} in one unit of work")
        if self.version is not None and item_id not in self.added:
            # Read in an earlier unit of work (and saved in this one): as it was read.
            read_at = self.read_at.setdefault(item_id, getattr(item, self.version))
            setattr(item, self.version, read_at + 1)
        self.changed[item_id] = None

    def put(self, item: T) -> None:
        """Written whole when the unit of work ends, in place of whatever is stored or kept
        under its id, which is not read for it (with `upsert`, and no version to check)."""
        self._writing()
        if not self.upsert or self.version is not None:
            raise ValueError("only an upserted object without a version is written blind")
        item_id = self.codec.id_of(item)
        self.kept[item_id] = item
        self.changed[item_id] = None

    def forget(self, matches: Callable[[T], bool]) -> None:
        """Let go of the kept objects that match, and of their writes: for a repository
        that deletes them from the database (in the same session), so that later reads in
        the unit of work find nothing of them and its end writes nothing back."""
        for item_id, item in list(self.kept.items()):
            if matches(item):
                del self.kept[item_id]
                self.added.discard(item_id)
                self.read_at.pop(item_id, None)
                self.changed.pop(item_id, None)

    async def flush(self) -> None:
        """The changed objects written now, in one bulk write, for a repository that asks
        the database something the kept objects cannot answer (they stay kept, and may
        change again). The unit of work itself ends with `join`."""
        await write_alone(self, self.collection.database, self.session)

    async def join(self, last: LastWrite) -> None:
        """Each changed object's write added to the unit of work's last write, once, in its
        final state: inserted when added, else replaced (with a version, only at the version
        it was read at; with `upsert`, inserted if not stored)."""
        changed, self.changed = list(self.changed), {}
        if not changed:
            return
        # The inserts first, then the replaces, each in the order made. Each object is
        # written once, so the order between them matters only where one write frees a
        # unique key another takes: none of ours does.
        ids = [i for i in changed if i in self.added] + [i for i in changed if i not in self.added]
        name = self.collection.name
        for item_id in ids:
            document = await self.codec.to_document(self.kept[item_id])
            if item_id in self.added:
                last.insert(name, [document])
                continue
            where: Document = {"_id": item_id}
            if self.version is not None:
                where[self.version] = self.read_at[item_id]
            last.replace(name, where, document, upsert=self.upsert)
        last.then(lambda: self._written(ids))

    def _written(self, ids: list[str]) -> None:
        self.added.difference_update(ids)
        if self.version is not None:
            for item_id in ids:
                self.read_at[item_id] = getattr(self.kept[item_id], self.version)

    # ------------------------------------------------------------------ inside

    async def _keep(self, document: Document) -> T:
        """The object of this stored document: the one kept under its id already, which may
        have changed since, or else the document's, kept from now on."""
        kept = self.kept.get(document["_id"])
        if kept is not None:
            return kept
        item = await self.codec.from_document(document)
        kept = self.kept.setdefault(document["_id"], item)  # the same, read meanwhile
        if kept is item and self.version is not None:
            self.read_at[document["_id"]] = getattr(item, self.version)
        return kept

    def _read_ahead(self, field: str, value: Any) -> bool:
        """Whether every stored object with this value of `field` was read ahead."""
        try:
            return value in self.read_by.get(field, ())
        except TypeError:  # an operator ({"$in": ...}), not a value
            return False

    def _matching(self, matches: Callable[[T], bool]) -> list[T]:
        return [item for item in self.kept.values() if matches(item)]

    def _writing(self) -> None:
        if not self.session.in_transaction:
            raise RuntimeError("writes gathered while only reading; use command()")
