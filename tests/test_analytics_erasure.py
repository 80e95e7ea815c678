"""After erasure analytics still counts the person's case, but nothing links it to them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from ketenbus.analytics.measures import figures
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FACT_COLLECTIONS
from ketenbus.analytics.store import FactStore
from ketenbus.contracts.events import (
    ClientErasureRequested,
    TrajectoryClosed,
    TrajectoryOpened,
)
from ketenbus.contracts.values import new_id

pytestmark = pytest.mark.stack

ORG = "welzijn-utrecht"


def case_of(client_ref: str, opened: datetime, closed: datetime) -> list:
    ids = {
        "trajectory_id": new_id("trj"),
        "client_ref": client_ref,
        "organisation_id": ORG,
        "referral_id": new_id("ref"),
    }
    return [
        TrajectoryOpened(
            **ids,
            funder="Utrecht",
            work_type="general_social_work",
            referrer_type="gp",
            topic="psychosocial",
            postcode_area="3512",
            crisis=False,
            referred_at=opened,
            opened_at=opened,
        ),
        TrajectoryClosed(**ids, reason="goal_reached", online_dossier_used=False, closed_at=closed),
    ]


async def test_erasure_replaces_the_reference_and_keeps_the_figures(mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = FactStore(client[f"analytics_erasure_{uuid.uuid4().hex[:8]}"])
    forgotten, kept = new_id("cl"), new_id("cl")
    try:
        for event in [
            *case_of(forgotten, datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC)),
            *case_of(kept, datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 2, 9, tzinfo=UTC)),
        ]:
            await store.project(event)
        before = [c.row() for c in figures(await store.facts(), PeriodKind.YEAR)]

        await store.project(
            ClientErasureRequested(
                client_ref=forgotten, organisation_id=ORG, requested_at=datetime.now(UTC)
            )
        )

        after = [c.row() for c in figures(await store.facts(), PeriodKind.YEAR)]
        assert after == before
        assert before[0]["closed_cases"] == 2
        for name in FACT_COLLECTIONS:
            assert await store.db[name].count_documents({"client_ref": forgotten}) == 0
        assert await store.db["cases"].count_documents({"client_ref": kept}) == 1
    finally:
        await client.drop_database(store.db.name)
        await client.close()
