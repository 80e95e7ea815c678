"""Analytics' business gauges come from its database: read again when the event counts move
(any replica's), not every few seconds regardless (ketenbus.analytics.background)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from ketenbus.analytics.background import refresh_gauges
from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import NO_SHOW_WINDOW, BusinessGauges
from ketenbus.analytics.measures import pulse
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import EVENT_COUNTS, AnalyticsTransaction, FactStore
from ketenbus.contracts.events import ReferralDeclined, TrajectoryOpened
from ketenbus.contracts.values import DeclineReason
from ketenbus.devstack.waiting import wait_until_async
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.uow import UnitOfWork

from .test_analytics_measures import ORG, Stream, at, two_cases

pytestmark = pytest.mark.stack


class CountedClock(SystemClock):
    """The system's clock, counting how often it was asked: once or more per round."""

    def __init__(self) -> None:
        self.asked = 0

    def now(self) -> datetime:
        self.asked += 1
        return super().now()


def opened() -> TrajectoryOpened:
    """A case opened, as the measures' tests build one."""
    stream = Stream()
    stream.case("2025-03-01T09:00", "2025-03-01T09:00")
    [event] = stream.events
    return event


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


async def test_the_pulse_counts_open_trajectories_the_waiting_list_and_recent_no_shows(mongo_url):
    """Open cases and the waiting list counted by the database, per organisation; the
    no-show rate from the appointments of the last 30 days; from what the projection wrote."""
    s = two_cases()  # two cases, both closed
    still_open = s.case("2025-03-01T09:00", "2025-03-01T09:00")
    s.appointment(still_open, "2025-03-03T09:00", "intake", "missed")
    s.waitlisted("2025-03-02T09:00")
    declined = s.waitlisted("2025-03-04T09:00")
    s.book.record(
        ReferralDeclined(
            **declined, reason=DeclineReason.NOT_ELIGIBLE, declined_at=at("2025-03-05T09:00")
        )
    )
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    store = FactStore(client[f"analytics_pulse_{uuid.uuid4().hex[:8]}"])
    now = at("2025-03-10T00:00")
    try:
        await store.project_all(s.events)
        found = pulse(await store.pulse_facts(since=now - NO_SHOW_WINDOW), now, NO_SHOW_WINDOW)
    finally:
        await client.drop_database(store.db.name)
        await client.close()

    assert found.open_trajectories == {ORG: 1}
    assert found.waiting_list == {ORG: 1}
    # The 30 days before 10 March start on 8 February: intake only the missed one of 3 March;
    # follow-up only the attended one of 12 February.
    assert found.no_show_rate == {(ORG, "intake"): 1.0, (ORG, "follow_up"): 0.0}
