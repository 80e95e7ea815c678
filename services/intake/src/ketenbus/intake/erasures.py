"""After restoring intake's database from a backup: the erasures since the backup, again.

A backup of intake's database holds the clients' wrapped keys. Restored, it would bring back
every person erased after the backup was taken. The erasures themselves are on the clients
topic (`ClientErasureRequested` on `ketenbus.intake.clients.v1`); this reads them from the
moment of the backup on and shreds those keys again (and drops the keyed hash), before intake
is started on the restored database:

    python -m ketenbus.intake.erasures --since 2026-11-30T02:00:00+01:00

with intake's settings (`KAFKA_*`, `MONGODB_URL`, `MONGODB_DATABASE`). Applying an erasure
twice changes nothing. It refuses (exit 2) when the topic no longer reaches back to `--since`
(its retention removed part of that time): then the erasures cannot all be known from the
topic, and the restore must not go on without them (docs/security.md, "Backups").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts.envelope import UndeliverableEvent, decode
from ketenbus.contracts.events import REGISTRY, ClientErasureRequested
from ketenbus.contracts.topics import CLIENTS
from ketenbus.kit.broker import client_options, partitions_of
from ketenbus.kit.mongo import create_mongo_client
from ketenbus.kit.settings import ServiceSettings


class HistoryGone(Exception):
    """The topic starts after the moment asked for: erasures may have been lost with it."""


@dataclass(frozen=True)
class Reapplied:
    erasures: int  # ClientErasureRequested read since the moment
    shredded: int  # keys that were back (restored) and are gone again


async def erasures_since(
    options: dict[str, Any], since: datetime, timeout: float = 120.0
) -> list[ClientErasureRequested]:
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[ClientErasureRequested] = []
    try:
        topic = CLIENTS.name
        partitions = await partitions_of(consumer, [topic])
        if not partitions:
            return found
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        millis = int(since.timestamp() * 1000)
        starts = await consumer.offsets_for_times({tp: millis for tp in partitions})
        for tp in partitions:
            if beginnings[tp] > 0:
                # Something was deleted: is the first message still there older than `since`?
                first = await _timestamp_at(consumer, tp, beginnings[tp])
                if first is not None and first > millis:
                    raise HistoryGone(
                        f"{topic} partition {tp.partition} starts at "
                        f"{datetime.fromtimestamp(first / 1000, UTC).isoformat()}, after "
                        f"{since.isoformat()}: erasures in between are no longer on the topic"
                    )
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else ends[tp])
        async with asyncio.timeout(timeout):
            while True:
                positions = {tp: await consumer.position(tp) for tp in partitions}
                if all(positions[tp] >= ends[tp] for tp in partitions):
                    return found
                batch = await consumer.getmany(*partitions, timeout_ms=300)
                for records in batch.values():
                    for record in records:
                        if record.value is None:
                            continue
                        try:
                            envelope = decode(record.value, REGISTRY)
                        except UndeliverableEvent:
                            continue
                        if isinstance(envelope.data, ClientErasureRequested):
                            found.append(envelope.data)
    finally:
        await consumer.stop()


async def _timestamp_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
    records = batch.get(tp, [])
    return records[0].timestamp if records else None


async def shred_again(db: AsyncDatabase[Any], erasures: Sequence[ClientErasureRequested]) -> int:
    """What ClientRepository.erase does, for each: idempotent, no events (the other services
    had their erasure; a restored service of theirs re-reads its topics, docs/security.md)."""
    shredded = 0
    for erasure in erasures:
        gone = await db.client_keys.delete_one({"_id": erasure.client_ref})
        shredded += gone.deleted_count
        await db.clients.update_one(
            {"_id": erasure.client_ref},
            {"$set": {"erased_at": erasure.requested_at}, "$unset": {"identity_hash": ""}},
        )
    return shredded


async def reapply(settings: ServiceSettings, since: datetime) -> Reapplied:
    erasures = await erasures_since(client_options(settings), since)
    client = create_mongo_client(settings)
    try:
        shredded = await shred_again(client[settings.database_name], erasures)
    finally:
        await client.close()
    return Reapplied(len(erasures), shredded)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.intake.erasures")
    parser.add_argument(
        "--since", required=True, type=datetime.fromisoformat, help="when the backup was taken"
    )
    args = parser.parse_args(argv)
    if args.since.tzinfo is None:
        parser.error("--since needs a time zone, e.g. 2026-11-30T02:00:00+01:00")
    settings = ServiceSettings(service_name="intake")
    try:
        done = asyncio.run(reapply(settings, args.since))
    except HistoryGone as error:
        print(f"refused: {error}", file=out)
        return 2
    print(
        f"{done.erasures} erasures since {args.since.isoformat()}; "
        f"{done.shredded} restored keys shredded again",
        file=out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
