"""A restored intake database forgets again whoever was erased after the backup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import ClientErasureRequested
from ketenbus.contracts.topics import CLIENTS
from ketenbus.contracts.values import new_id
from ketenbus.intake.erasures import erasures_since, shred_again
from ketenbus.kit.outbox import headers_of

pytestmark = pytest.mark.stack

ORG = "welzijn-utrecht"


async def erase(producer: AIOKafkaProducer, client_ref: str) -> None:
    event = ClientErasureRequested(
        client_ref=client_ref, organisation_id=ORG, requested_at=datetime.now(UTC)
    )
    envelope = wrap(event, source="intake")
    await producer.send_and_wait(
        CLIENTS.name,
        envelope.to_bytes(),
        key=client_ref.encode(),
        headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
    )


async def test_erasures_after_the_backup_shred_the_restored_keys_again(kafka, mongo_url):
    before, after, kept = new_id("cl"), new_id("cl"), new_id("cl")
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"intake_restore_{uuid.uuid4().hex[:8]}"]
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        await erase(producer, before)  # erased before the backup: the backup has no key
        backup_taken = datetime.now(UTC)
        await erase(producer, after)  # erased after the backup: the restore brings it back
        # The restored database: keys and keyed hashes of `after` and `kept`.
        for ref in (after, kept):
            await db.client_keys.insert_one({"_id": ref, "wrapped": "..."})
            await db.clients.insert_one({"_id": ref, "identity_hash": "h", "details": {}})

        erasures = await erasures_since(kafka.client_options(), backup_taken)
        refs = {e.client_ref for e in erasures}
        assert after in refs and before not in refs
        assert await shred_again(db, erasures) == 1
        assert await db.client_keys.find_one({"_id": after}) is None
        restored = await db.clients.find_one({"_id": after})
        assert "identity_hash" not in restored and restored["erased_at"] is not None
        assert await db.client_keys.find_one({"_id": kept}) is not None
        assert await shred_again(db, erasures) == 0  # twice changes nothing
    finally:
        await producer.stop()
        await client.drop_database(db.name)
        await client.close()
