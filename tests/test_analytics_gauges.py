"""Analytics' business gauges come from its database: read again when the event counts move
(any replica's), not every few seconds regardless (ketenbus.analytics.background)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from ketenbus.analytics.background import refresh_gauges
from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import BusinessGauges
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import EVENT_COUNTS, AnalyticsTransaction, FactStore
from ketenbus.contracts.events import TrajectoryOpened
from ketenbus.contracts.values import new_id
from ketenbus.devstack.waiting import wait_until_async
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.uow import UnitOfWork

pytestmark = pytest.mark.stack

ORG = "welzijn-utrecht"


class CountedClock(SystemClock):
    """The system's clock, counting how often it was asked: once or more per round."""

    def __init__(self) -> None:
        self.asked = 0

    def now(self) -> datetime:
        self.asked += 1
        return super().now()


def opened() -> TrajectoryOpened:
    at = datetime.now(UTC) - timedelta(days=1)
    return TrajectoryOpened(
        trajectory_id=new_id("trj"),
        client_ref=new_id("cl"),
        referral_id=new_id("ref"),
        organisation_id=ORG,
        funder="Utrecht",
        work_type="general_social_work",
        referrer_type="gp",
        topic="psychosocial",
        postcode_area="3522",
        crisis=False,
        referred_at=at,
        opened_at=at,
    )


async def test_the_gauges_are_read_again_when_the_counts_move(mongo_url):
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"analytics_gauges_{uuid.uuid4().hex[:8]}"]
    clock = CountedClock()
    uow = UnitOfWork(
        client, db, service="analytics", clock=clock, transaction_class=AnalyticsTransaction
    )
    deps = AnalyticsDependencies(
        settings=AnalyticsSettings(), clock=clock, uow=uow, seen={}, gauges=BusinessGauges()
    )
    store = FactStore(db)
    await store.ensure_indexes()
    # As the handlers leave it: the facts, and the count of what they were made from.
    await store.project_all([opened()])
    await db[EVENT_COUNTS].insert_one({"_id": TrajectoryOpened.event_type(), "count": 1})
    refreshing = asyncio.create_task(
        refresh_gauges(deps, every_seconds=0.01, at_least_every_seconds=3600)
    )
    try:
        await wait_until_async(
            lambda: deps.gauges.latest.open_trajectories == {ORG: 1},
            timeout=30,
            what="the first case in the gauges",
            interval=0.01,
        )

        # Facts with no count moved (no handler wrote them): not read for many rounds.
        await store.project_all([opened()])
        rounds = clock.asked
        await wait_until_async(
            lambda: clock.asked >= rounds + 10, timeout=30, what="ten rounds", interval=0.01
        )
        unchanged = deps.gauges.latest.open_trajectories

        await db[EVENT_COUNTS].update_one(
            {"_id": TrajectoryOpened.event_type()}, {"$inc": {"count": 1}}
        )
        await wait_until_async(
            lambda: deps.gauges.latest.open_trajectories == {ORG: 2},
            timeout=30,
            what="the second case, once counted",
            interval=0.01,
        )
    finally:
        refreshing.cancel()
        await asyncio.gather(refreshing, return_exceptions=True)
        await client.drop_database(db.name)
        await client.close()

    assert unchanged == {ORG: 1}
    assert deps.seen == {TrajectoryOpened.event_type(): 2}
