"""A unit of work's last write: what it gathered, its inbox claims and its outbox documents,
sent as one client-level bulkWrite (several collections in one command) before the commit.

Why (issue 9): at 100 referrals a second a consumed batch holds a few events, and what it
costs is its round trips, each paid by the service and by the database: a bulk write per
collection of aggregates, an insert of the inbox claims, an insert into the outbox. Written
together they are one (benchmarks/REPORT.md: at 100 referrals/s the database's CPU per
referral fell from 4.8 to 4.5 ms).

The writes go in the order they were added (ordered: the first that fails stops the rest,
and the transaction is undone); writes to one collection alone, or more than
`TOGETHER_AT_MOST` of them (a large batch), as a bulk write per collection (the collections
in the order first written), which secantusd-rs handles for less per document. As the
transaction's first command, the first collection's writes go alone, the rest after them:
secantusd-rs 0.5.3 refuses a client-level bulkWrite that carries the transaction's
readConcern, which only its first command does. When SecantusDB takes it, that fall-back
goes.

Every replace counts on finding its document (at the version it was read at) or, as an
upsert, on inserting it, and every update is an upsert: if fewer matched or were inserted
than that, someone changed or deleted one meanwhile, and the write raises
`ConcurrentChange` (transient: the unit of work is undone and tried again). A failed write
comes out as the single `DuplicateKeyError` or `WriteError` it would have been alone,
without the document pymongo puts in a bulk error (an aggregate holds personal data, which
no log may show); an insert added with `on_duplicate` raises that error instead when its
key is taken (an inbox claim: `AlreadyHandled`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    DuplicateKeyError,
    PyMongoError,
    WriteError,
)

from ketenbus.kit.errors import TransientError

Document = dict[str, Any]
_DUPLICATE_KEY = 11000
# secantusd-rs spends more on each operation of a client-level bulkWrite than on each
# document of one collection's bulk write: together saves its CPU up to three documents a
# collection (nine writes), costs it from ten (thirty), and saves the service's round trips
# throughout (benchmarks/last_write.py).
TOGETHER_AT_MOST = 20


class ConcurrentChange(TransientError):
    """Someone else changed (or deleted) the aggregate since we read it: read again and retry."""


@dataclass(frozen=True)
class _Write:
    """An insert (no `where`), a replace or an update of one document."""

    collection: str
    document: Document  # inserted, the replacement, or the update's operators
    where: Document | None = None
    replace: bool = False
    upsert: bool = False

    def operation(self, namespace: str | None = None) -> Any:
        if self.where is None:
            return InsertOne(self.document, namespace=namespace)
        kind = ReplaceOne if self.replace else UpdateOne
        return kind(self.where, self.document, upsert=self.upsert, namespace=namespace)


class LastWrite:
    """The writes of one unit of work's end, in the order added; `send` writes them."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.writes: list[_Write] = []
        self.must_match = 0
        self.on_duplicate: dict[str, Callable[[], Exception]] = {}
        self.done: list[Callable[[], None]] = []

    def insert(
        self,
        collection: str,
        documents: list[Document],
        *,
        on_duplicate: Callable[[], Exception] | None = None,
    ) -> None:
        self.writes.extend(_Write(collection, d) for d in documents)
        if on_duplicate is not None:
            self.on_duplicate[collection] = on_duplicate

    def replace(
        self, collection: str, where: Document, document: Document, *, upsert: bool = False
    ) -> None:
        """Replaced where `where` matches (with `upsert`, inserted if nothing does)."""
        self.writes.append(_Write(collection, document, where, replace=True, upsert=upsert))
        self.must_match += 1

    def update(self, collection: str, where: Document, operations: Document) -> None:
        """An upsert with update operators (a projection's): it matches or inserts, so it
        counts as one either way."""
        self.writes.append(_Write(collection, operations, where, upsert=True))
        self.must_match += 1

    def then(self, done: Callable[[], None]) -> None:
        """Called once everything is written (a gathered object's bookkeeping)."""
        self.done.append(done)

    async def send(self, session: AsyncClientSession) -> None:
        writes, matched = self.writes, 0
        if writes and _first_command(session):
            # The transaction's first command carries its readConcern, which secantusd-rs
            # takes on no client-level bulkWrite: the first collection's writes go alone.
            head = writes[0].collection
            matched += await self._apart(session, [w for w in writes if w.collection == head])
            writes = [w for w in writes if w.collection != head]
        if len({w.collection for w in writes}) > 1 and len(writes) <= TOGETHER_AT_MOST:
            matched += await self._together(session, writes)
        elif writes:
            matched += await self._apart(session, writes)
        if matched != self.must_match:
            # The replaced ids (an upsert never misses): one of them was not found.
            replaced = [w.where["_id"] for w in self.writes if w.where and w.replace]
            raise ConcurrentChange(", ".join(map(str, replaced)))
        for done in self.done:
            done()

    async def _together(self, session: AsyncClientSession, writes: list[_Write]) -> int:
        """The writes in one client-level bulkWrite; how many replaces and updates matched
        or inserted."""
        operations = [w.operation(f"{self.db.name}.{w.collection}") for w in writes]
        try:
            result = await session.client.bulk_write(operations, session=session, ordered=True)
        except ClientBulkWriteException as error:
            failed = error.details.get("writeErrors") or []
            first = writes[failed[0]["idx"]] if failed else None
            collections = ", ".join(dict.fromkeys(w.collection for w in writes))
            raise self._duplicate(first, failed) or single_client_write_error(
                error, collections
            ) from None  # not chained: the bulk error holds whole documents
        return result.matched_count + result.upserted_count

    async def _apart(self, session: AsyncClientSession, writes: list[_Write]) -> int:
        """The writes in a bulk write per collection, the collections in the order first
        written, each one's writes in their order (a projection's interleave collections)."""
        matched = 0
        by_collection: dict[str, list[_Write]] = {}
        for write in writes:
            by_collection.setdefault(write.collection, []).append(write)
        for collection, own in by_collection.items():
            try:
                result = await self.db[collection].bulk_write(
                    [w.operation() for w in own], session=session, ordered=True
                )
            except BulkWriteError as error:
                failed = error.details.get("writeErrors") or []
                first = own[failed[0]["index"]] if failed else None
                raise self._duplicate(first, failed) or single_write_error(
                    error, collection
                ) from None  # not chained: the bulk error holds whole documents
            matched += result.matched_count + result.upserted_count
        return matched

    def _duplicate(self, write: _Write | None, failed: list[Document]) -> Exception | None:
        """The error an insert with `on_duplicate` raises when its key is taken."""
        if write is None or failed[0].get("code") != _DUPLICATE_KEY:
            return None
        make = self.on_duplicate.get(write.collection)
        return make() if make is not None and write.where is None else None


class _Joins(Protocol):
    async def join(self, last: LastWrite) -> None: ...


async def write_alone(joining: _Joins, db: AsyncDatabase[Any], session: AsyncClientSession) -> None:
    """A gathered object's writes written now, in a last write of their own: its `flush()`
    for a read in the middle of a unit of work that the kept objects cannot answer."""
    last = LastWrite(db)
    await joining.join(last)
    await last.send(session)


def _first_command(session: AsyncClientSession) -> bool:
    """Whether the session's transaction has sent nothing yet (the driver's own record of
    it, a private one: its next command carries the transaction's readConcern)."""
    return session._transaction.starting()


def single_write_error(error: BulkWriteError, collection: str) -> Exception:
    """The first failed write, raised as one insert or replace would have raised it: a
    second aggregate under a unique key as DuplicateKeyError, a conflict with its code and
    labels (so that it still reads as transient); without the document pymongo adds to it
    (an aggregate holds personal data, which has no place in a log)."""
    labels = error.details.get("errorLabels") or []
    whole = WriteError(
        f"the bulk write to {collection} failed", error.code, {"errorLabels": labels}
    )
    return _single(error.details.get("writeErrors") or [], labels, whole, hidden=("op",))


def single_client_write_error(error: ClientBulkWriteException, collections: str) -> Exception:
    """The same for a client-level bulk write (several collections in one command): the
    first failed write as the DuplicateKeyError or WriteError it would have been alone,
    without its document; a failure of the whole command (a conflict) as the driver raised
    it, which keeps its code and labels (transient stays transient)."""
    labels = _labels(error.error)
    whole = (
        error.error
        if isinstance(error.error, PyMongoError)
        else WriteError(f"the bulk write to {collections} failed", None, {"errorLabels": labels})
    )
    return _single(error.details.get("writeErrors") or [], labels, whole, hidden=("op", "idx"))


def _single(
    failed: list[dict[str, Any]], labels: list[str], whole: Exception, *, hidden: tuple[str, ...]
) -> Exception:
    """The first of the failed writes as the error it would have been alone, with the bulk
    write's labels and without the keys `hidden` (`op`: the document); `whole` when no
    single write failed (the command itself did)."""
    if not failed:
        return whole
    first = {key: value for key, value in failed[0].items() if key not in hidden}
    kind = DuplicateKeyError if first.get("code") == _DUPLICATE_KEY else WriteError
    details = {"errorLabels": labels} | first
    return kind(first.get("errmsg", "write failed"), first.get("code"), details)


def _labels(error: Any) -> list[str]:
    details = getattr(error, "details", None) or {}
    return list(details.get("errorLabels") or [])
