"""The kit's GatheredDocuments on the real database (SecantusDB), through a real unit of
work: each aggregate read once per unit of work and kept, the changed ones written once in
one bulk write at its end, only at the version they were read at, and a failed write that
shows no document."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from ketenbus.kit.clock import FixedClock
from ketenbus.kit.errors import TransientError
from ketenbus.kit.failures import is_transient
from ketenbus.kit.gathered import Document, GatheredDocuments
from ketenbus.kit.last_write import TOGETHER_AT_MOST, ConcurrentChange, LastWrite
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import Transaction, UnitOfWork

from .support import counted_event_class

pytestmark = pytest.mark.stack

# An event to publish: the test only stages it in the outbox (no topic is made for it).
CountedNote = counted_event_class("test.kit.carried")

# Stands for personal data: no error may show it.
MARKER = "personal-data-7f3a"


@dataclass
class Note:
    """The tests' aggregate: an id, something to change, a version."""

    id: str
    text: str
    version: int = 0


class NoteCodec:
    def id_of(self, item: Note) -> str:
        return item.id

    async def to_document(self, item: Note) -> Document:
        return {"_id": item.id, "text": item.text, "version": item.version}

    async def from_document(self, document: Document) -> Note:
        return Note(document["_id"], document["text"], document["version"])


def notes(tx: Transaction, *, upsert: bool = False) -> GatheredDocuments[Note]:
    """The unit of work's notes, as a repository asks for them on every call: versioned,
    or (`upsert`) saved whether or not stored yet."""
    version = None if upsert else "version"
    return GatheredDocuments.of(tx, tx.db.notes, NoteCodec(), version=version, upsert=upsert)


async def read(tx: Transaction, *note_ids: str) -> list[Note]:
    """These stored notes, through the unit of work's store."""
    found = [await notes(tx).get(note_id) for note_id in note_ids]
    assert None not in found
    return [note for note in found if note is not None]


@dataclass
class Notes:
    uow: UnitOfWork[Transaction]
    commands: SentCommands

    @property
    def collection(self) -> Any:
        return self.uow.db.notes

    async def put(self, *items: Note) -> None:
        """Stored directly, as an earlier unit of work would have; the commands forgotten."""
        await self.collection.insert_many([await NoteCodec().to_document(n) for n in items])
        self.commands.clear()

    async def stored(self) -> dict[str, tuple[str, int]]:
        return {d["_id"]: (d["text"], d["version"]) async for d in self.collection.find()}

    def sent(self, *names: str) -> list[dict[str, Any]]:
        """The commands of these names sent about the notes, in their order."""
        return [c for c in self.commands.sent if c["name"] in names]


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Notes]:
    commands = SentCommands(("notes",))
    async with watched_database(mongo_url, "kit_gathered", commands) as db:
        clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        yield Notes(UnitOfWork(db.client, db, service="kit-test", clock=clock), commands)


async def test_a_unit_of_work_reads_a_note_once_and_every_caller_gets_the_same(store: Notes):
    await store.put(Note("n1", "as stored"))

    async with store.uow.command() as tx:
        [first] = await read(tx, "n1")
        first.text = "changed by the first"
        [second] = await read(tx, "n1")  # a second caller, asking anew

    assert second is first
    assert second.text == "changed by the first"
    assert len(store.sent("find")) == 1
    assert store.sent("insert", "update") == []  # read, never saved: nothing written


async def test_the_end_inserts_the_added_then_replaces_the_saved_each_once(store: Notes):
    await store.put(Note("saved", "as stored"), Note("other", "as stored"))

    async with store.uow.command() as tx:
        [saved] = await read(tx, "saved")
        saved.text = "first change"
        notes(tx).save(saved)  # saved before anything is added: still replaced after
        notes(tx).add(Note("added", "new"))
        saved.text = "final change"
        notes(tx).save(saved)
        [other] = await read(tx, "other")
        other.text = "changed"
        notes(tx).save(other)
        assert store.sent("insert", "update") == []  # nothing before the end

    insert, update = store.sent("insert", "update")
    assert (insert["name"], update["name"]) == ("insert", "update")
    assert [d["_id"] for d in insert["documents"]] == ["added"]
    # Each replaced once, at the version it was read at, in its final state.
    assert [(u["q"], u["u"]["text"]) for u in update["updates"]] == [
        ({"_id": "saved", "version": 0}, "final change"),
        ({"_id": "other", "version": 0}, "changed"),
    ]
    assert await store.stored() == {
        "saved": ("final change", 1),  # one version further, however often saved
        "other": ("changed", 1),
        "added": ("new", 0),
    }


async def changed_behind_its_back(store: Notes, note_id: str) -> None:
    """Someone else moves the note on, committed at once (no session of ours)."""
    await store.collection.update_one({"_id": note_id}, {"$inc": {"version": 1}})


@pytest.mark.parametrize(
    ("read_in_it", "raised_as"),
    [
        # Read in an earlier unit of work: only the version in the replace's filter guards it.
        (False, ConcurrentChange),
        # Read in it: the engine sees the conflict first, as MongoDB does (WriteConflict, the
        # transaction's snapshot is older than the change); one that did not would leave it
        # to the version (ConcurrentChange). Transient either way.
        (True, (ConcurrentChange, OperationFailure)),
    ],
    ids=["read-before-the-unit-of-work", "read-in-it"],
)
async def test_a_note_changed_since_it_was_read_undoes_the_whole_unit_of_work(
    store: Notes, read_in_it: bool, raised_as: Any
):
    await store.put(Note("n1", "as stored"), Note("n2", "as stored"))
    if not read_in_it:
        async with store.uow.reading() as tx:
            ours = await read(tx, "n1", "n2")
        await changed_behind_its_back(store, "n2")

    with pytest.raises(raised_as) as raised:
        async with store.uow.command() as tx:
            if read_in_it:
                ours = await read(tx, "n1", "n2")
                await changed_behind_its_back(store, "n2")
            for note in ours:
                note.text = "ours"
                notes(tx).save(note)
            notes(tx).add(Note("n3", "ours"))

    assert is_transient(raised.value)  # undone and retried, not dead-lettered
    if isinstance(raised.value, ConcurrentChange):
        assert isinstance(raised.value, TransientError)
        assert "n2" in str(raised.value)
    assert await store.stored() == {"n1": ("as stored", 0), "n2": ("as stored", 1)}


async def test_an_upserted_note_is_inserted_then_replaced(store: Notes):
    async with store.uow.command() as tx:
        notes(tx, upsert=True).save(Note("n1", "never stored"))
    assert await store.stored() == {"n1": ("never stored", 0)}

    async with store.uow.command() as tx:
        notes(tx, upsert=True).save(Note("n1", "saved again"))

    assert await store.stored() == {"n1": ("saved again", 0)}
    assert store.sent("insert") == []
    assert [u["upsert"] for c in store.sent("update") for u in c["updates"]] == [True, True]


async def test_a_second_note_under_one_id_is_refused_without_showing_it(store: Notes):
    await store.put(Note("n1", "as stored"))

    with pytest.raises(DuplicateKeyError) as raised:
        async with store.uow.command() as tx:
            notes(tx).add(Note("n1", MARKER))

    error = raised.value
    assert error.code == 11000
    # As a log would show it: the key, not the document that would have been written.
    logged = "".join(traceback.format_exception(error))
    assert "n1" in str(error)
    for shown in (str(error), repr(error), repr(error.details), logged):
        assert MARKER not in shown
    assert await store.stored() == {"n1": ("as stored", 0)}


async def test_a_refused_write_of_several_collections_is_the_single_error_without_the_document(
    store: Notes,
):
    """The notes and the outbox in one client-level bulkWrite: a second note under one id
    comes out as DuplicateKeyError, and shows no document."""
    await store.put(Note("n1", "as stored"))

    with pytest.raises(DuplicateKeyError) as raised:
        async with store.uow.command() as tx:
            await tx.db.notes.find_one({"_id": "n1"}, session=tx.session)  # not the first
            notes(tx).add(Note("n1", MARKER))
            tx.publish(CountedNote(client_ref="cl_a", number=1))

    assert len(store.sent("bulkWrite")) == 1
    error = raised.value
    assert error.code == 11000
    logged = "".join(traceback.format_exception(error))
    for shown in (str(error), repr(error), repr(error.details), logged):
        assert MARKER not in shown
    # Undone with the transaction: the other collection's insert too.
    assert await store.uow.db.outbox.count_documents({}) == 0
    assert await store.stored() == {"n1": ("as stored", 0)}


async def test_outside_a_transaction_notes_are_read_but_not_written(store: Notes):
    await store.put(Note("n1", "as stored"))

    async with store.uow.reading() as tx:
        [note] = await read(tx, "n1")
        assert note == Note("n1", "as stored")
        with pytest.raises(RuntimeError):
            notes(tx).add(Note("n2", "new"))
        with pytest.raises(RuntimeError):
            notes(tx).save(note)

    assert await store.stored() == {"n1": ("as stored", 0)}


async def test_a_note_added_then_forgotten_is_not_written(store: Notes):
    async with store.uow.command() as tx:
        notes(tx).add(Note("kept", "new"))
        notes(tx).add(Note("forgotten", "new"))
        notes(tx).forget(lambda note: note.id == "forgotten")
        assert await notes(tx).get("forgotten") is None  # nor found later in the unit of work

    [insert] = store.sent("insert")
    assert [d["_id"] for d in insert["documents"]] == ["kept"]
    assert await store.stored() == {"kept": ("new", 0)}


async def test_notes_read_ahead_in_one_query_answer_later_reads_without_one(store: Notes):
    """A consumed batch's read-ahead: one query for every note its events will look up;
    afterwards a note asked for is the kept one, and one that is not stored is known absent."""
    await store.put(Note("n1", "first"), Note("n2", "second"), Note("n3", "third"))

    async with store.uow.command() as tx:
        await notes(tx).read_ahead("_id", ["n1", "n2", "never-stored"])
        [query] = store.sent("find")
        assert query["filter"] == {"_id": {"$in": ["n1", "n2", "never-stored"]}}
        [first, second] = await read(tx, "n1", "n2")
        assert await notes(tx).get("never-stored") is None
        assert await notes(tx).one({"_id": "never-stored"}, lambda n: False) is None
        assert len(store.sent("find")) == 1  # all answered from what was read ahead
        await notes(tx).read_ahead("_id", ["n1", "n3"])  # only n3 is asked for
        assert store.sent("find")[-1]["filter"] == {"_id": {"$in": ["n3"]}}
        await read(tx, "n3")
        assert await notes(tx).one({"text": "third"}, lambda n: n.text == "third") is not None
        # A field not read ahead goes to the database, as before.
        assert await notes(tx).one({"text": "fourth"}, lambda n: n.text == "fourth") is None

    assert (first.text, second.text) == ("first", "second")
    assert len(store.sent("find")) == 3
    assert store.sent("insert", "update") == []


async def test_a_note_put_is_written_whole_without_being_read(store: Notes):
    await store.put(Note("n1", "as stored", version=4))

    async with store.uow.command() as tx:
        notes(tx, upsert=True).put(Note("n1", "written blind"))
        notes(tx, upsert=True).put(Note("n2", "never stored"))
        notes(tx, upsert=True).put(Note("n2", "put twice: the last"))
        versioned = GatheredDocuments(tx.db.notes, tx.session, NoteCodec(), version="version")
        with pytest.raises(ValueError, match="blind"):
            versioned.put(Note("n3", "versioned: must be read first"))

    assert store.sent("find") == []
    assert await store.stored() == {"n1": ("written blind", 0), "n2": ("put twice: the last", 0)}


async def test_the_notes_go_with_the_outbox_in_one_command(store: Notes):
    """The unit of work's last write: the notes it gathered and its outbox documents in
    one client-level bulkWrite, instead of a write for each collection."""
    await store.put(Note("n0", "before"))
    async with store.uow.command() as tx:
        [before] = await read(tx, "n0")  # secantusd-rs takes no bulkWrite as a first command
        before.text = "changed"
        notes(tx).save(before)
        notes(tx).add(Note("n1", "new"))
        tx.publish(CountedNote(client_ref="cl_a", number=1))
        tx.publish(CountedNote(client_ref="cl_a", number=2))

    [write] = store.sent("bulkWrite")
    assert store.sent("insert", "update") == []
    namespaces = [n["ns"].split(".", 1)[1] for n in write["nsInfo"]]
    assert namespaces == ["notes", "outbox"]
    # The added note, the saved one, then both events.
    assert [next(iter(op)) for op in write["ops"]] == ["insert", "update", "insert", "insert"]
    assert [op[next(iter(op))] for op in write["ops"]] == [0, 0, 1, 1]
    staged = [r["headers"]["event_type"] async for r in store.uow.db.outbox.find().sort("position")]
    assert staged == [CountedNote.event_type()] * 2
    assert await store.stored() == {"n0": ("changed", 1), "n1": ("new", 0)}


async def test_a_large_last_write_goes_as_one_bulk_write_per_collection(store: Notes):
    """More than TOGETHER_AT_MOST writes, interleaved over two collections (as a
    projection's are): one command for each collection, not one for each run."""
    count = TOGETHER_AT_MOST // 2 + 1
    async with store.uow.command() as tx:
        last = LastWrite(tx.db)
        for n in range(count):
            last.insert("notes", [{"_id": f"n{n}", "text": "new", "version": 0}])
            last.insert("tags", [{"_id": f"t{n}"}])
        await last.send(tx.session)

    [insert] = store.sent("insert")
    assert len(insert["documents"]) == count
    assert await store.uow.db.tags.count_documents({}) == count


async def test_a_note_changed_meanwhile_fails_the_one_command_as_a_concurrent_change(
    store: Notes,
):
    await store.put(Note("n0", "before"), Note("n1", "before"))
    async with store.uow.reading() as tx:
        ours = await read(tx, "n0", "n1")
    await changed_behind_its_back(store, "n1")

    with pytest.raises(ConcurrentChange, match="n1"):
        async with store.uow.command() as tx:
            await tx.db.notes.find_one({"_id": "n0"}, session=tx.session)  # not the first
            for note in ours:
                note.text = "ours"
                notes(tx).save(note)
            tx.publish(CountedNote(client_ref="cl_a", number=1))

    assert len(store.sent("bulkWrite")) == 1
    assert await store.stored() == {"n0": ("before", 0), "n1": ("before", 1)}
    assert await store.uow.db.outbox.count_documents({}) == 0
