"""Rebuild the projection by replaying every topic analytics reads, from the beginning.

    python -m ketenbus.analytics rebuild              # in place (the service must be stopped)
    python -m ketenbus.analytics rebuild --verify     # into a scratch database, then compare

In place, the topics are replayed up to their current ends with the same projection the live
consumer uses, then the fact collections are replaced, and the consumer group's offsets set
to those ends, so the service, started again, goes on from there. A topic that no longer
starts at its first event (retention removed the beginning) is refused with status 3, and
the live figures are left alone; `--allow-truncated-history` rebuilds from what is left.
The replay projects into memory (a FactBook, updated exactly as the store's upserts update
the documents, erasure included) and writes each collection with bulk inserts at the end: a
round trip per event to the database is what made a replay slow, not reading the topics.
With --verify the live database is left alone: the replay goes into `<database>_rebuild`
and every figure of every organisation is compared with the live one, at a moment the live
consumer has read exactly what the replay reads (it waits for that; with other services
still publishing it gives up with status 2).
Exit status 0 when the figures agree (or the rebuild is done), 1 when they differ, 2 when
no fair comparison is possible, 3 when the history is incomplete.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.analytics.facts import Facts
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.measures import DIMENSIONS, figures, referral_mix
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FACT_COLLECTIONS, FactBook, Update, updates_for
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import EVENT_COUNTS, FactStore, erased_key
from ketenbus.contracts.envelope import (
    MAX_EVENT_BYTES,
    Envelope,
    Event,
    MalformedEnvelope,
    UndeliverableEvent,
    decode,
    envelope_of,
    is_binary_mode,
    type_in_headers,
)
from ketenbus.contracts.events import REGISTRY, ClientErasureRequested
from ketenbus.kit.broker import client_options, partitions_of
from ketenbus.kit.inbox import INBOX
from ketenbus.kit.mongo import create_mongo_client

GROUP = "analytics"
# Where the topics are: the options of kit.broker.client_options(), which carry the service's
# SASL and TLS settings (or the same keyword arguments made by a test or benchmark).
Kafka = Mapping[str, Any]


def _consumer(kafka: Kafka, group_id: str | None = None, **options: Any) -> AIOKafkaConsumer:
    # "none": a position that is no longer on the broker is an error, never silently moved to
    # the beginning or the end; a replay that skipped events would give wrong figures.
    return AIOKafkaConsumer(
        **kafka, enable_auto_commit=False, group_id=group_id, auto_offset_reset="none", **options
    )


# Documents per insert_many: a few round trips per collection, each well under 16 MB.
WRITE_CHUNK = 5_000
# A replay reads whole topics: larger fetches, fewer round trips to the broker (aiokafka's
# defaults, 1 MB per partition and 500 records a poll, suit a live consumer).
REPLAY_FETCH: dict[str, Any] = {
    "max_partition_fetch_bytes": 8 * 2**20,
    "fetch_max_bytes": 64 * 2**20,
}
REPLAY_RECORDS = 10_000


def read_event(record: Any) -> Envelope[Any]:
    """decode(), parsing the message once instead of twice: the event type is taken from
    the record's headers (`event_type`, which the outbox relay sets) rather than from a
    first pass over the JSON. Whatever does not read that way (a binary-mode record, no
    header, a header that does not match the body, an invalid event) goes through decode()
    itself, so what is read, or refused, is exactly what the live consumer reads or refuses."""
    value = record.value
    if value is None:
        raise MalformedEnvelope("the message has no value (a tombstone)")
    headers = tuple(record.headers or ())
    event_type = None if is_binary_mode(headers) else type_in_headers(headers)
    event_class = REGISTRY.get(event_type) if event_type else None
    if event_class is not None and len(value) <= MAX_EVENT_BYTES:
        try:
            envelope = envelope_of(event_class).model_validate_json(value, strict=True)
        except ValidationError:
            pass
        else:
            if envelope.type == event_class.event_type():
                return envelope
    return decode(value, REGISTRY, headers)


@dataclass
class Replayed:
    events: int = 0
    duplicates: int = 0
    unreadable: int = 0
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    seconds: float = 0.0
    # Where the replay's time went: waiting for the broker's batches, reading them into
    # events (JSON and validation), and projecting them.
    read_seconds: float = 0.0
    decode_seconds: float = 0.0
    project_seconds: float = 0.0
    # In a rebuild: writing the projected documents, after the replay.
    write_seconds: float = 0.0
    documents: int = 0


class ReplayBook(FactBook):
    """The projection in memory, with the effects FactStore.project has in Mongo: each
    update an upsert of its document (`$set`, `$max`, `$min`), and after a ClientErasureRequested a
    random token in place of the client reference in every fact.

    One thing more than the store: a reference once erased stays erased. A replay reads the
    topics in no fixed order between them, so the erasure (on the clients topic) may come
    before facts of the same person from another topic; those get the token too. The figures
    are the same either way, only no rebuilt fact can name an erased person."""

    def __init__(self, ledger: dict[str, str] | None = None) -> None:
        super().__init__()
        # client_ref -> the documents that took it on, so erasure finds them without a scan.
        self.by_client: dict[str, list[dict[str, Any]]] = {}
        # client_ref -> the token that replaced it.
        self.erased: dict[str, str] = {}
        # The live store's ledger of erasures (hash of the reference -> token): an erasure
        # whose event is no longer on the topics still holds.
        self.ledger = dict(ledger or {})

    def apply(self, update: Update) -> None:
        if not update.set and not update.max and not update.min:
            return  # the store sends no write for it, so no document appears either
        documents = self.collections[update.collection]
        doc = documents.get(update.key)
        if doc is None:
            doc = documents[update.key] = {"_id": update.key}
        before = doc.get("client_ref")
        doc.update(update.set)
        for name, value in update.max.items():
            if doc.get(name) is None or value > doc[name]:
                doc[name] = value
        for name, value in update.min.items():
            if doc.get(name) is None or value < doc[name]:
                doc[name] = value
        ref = doc.get("client_ref")
        if ref is not None and ref != before:
            token = self.erased.get(ref) or self._from_ledger(ref)
            if token is not None:
                doc["client_ref"] = token
            else:
                self.by_client.setdefault(ref, []).append(doc)

    def project(self, event: Event) -> None:
        """FactStore.project, in memory."""
        for update in updates_for(event):
            self.apply(update)
        if isinstance(event, ClientErasureRequested):
            self.forget(event.client_ref)

    def _from_ledger(self, ref: str) -> str | None:
        token = self.ledger.get(erased_key(ref))
        if token is not None:
            self.erased[ref] = token
        return token

    def forget(self, client_ref: str) -> None:
        """What FactStore.project_all does on an erasure: one token for all of the person's
        facts (the ledger's, if the live store knew of the erasure already)."""
        anonymous = self.erased.get(client_ref) or self._from_ledger(client_ref)
        anonymous = self.erased.setdefault(client_ref, anonymous or f"anon_{uuid.uuid4().hex}")
        for doc in self.by_client.pop(client_ref, ()):
            if doc.get("client_ref") == client_ref:
                doc["client_ref"] = anonymous

    async def write(self, db: AsyncDatabase[Any]) -> int:
        """Every document into its (empty) collection, in bulk, the collections side by side
        (the database works on them in parallel); returns how many."""

        async def fill(name: str, values: list[dict[str, Any]]) -> None:
            for start in range(0, len(values), WRITE_CHUNK):
                await db[name].insert_many(values[start : start + WRITE_CHUNK], ordered=False)

        chosen = {name: list(documents.values()) for name, documents in self.collections.items()}
        await asyncio.gather(*(fill(name, values) for name, values in chosen.items() if values))
        return sum(len(values) for values in chosen.values())


class NotQuiet(Exception):
    """Events keep arriving, or the live consumer is behind: no fair comparison possible."""


class HistoryIncomplete(Exception):
    """A topic no longer starts at its first event: retention removed the beginning."""


async def ends_of(kafka: Kafka, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition, as it is now."""
    if not partitions:
        return {}
    probe = _consumer(kafka)
    await probe.start()
    try:
        return dict(await probe.end_offsets(partitions))
    finally:
        await probe.stop()


async def quiet_ends(
    kafka: Kafka, topics: list[str], timeout: float = 120.0
) -> dict[TopicPartition, int]:
    """The ends of the topics at a moment the live consumer group has read exactly up to
    them: the one point where the live projection and a replay see the same stream."""
    consumer = _consumer(kafka, GROUP)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        deadline = time.monotonic() + timeout
        while True:
            ends = await ends_of(kafka, partitions)
            committed = {tp: await consumer.committed(tp) or 0 for tp in partitions}
            caught_up = all(committed[tp] >= ends[tp] for tp in partitions)
            if caught_up and await ends_of(kafka, partitions) == ends:
                return ends
            if time.monotonic() > deadline:
                behind = sum(max(ends[tp] - committed[tp], 0) for tp in partitions)
                raise NotQuiet(
                    f"after {timeout:.0f}s the live consumer is still {behind} events behind "
                    "or events keep arriving: stop the other services, then verify"
                )
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def replay(
    kafka: Kafka,
    topics: list[str],
    apply: Callable[[Envelope[Any]], Awaitable[None]],
    ends: dict[TopicPartition, int] | None = None,
    *,
    allow_truncated: bool = False,
) -> Replayed:
    """Every message on the topics, from the first up to `ends` (default: the end as it is
    now), in partition order; each event id once. Refuses (HistoryIncomplete) when a
    partition no longer starts at offset 0, unless `allow_truncated`."""
    started = time.monotonic()
    result = Replayed()
    consumer = _consumer(kafka, **REPLAY_FETCH)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        if not partitions:
            return result
        consumer.assign(partitions)
        result.ends = (
            {tp: ends[tp] for tp in partitions} if ends else await ends_of(kafka, partitions)
        )
        beginnings = await consumer.beginning_offsets(partitions)
        truncated = sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions if beginnings[tp])
        if truncated and not allow_truncated:
            raise HistoryIncomplete(
                "these partitions no longer start at their first event, so a replay would "
                f"count only what retention kept: {', '.join(truncated)}"
            )
        await consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if result.ends[tp] > beginnings[tp]}
        seen: set[str] = set()
        clock = time.perf_counter
        while pending:
            fetched = clock()
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=REPLAY_RECORDS)
            decoding = clock()
            result.read_seconds += decoding - fetched
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= result.ends[tp]:
                        continue
                    try:
                        envelope = read_event(record)
                    except UndeliverableEvent:
                        result.unreadable += 1  # the live consumer dead-lettered it too
                        continue
                    if envelope.id in seen:
                        result.duplicates += 1
                        continue
                    seen.add(envelope.id)
                    projecting = clock()
                    await apply(envelope)
                    result.project_seconds += clock() - projecting
                    result.events += 1
            result.decode_seconds += clock() - decoding
            for tp in list(pending):
                if await consumer.position(tp) >= result.ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    result.seconds = time.monotonic() - started
    result.decode_seconds -= result.project_seconds
    return result


async def rebuild_into(
    db: AsyncDatabase[Any],
    kafka: Kafka,
    ends: dict[TopicPartition, int] | None = None,
    *,
    allow_truncated: bool = False,
    erasures_from: AsyncDatabase[Any] | None = None,
) -> Replayed:
    """Project the topics (up to `ends`) in memory, and only when that is complete replace
    the projection in `db` with it, written in bulk: a replay that fails (a broker away, a
    history that retention cut short) leaves the figures as they were. `seconds` of the
    result is the whole rebuild, the writing included. The ledger of erasures is read from
    `erasures_from` (the live database; `db` itself by default), so no erased reference
    comes back."""
    started = time.monotonic()
    book = ReplayBook(
        await FactStore(erasures_from if erasures_from is not None else db).erased_tokens()
    )
    counts: dict[str, int] = {}

    async def apply(envelope: Envelope[Any]) -> None:
        book.project(envelope.data)
        counts[envelope.type] = counts.get(envelope.type, 0) + 1

    with _no_cycle_collection():
        replayed = await replay(
            kafka, handlers.topics(), apply, ends, allow_truncated=allow_truncated
        )
        writing = time.monotonic()
        await asyncio.gather(
            *(db[name].drop() for name in (*FACT_COLLECTIONS, EVENT_COUNTS, INBOX))
        )
        replayed.documents = await book.write(db)
    store = FactStore(db)
    await store.remember_all_erased(book.erased)
    if counts:
        await db[EVENT_COUNTS].insert_many([{"_id": t, "count": n} for t, n in counts.items()])
    await store.ensure_indexes()
    replayed.write_seconds = time.monotonic() - writing
    replayed.seconds = time.monotonic() - started
    return replayed


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off for a replay: the projection's documents (hundreds of
    thousands of objects) live until the end, and the collector's passes over them, which
    find nothing to free, cost a third of the decoding. Reference counting still frees
    what each event leaves behind."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


async def commit_group_offsets(kafka: Kafka, ends: dict[TopicPartition, int]) -> None:
    """Let the live consumer group start after what the rebuild has read."""
    if not ends:
        return
    consumer = _consumer(kafka, GROUP)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


async def every_figure(db: AsyncDatabase[Any]) -> dict[str, Any]:
    """All figures of all organisations, every way they can be asked for: what must agree."""
    store = FactStore(db)
    facts: Facts = await store.facts()
    result: dict[str, Any] = {}
    for kind in (PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR, PeriodKind.ALL):
        result[f"figures/{kind}"] = [c.row() for c in figures(facts, kind, by=DIMENSIONS)]
        result[f"totals/{kind}"] = [c.row() for c in figures(facts, kind)]
    result["referral_mix"] = [row.__dict__ for row in referral_mix(facts, PeriodKind.MONTH)]
    result["snapshots"] = sorted(
        (d["_id"], d["organisation"], d["period"]) for d in await store.snapshots()
    )
    return result


def differences(live: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    found = []
    for name in sorted(live.keys() | rebuilt.keys()):
        a, b = live.get(name), rebuilt.get(name)
        if a != b:
            count_a = len(a) if isinstance(a, list) else a
            count_b = len(b) if isinstance(b, list) else b
            found.append(f"{name}: live {count_a} rows, rebuilt {count_b} (or values differ)")
    return found


async def main_async(verify: bool, out: Any = sys.stdout, allow_truncated: bool = False) -> int:
    settings = AnalyticsSettings()
    client: AsyncMongoClient[Any] = create_mongo_client(settings)
    try:
        live = client[settings.database_name]
        kafka = client_options(settings)
        if verify:
            try:
                ends = await quiet_ends(kafka, handlers.topics())
            except NotQuiet as error:
                print(f"cannot verify: {error}", file=out)
                return 2
            scratch = client[f"{settings.database_name}_rebuild"]
            replayed = await rebuild_into(
                scratch, kafka, ends, allow_truncated=allow_truncated, erasures_from=live
            )
            problems = differences(await every_figure(live), await every_figure(scratch))
            await client.drop_database(scratch.name)
        else:
            try:
                replayed = await rebuild_into(live, kafka, allow_truncated=allow_truncated)
            except HistoryIncomplete as error:
                print(f"refused, the live figures are left as they are: {error}", file=out)
                return 3
            await commit_group_offsets(kafka, replayed.ends)
            problems = []
        rate = replayed.events / replayed.seconds if replayed.seconds else 0.0
        print(
            f"replayed {replayed.events} events ({replayed.duplicates} repeats skipped, "
            f"{replayed.unreadable} unreadable) from {len(replayed.ends)} partitions "
            f"in {replayed.seconds:.1f}s ({rate:.0f} events/s; {replayed.documents} documents "
            f"written in {replayed.write_seconds:.1f}s)",
            file=out,
        )
        print(
            f"time: reading {replayed.read_seconds:.2f}s, decoding {replayed.decode_seconds:.2f}s, "
            f"projecting {replayed.project_seconds:.2f}s, writing {replayed.write_seconds:.2f}s",
            file=out,
        )
        if verify:
            if problems:
                print("the rebuild differs from the live figures:", file=out)
                for problem in problems:
                    print(f"  {problem}", file=out)
                return 1
            print("the rebuilt figures are exactly the live figures", file=out)
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.analytics rebuild")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="rebuild into a scratch database and compare with the live figures",
    )
    parser.add_argument(
        "--allow-truncated-history",
        action="store_true",
        help="rebuild even when retention removed the beginning of a topic (figures then "
        "count only what the topics still hold)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.verify, allow_truncated=args.allow_truncated_history))
