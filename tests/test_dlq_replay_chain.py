"""A replayed dead letter is handled once by a real service, however often it is replayed.

The dead letters here stand for an event two consumers put aside before a fix (as the
consumer writes them: the original value, key and headers with `x-dlq-*` headers naming the
reason, the consumer and where the message lay). `ketenbus.kit.deadletters.replay`, the
library under `ketenbus dlq replay`, sends the message back to its topic once; analytics, as
a real process, handles it once; a second replay sends nothing, and the same event arriving
again is recognised by analytics' inbox.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from ketenbus.contracts.topics import dead_letter_topic
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.kit import deadletters
from ketenbus.kit.outbox import headers_of

from .reliability import accepted_referral, topic_of

pytestmark = [pytest.mark.stack, pytest.mark.chain]


async def handled(client: ChainClient, event_type: str, outcome: str) -> int:
    """How many events of a type analytics has handled with this outcome (its /metrics)."""
    pattern = re.compile(
        rf'^ketenbus_events_handled_total\{{event_type="{re.escape(event_type)}",'
        rf'outcome="{outcome}"\}} (\S+)$',
        re.MULTILINE,
    )
    found = pattern.search(await client.metrics("analytics"))
    return int(float(found.group(1))) if found else 0


async def test_a_replayed_dead_letter_is_handled_once_by_the_service(chain: Any):
    # Own Kafka: a replay sends back every dead letter on the topic, so only this test's.
    stack = chain(["analytics"], isolated=True, timeout=120)
    options = stack.kafka.client_options()
    envelope = accepted_referral(datetime.now(UTC))
    topic = topic_of(envelope)
    headers = [(k, v.encode()) for k, v in headers_of(envelope).items()]
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        for consumer in ("analytics", "trajectory"):  # one message, put aside by two
            await producer.send_and_wait(
                dead_letter_topic(topic),
                envelope.to_bytes(),
                key=envelope.subject.encode(),
                headers=[
                    *headers,
                    ("x-dlq-reason", b"InvalidEventData: before the fix"),
                    ("x-dlq-consumer", consumer.encode()),
                    ("x-dlq-source", f"{topic}/0/7".encode()),
                ],
            )
    finally:
        await producer.stop()

    first = await deadletters.replay(options, topic)
    assert (first.sent, first.passed_over) == (1, 1)  # sent back once, not per consumer
    client = ChainClient(stack.urls(), stack.api_token)
    try:

        async def processed() -> int:
            return await handled(client, envelope.type, "processed")

        assert await eventually(processed, "analytics to handle the replayed event") == 1
        again = await deadletters.replay(options, topic)
        assert (again.sent, again.passed_over) == (0, 2)  # the marker says it went back
        listed = await deadletters.read(options, topic)
        assert listed.waiting() == []

        # The same event once more (a replay from before the marker, say): a duplicate.
        producer = AIOKafkaProducer(**options)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic, envelope.to_bytes(), key=envelope.subject.encode(), headers=headers
            )
        finally:
            await producer.stop()

        async def recognised() -> int:
            return await handled(client, envelope.type, "duplicate")

        assert await eventually(recognised, "analytics to recognise the repeat") == 1
        assert await processed() == 1
    finally:
        await client.close()
