"""An event put on its topic exactly as its owner's outbox relay would: for the tests that
stand in for a service that is not running (consumer-contract tests)."""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaProducer

from ketenbus.contracts.envelope import Event, wrap
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.outbox import headers_of


async def publish(kafka: KafkaAccess, event: Event, source: str, now: datetime) -> None:
    """Put an event on its topic exactly as its owner's outbox relay would."""
    envelope = wrap(event, source=source, time=now)
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(
            event.destination().name,
            envelope.to_bytes(),
            key=event.key.encode(),
            headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
        )
    finally:
        await producer.stop()
