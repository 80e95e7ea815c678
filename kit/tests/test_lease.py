"""A lease in the database: one holder at a time, taken over when it runs out or is let go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from ketenbus.kit.lease import LEASES, Lease

pytestmark = pytest.mark.stack


@pytest.fixture
async def db(mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[f"kit_{uuid.uuid4().hex[:10]}"]
    await client.close()


async def test_one_replica_holds_the_lease_and_another_takes_it_when_it_is_let_go(db):
    first, second = Lease(db, "sweep"), Lease(db, "sweep")

    assert await first.held()
    assert not await second.held()
    assert await first.held()  # renewed, still the first's

    await first.release()

    assert await second.held()
    assert not await first.held()


async def test_a_lease_whose_holder_died_is_taken_over_once_it_has_run_out(db):
    dead, living = Lease(db, "sweep"), Lease(db, "sweep")
    assert await dead.held()
    assert not await living.held()

    # As if the holder's time had passed without it renewing: it was killed.
    await db[LEASES].update_one(
        {"_id": "sweep"}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )

    assert await living.held()
    stored = await db[LEASES].find_one({"_id": "sweep"})
    assert stored["owner"] == living.owner


async def test_leases_on_different_jobs_do_not_exclude_each_other(db):
    assert await Lease(db, "outbox-relay").held()
    assert await Lease(db, "abandonment").held()
