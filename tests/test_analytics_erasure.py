"""After erasure analytics still counts the person's case, but nothing links it to them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from ketenbus.analytics.measures import figures
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FACT_COLLECTIONS
from ketenbus.analytics.rebuild import ReplayBook
from ketenbus.analytics.store import (
    ERASED,
    EVENT_COUNTS,
    AnalyticsTransaction,
    FactStore,
    erased_key,
)
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import (
    ClientErasureRequested,
    TrajectoryClosed,
    TrajectoryOpened,
)
from ketenbus.contracts.values import new_id
from ketenbus.kit.clock import SystemClock
from ketenbus.kit.uow import UnitOfWork

from .anonymised import anonymous

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


async def test_events_after_the_erasure_never_write_the_reference_back(mongo_url):
    """The erasure (clients topic) may be handled before events about the person from other
    topics, and a still-open trajectory goes on after it: none of them brings the reference
    back into the live store, and the figures still count the case."""
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = FactStore(client[f"analytics_erasure_{uuid.uuid4().hex[:8]}"])
    forgotten = new_id("cl")
    opened, closed = case_of(
        forgotten, datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC)
    )
    other_opened, other_closed = case_of(
        forgotten, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
    )
    try:
        await store.project(opened)
        await store.project(
            ClientErasureRequested(
                client_ref=forgotten, organisation_id=ORG, requested_at=datetime.now(UTC)
            )
        )
        # Later: the open trajectory closes, and an event of a second case arrives late
        # (it was published before the erasure, on another topic).
        for event in (closed, other_opened, other_closed):
            await store.project(event)

        for name in FACT_COLLECTIONS:
            assert await store.db[name].count_documents({"client_ref": forgotten}) == 0, name
        tokens = await store.db["cases"].distinct("client_ref")
        assert len(tokens) == 1 and tokens[0].startswith("anon_")  # one person, one token
        [row] = [c.row() for c in figures(await store.facts(), PeriodKind.YEAR)]
        assert row["closed_cases"] == 2
        # The ledger keeps no reference, only its hash.
        ledger = await store.db[ERASED].find().to_list()
        assert [d["_id"] for d in ledger] == [erased_key(forgotten)]
        assert forgotten not in str(ledger)
    finally:
        await client.drop_database(store.db.name)
        await client.close()


def test_a_replay_without_the_erasure_event_still_anonymises_from_the_ledger():
    """A rebuild whose topics no longer hold the ClientErasureRequested (retention) reads the
    live store's ledger: the erased reference does not come back."""
    forgotten, kept = new_id("cl"), new_id("cl")
    book = ReplayBook({erased_key(forgotten): "anon_from_the_ledger"})
    for event in (
        *case_of(forgotten, datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC)),
        *case_of(kept, datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 2, 9, tzinfo=UTC)),
    ):
        book.project(event)
    refs = {doc["client_ref"] for doc in book.collections["cases"].values()}
    assert refs == {"anon_from_the_ledger", kept}


async def test_a_batch_projected_in_bulk_leaves_what_one_event_at_a_time_leaves(mongo_url):
    """The live consumer gathers a batch's events and writes their facts with one bulk write
    per collection at its end: erasures in the middle of the batch, and a person erased in an
    earlier batch, come out exactly as when each event has its own transaction."""
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    one_by_one, in_bulk = (client[f"analytics_batch_{uuid.uuid4().hex[:8]}"] for _ in range(2))
    erased_before, erased_now, kept = new_id("cl"), new_id("cl"), new_id("cl")
    jan, mar, may = (datetime(2025, month, 6, tzinfo=UTC) for month in (1, 3, 5))

    def erasure(ref: str) -> ClientErasureRequested:
        return ClientErasureRequested(client_ref=ref, organisation_id=ORG, requested_at=jan)

    opened_before, closed_before = case_of(erased_before, jan, mar)
    earlier = [opened_before, erasure(erased_before)]
    opened_now, closed_now = case_of(erased_now, jan, mar)
    batch = [
        closed_before,  # a person erased in an earlier batch: the trajectory closes,
        *case_of(erased_before, mar, may),  # and a second one brings the reference again
        opened_now,
        erasure(erased_now),  # in the middle of the batch: before and after it are covered
        closed_now,
        *case_of(erased_now, mar, may),
        *case_of(kept, jan, may),
        opened_now,  # a repeat sets the same fields again
    ]
    uow = UnitOfWork(
        client,
        in_bulk,
        service="analytics",
        clock=SystemClock(),
        transaction_class=AnalyticsTransaction,
    )
    try:
        store = FactStore(one_by_one)
        for event in earlier + batch:
            await store.project(event)
        await FactStore(in_bulk).project_all(earlier)
        envelopes = [wrap(event, source="test") for event in batch]
        async with uow.batch(envelopes) as handled:
            for envelope in envelopes:
                async with handled.handling(envelope) as tx:
                    tx.projection.add(envelope)

        for name in FACT_COLLECTIONS:
            expected = anonymous(await one_by_one[name].find({}).to_list())
            assert anonymous(await in_bulk[name].find({}).to_list()) == expected, name
            for ref in (erased_before, erased_now):
                assert await in_bulk[name].count_documents({"client_ref": ref}) == 0, name
        tokens = {d["client_ref"] for d in await in_bulk["cases"].find({}).to_list()}
        assert kept in tokens and len(tokens) == 3  # one token per erased person
        ledger = {d["_id"]: d["token"] for d in await in_bulk[ERASED].find({}).to_list()}
        assert set(ledger) == {erased_key(erased_before), erased_key(erased_now)}
        assert set(ledger.values()) == tokens - {kept}
        counted = {d["_id"]: d["count"] for d in await in_bulk[EVENT_COUNTS].find({}).to_list()}
        assert sum(counted.values()) == len(batch)
    finally:
        await client.drop_database(one_by_one.name)
        await client.drop_database(in_bulk.name)
        await client.close()
