"""Dead letters: see what was put aside, and send it back to its topic after a fix.

    python -m ketenbus.kit.deadletters list <topic>
    python -m ketenbus.kit.deadletters replay <topic> [--consumer NAME]
    python -m ketenbus.kit.deadletters purge <topic> --client CLIENT_REF

(`ketenbus dlq list|replay <topic>` does the same on the embedded stack.) `<topic>` is the
stream, e.g. `ketenbus.trajectory.trajectories.v1`; its dead letters are on `<topic>.dlq`, each
with the reason, the consumer that put it aside and where it came from (`x-dlq-*` headers).

Replay publishes each dead letter's original value, key and headers again on `<topic>`, with
`x-dlq-replayed-from` naming the dead letter. It is idempotent twice over:
- every consumer keeps an inbox of the event ids it handled, so an event that two consumers
  dead-lettered, or that is replayed again, is handled once by each consumer that handles it;
- after a dead letter is replayed, a marker record goes on the dead-letter topic (empty value,
  header `x-dlq-replayed` naming the original message), and a later replay passes over every
  original message that has a marker. A message dead-lettered by several consumers is sent
  back once.
A dead letter that still cannot be handled is put aside again, with its reason, by the consumer.
The tool reads and writes the topics with the settings every service uses (`KAFKA_*`): its
Kafka user needs Read on `<topic>.dlq` and Write on `<topic>` and `<topic>.dlq`. It prints the
reasons and places, never the content.

Purge forgets an erased client's dead letters (docs/security.md, "What is forgotten when").
Kafka cannot delete one record from a topic, only every record of a partition before an
offset (DeleteRecords). So, per partition of `<topic>.dlq`: read it from its start up to its
end H as it was when the purge began; when no letter there is about the client, leave it as it
is; else publish every other letter again on the same partition (same key, value, headers and
timestamp, so `list` and `replay` see them as before: a replay marker names the original
message, not a place on the dead-letter topic, and the timestamp keeps the letter's
retention), then delete the records before H. Letters that arrive meanwhile lie after H and
are kept. A letter is about the client when its key, value or a header holds the client
reference (an unreadable letter is searched as bytes); the client's replay markers go too.
A crash between the publishing and the deletion leaves the kept letters twice (replay sends
such a message back once) and the client's letter in place until the purge runs again.
Two purges of one partition at once could each keep what the other removes: trajectory
purges under a lease (`ketenbus.kit.dead_letter_purges`), within seconds of an erasure and of
a later letter about an erased client. The `purge` command takes no lease: it is for when
trajectory is not running. Its user also needs Delete on `<topic>.dlq`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from ketenbus.contracts.topics import dead_letter_topic
from ketenbus.kit.broker import client_options, partitions_of
from ketenbus.kit.settings import ServiceSettings

REPLAYED = "x-dlq-replayed"
REPLAYED_FROM = "x-dlq-replayed-from"


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return (value or b"").decode(errors="replace")
        return ""

    @property
    def source(self) -> str:
        """Where the original message lay: `<topic>/<partition>/<offset>`."""
        return self.header("x-dlq-source")

    @property
    def place(self) -> str:
        return f"{self.partition}/{self.offset}"


@dataclass
class DeadLetters:
    letters: list[Letter] = field(default_factory=list)
    replayed_sources: set[str] = field(default_factory=set)

    def waiting(self, consumer: str | None = None) -> list[Letter]:
        """One letter per original message not replayed yet (of this consumer, if named)."""
        seen: set[str] = set()
        found = []
        for letter in self.letters:
            if consumer is not None and letter.header("x-dlq-consumer") != consumer:
                continue
            if letter.source in self.replayed_sources or letter.source in seen:
                continue
            seen.add(letter.source)
            found.append(letter)
        return found


async def read(options: dict[str, Any], topic: str, timeout: float = 60.0) -> DeadLetters:
    """Everything on `<topic>.dlq` now, letters and replay markers apart."""
    dlq = dead_letter_topic(topic)
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await consumer.start()
    found = DeadLetters()
    try:
        partitions = await partitions_of(consumer, [dlq])
        if not partitions:
            return found
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(timeout):
            while True:
                batch = await consumer.getmany(*partitions, timeout_ms=300)
                for records in batch.values():
                    for record in records:
                        letter = Letter(
                            record.partition,
                            record.offset,
                            record.key,
                            record.value,
                            tuple(record.headers or ()),
                        )
                        if letter.header(REPLAYED):
                            found.replayed_sources.add(letter.header(REPLAYED))
                        else:
                            found.letters.append(letter)
                if not batch:
                    positions = {tp: await consumer.position(tp) for tp in partitions}
                    if all(positions[tp] >= ends[tp] for tp in partitions):
                        return found
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Replayed:
    sent: int
    passed_over: int  # replayed before, or a second letter of the same message
    unreplayable: int  # no value (a tombstone): nothing to send back


async def replay(options: dict[str, Any], topic: str, consumer: str | None = None) -> Replayed:
    dead = await read(options, topic)
    waiting = dead.waiting(consumer)
    mine = [
        letter
        for letter in dead.letters
        if consumer is None or letter.header("x-dlq-consumer") == consumer
    ]
    producer = AIOKafkaProducer(**options, enable_idempotence=True, acks="all")
    await producer.start()
    sent = unreplayable = 0
    try:
        for letter in waiting:
            if letter.value is None:
                unreplayable += 1
                continue
            headers = [(k, v) for k, v in letter.headers if not k.startswith("x-dlq-")]
            headers.append((REPLAYED_FROM, f"{dead_letter_topic(topic)}/{letter.place}".encode()))
            await producer.send_and_wait(topic, letter.value, key=letter.key, headers=headers)
            # Only after the message is back on its topic: a crash in between means at worst
            # one more replay, which the consumers' inboxes recognise.
            await producer.send_and_wait(
                dead_letter_topic(topic),
                b"",
                key=letter.key,
                headers=[(REPLAYED, letter.source.encode())],
            )
            sent += 1
    finally:
        await producer.stop()
    return Replayed(sent, len(mine) - len(waiting), unreplayable)


@dataclass(frozen=True)
class Purged:
    removed: int  # letters (and replay markers) about the client, deleted
    kept: int  # other letters of the purged partitions, published again
    partitions: int  # partitions that held a letter about the client

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.removed + other.removed, self.kept + other.kept, self.partitions + other.partitions
        )


# A client reference (ketenbus.contracts.values.ClientRef), wherever it is in a letter.
CLIENT_REF = re.compile(rb"cl_[0-9a-f]{32}")


def client_refs_in(record: Any) -> set[str]:
    """Every client reference a dead letter holds, in its key, value or headers."""
    places = [record.key or b"", record.value or b""]
    places += [value or b"" for _, value in record.headers or ()]
    return {found.decode() for place in places for found in CLIENT_REF.findall(place)}


def concerns(record: Any, client_refs: Collection[str]) -> bool:
    """Whether a dead letter is about one of the clients: in its key, value or headers."""
    places = [record.key or b"", record.value or b""]
    places += [value or b"" for _, value in record.headers or ()]
    return any(ref.encode() in place for ref in client_refs for place in places)


class Purging:
    """The Kafka clients a purge works with (a reader, a writer, the admin client), started
    once for many partitions: `async with Purging(options) as purging: ...`."""

    def __init__(self, options: dict[str, Any], timeout: float = 60.0) -> None:
        # Earliest: a letter past the partition's start is read from that start, not skipped.
        self.consumer = AIOKafkaConsumer(
            **options, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
        )
        self.producer = AIOKafkaProducer(**options, enable_idempotence=True, acks="all")
        self.admin = AIOKafkaAdminClient(**options)
        self.timeout = timeout

    async def __aenter__(self) -> Purging:
        await self.consumer.start()
        try:
            await self.producer.start()
            await self.admin.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.admin.close()

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """The partitions of the DLQs of `topics` (those that exist)."""
        return await partitions_of(self.consumer, [dead_letter_topic(t) for t in topics])

    async def ends(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return await self.consumer.end_offsets(list(partitions)) if partitions else {}

    async def holding(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(start, end) of each partition that holds records now: an empty one is passed
        by without a read (most dead-letter partitions are empty)."""
        if not partitions:
            return {}
        starts = await self.consumer.beginning_offsets(list(partitions))
        ends = await self.ends(partitions)
        return {p: (starts[p], ends[p]) for p in partitions if ends[p] > starts[p]}

    async def letters(self, partition: TopicPartition, start: int | None, end: int) -> list[Any]:
        """The records of a partition from `start` (None: its start) up to `end` (excluded)."""
        self.consumer.assign([partition])
        if start is None:
            await self.consumer.seek_to_beginning(partition)
        else:
            self.consumer.seek(partition, start)
        found: list[Any] = []
        async with asyncio.timeout(self.timeout):
            while await self.consumer.position(partition) < end:
                batch = await self.consumer.getmany(partition, timeout_ms=300)
                found += [r for r in batch.get(partition, ()) if r.offset < end]
        return found

    async def purge(
        self, partition: TopicPartition, client_refs: Collection[str], end: int | None = None
    ) -> Purged:
        """Remove the letters about these clients from one partition (the module docstring):
        those before `end`, by default its end now."""
        if end is None:
            end = (await self.ends([partition]))[partition]
        records = await self.letters(partition, None, end)
        about = [r for r in records if concerns(r, client_refs)]
        if not about:
            return Purged(0, 0, 0)
        others = [r for r in records if not concerns(r, client_refs)]
        sent = [
            await self.producer.send(
                partition.topic,
                record.value,
                key=record.key,
                headers=list(record.headers or ()),
                partition=partition.partition,
                timestamp_ms=record.timestamp,
            )
            for record in others
        ]
        # Every kept letter is on the partition again before anything is deleted.
        await asyncio.gather(*sent)
        await self.admin.delete_records({partition: RecordsToDelete(end)})
        return Purged(len(about), len(others), 1)


async def purge(
    options: dict[str, Any],
    topics: Sequence[str],
    client_refs: Collection[str],
    *,
    still_ours: Callable[[], Awaitable[bool]] | None = None,
) -> Purged:
    """Remove the dead letters about these clients from the DLQs of `topics`. `still_ours` is
    asked before each partition: when it says no (the lease went to another replica), the
    purge stops; what it purged so far stays purged."""
    if not client_refs:
        return Purged(0, 0, 0)
    async with Purging(options) as purging:
        return await purge_with(purging, topics, client_refs, still_ours=still_ours)


async def purge_with(
    purging: Purging,
    topics: Sequence[str],
    client_refs: Collection[str],
    *,
    still_ours: Callable[[], Awaitable[bool]] | None = None,
) -> Purged:
    total = Purged(0, 0, 0)
    holding = await purging.holding(await purging.partitions(topics))
    for partition, (_, end) in holding.items():
        if still_ours is not None and not await still_ours():
            break
        total = total + await purging.purge(partition, client_refs, end)
    return total


def show(dead: DeadLetters, out: TextIO) -> None:
    for letter in dead.letters:
        state = "replayed" if letter.source in dead.replayed_sources else "waiting"
        print(
            f"{letter.place}\t{state}\t{letter.header('x-dlq-consumer')}\t"
            f"{letter.header('x-dlq-at')}\tfrom {letter.source}\t{letter.header('x-dlq-reason')}",
            file=out,
        )
    waiting = len(dead.waiting())
    print(f"{len(dead.letters)} dead letters, {waiting} not replayed yet", file=out)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    return asyncio.run(run(argv, out))


async def run(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.kit.deadletters")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the dead letters of a topic, with reasons")
    listing.add_argument("topic")
    replaying = commands.add_parser("replay", help="send them back to the topic, once")
    replaying.add_argument("topic")
    replaying.add_argument("--consumer", help="only the letters this consumer put aside")
    purging = commands.add_parser("purge", help="forget an erased client's dead letters")
    purging.add_argument("topic")
    purging.add_argument("--client", required=True, help="the erased client's reference")
    args = parser.parse_args(argv)
    topic = args.topic.removesuffix(".dlq")
    options = client_options(ServiceSettings())
    if args.command == "list":
        show(await read(options, topic), out)
        return 0
    if args.command == "purge":
        purged = await purge(options, [topic], [args.client])
        print(
            f"removed {purged.removed} dead letters about the client from {purged.partitions} "
            f"partitions of {dead_letter_topic(topic)}; kept {purged.kept} others",
            file=out,
        )
        return 0
    done = await replay(options, topic, args.consumer)
    print(
        f"replayed {done.sent} dead letters to {topic}; passed over {done.passed_over} "
        f"(replayed before, or the same message again); {done.unreplayable} without a value",
        file=out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
