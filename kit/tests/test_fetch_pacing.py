"""A consumer's fetches as the broker sees them: held for a batch while events flow, answered
by the first event while the topic is quiet (ketenbus.kit.fetch_pacing)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.kit.fetch_pacing import IDLE_MIN_BYTES, IDLE_WAIT_MS
from ketenbus.kit.outbox import headers_of
from ketenbus.kit.uow import UnitOfWork

from .support import (
    a_consuming_service,
    a_subscribed_consumer,
    counted_event_class,
    create_topic,
    eventually,
)

pytestmark = pytest.mark.stack

# Held at most this long for this many bytes while busy: short, so the test does not wait
# out a busy fetch; more bytes than the test sends, so a busy fetch is always held.
BUSY_WAIT_MS = 200
BUSY_MIN_BYTES = 1024 * 1024


def fetches_sent(consumer: Any) -> list[tuple[int, int]]:
    """(wait, min bytes) of every fetch the consumer sends from now on, in order."""
    client = consumer._client
    send = client.send
    sent: list[tuple[int, int]] = []

    async def recorded(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            sent.append((request._max_wait_ms, request._min_bytes))
        return await send(node_id, request, *args, **kwargs)

    client.send = recorded
    return sent


async def test_fetches_wait_for_a_batch_only_while_events_flow(kafka, mongo_url):
    topic = await create_topic(kafka)
    Counted = counted_event_class(topic)
    mongo, db, service, uow, handlers = a_consuming_service(mongo_url, "kit-pacing")

    @handlers.on(Counted)
    async def count(event: Envelope, uow: UnitOfWork) -> None:
        async with uow.handling(event) as tx:
            await tx.db.effects.insert_one({"_id": event.data.number}, session=tx.session)

    broker, consumer = a_subscribed_consumer(
        kafka,
        handlers,
        uow,
        service,
        Counted,
        batch_size=100,
        fetch_wait_ms=BUSY_WAIT_MS,
        fetch_min_bytes=BUSY_MIN_BYTES,
    )
    idle, busy = (IDLE_WAIT_MS, IDLE_MIN_BYTES), (BUSY_WAIT_MS, BUSY_MIN_BYTES)
    await broker.start()
    try:
        consumer.pace_fetches()
        sent = fetches_sent(consumer.subscribers[0].consumer)

        async def fetched_while_idle() -> bool:
            return idle in sent

        await eventually(fetched_while_idle)
        quiet = len(sent)

        for number in range(3):
            event = wrap(Counted(client_ref="cl_a", number=number), source="kittest")
            await broker.publish(event.to_bytes(), topic, key=b"cl_a", headers=headers_of(event))

        async def all_handled() -> bool:
            return await db.effects.count_documents({}) == 3

        async def idle_again() -> bool:
            since = sent[quiet:]
            return busy in since and idle in since[since.index(busy) + 1 :]

        await eventually(all_handled)
        await eventually(idle_again)
    finally:
        await broker.stop()
        await mongo.close()

    # Quiet: nothing but fetches answered by the first event (from the first one built after
    # pacing began); the one that found the events was followed by one held for a batch,
    # and after that found nothing, quiet again.
    assert set(sent[sent.index(idle) : quiet]) == {idle}
    assert set(sent) == {idle, busy}
