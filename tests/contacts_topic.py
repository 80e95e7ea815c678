"""The compacted contacts topic as a reader sees it, and how a test awaits its compaction.

Kafka never compacts the active segment: the tombstone of an erasure or a withdrawal removes
the card before it only once the tombstone's segment has rolled, and a segment rolls only when
a record is appended after `segment.ms` (a second on the embedded stack). On a busy chain the
next card or tombstone on the partition does that; here the test appends, while it waits, a
tombstone of a key that no card ever had to the card's partition (harmless: notifications
forgets a card it does not hold, and trajectory holds no card but a partner's). The log
cleaner then removes the card at its next pass.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD
from ketenbus.contracts.topics import CONTACTS, contact_card_key
from ketenbus.devstack.chain_client import eventually
from ketenbus.devstack.kafka_access import KafkaAccess

from .reliability import read_everything


async def records_of(
    kafka: KafkaAccess, client_ref: str, recipient: str = NOTIFICATIONS_CARD
) -> list[Any]:
    """Every record under the key of the client's card for `recipient` (notifications', or a
    partner's: `partner_card(organisation)`): cards and tombstones."""
    key = contact_card_key(client_ref, recipient).encode()
    return [r for r in await read_everything(kafka, [CONTACTS.name]) if r.key == key]


async def card_compacted_away(
    kafka: KafkaAccess,
    client_ref: str,
    recipient: str = NOTIFICATIONS_CARD,
    timeout: float = 60.0,
) -> Any:
    """Wait until the topic, read from its start, holds no card of the client for `recipient`
    any more (only, for a while, the tombstone); returns what is left under the key."""
    [partition] = {r.partition for r in await records_of(kafka, client_ref, recipient)}
    stranger = contact_card_key(f"cl_{uuid.uuid4().hex}", NOTIFICATIONS_CARD).encode()
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:

        async def compacted() -> tuple[list[Any]] | None:
            left = await records_of(kafka, client_ref, recipient)
            if all(r.value is None for r in left):
                return (left,)
            await producer.send_and_wait(CONTACTS.name, None, key=stranger, partition=partition)
            return None

        [left] = await eventually(compacted, "the card compacted away", timeout=timeout)
    finally:
        await producer.stop()
    return left
