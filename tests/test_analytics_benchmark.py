"""The benchmark shares aggregates only: small cells suppressed together with the cells that
would give them away, no funder, the name pseudonymised on request. Every expected
suppression below is worked out by hand from the rule in benchmark.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from ketenbus.analytics.benchmark import pseudonym, snapshot, suppressed_positions
from ketenbus.analytics.facts import Case, Contact, Facts
from ketenbus.analytics.measures import BENCHMARK_DIMENSIONS, figures
from ketenbus.analytics.periods import LOCAL, PeriodKind, is_over, overlap, period_of
from ketenbus.contracts.envelope import decode, wrap
from ketenbus.contracts.events import REGISTRY
from ketenbus.contracts.values import new_id
from ketenbus.devstack.chain_client import eventually

KEY = b"k" * 32
GENERAL, ONLINE, SCHOOL = "general_social_work", "online_help", "school_social_work"
WITH, WITHOUT = True, False


def closed_cases(
    facts: Facts, count: int, work_type: str, online: bool, minutes: int = 60, funder: str = "X"
) -> Facts:
    for _ in range(count):
        case = Case(
            id=new_id("trj"),
            organisation_id="welzijn-amersfoort",
            funder=funder,
            work_type=work_type,
            opened_at=datetime(2025, 2, 1, 9, tzinfo=UTC),
            closed_at=datetime(2025, 5, 1, 9, tzinfo=UTC),  # 89 days
            online_dossier_used=online,
        )
        facts.cases.append(case)
        facts.contacts.append(
            Contact(
                new_id("con"), case.id, "face_to_face", minutes, datetime(2025, 2, 2, tzinfo=UTC)
            )
        )
    return facts


def published(facts: Facts, period: str = "2025", **options):
    kind = PeriodKind.YEAR if len(period) == 4 else PeriodKind.QUARTER
    cells = [c for c in figures(facts, kind, by=BENCHMARK_DIMENSIONS) if c.key.period == period]
    return snapshot(
        "welzijn-amersfoort",
        period,
        cells,
        at=datetime.now(UTC),
        pseudonymise=options.get("pseudonymise", False),
        key=KEY,
    )


def margins(cases: dict[tuple[str, bool], int]) -> dict[object, int]:
    """Row totals, column totals and the grand total: what counts as known."""
    known: dict[object, int] = {"total": sum(cases.values())}
    for (work_type, used), count in cases.items():
        known[work_type] = known.get(work_type, 0) + count
        known[used] = known.get(used, 0) + count
    return known


def table(snap) -> dict[tuple[str, bool], int | None]:
    return {(c.work_type.value, c.online_dossier_used): c.closed_cases for c in snap.cells}


def test_one_small_cell_takes_its_row_and_a_column_partner_with_it():
    """without  with
    general     30    12
    online      15     4   <- 4 < 10: suppressed
    school      20    11
    Row online has one suppressed cell: its smallest other cell (15) goes too. Column "with"
    now has one (online's 4): its smallest shown cell, school's 11, goes too. Row school has
    one: its 20 goes too. Now every row and column has none or two: done."""
    facts = Facts()
    for work_type, without, with_ in ((GENERAL, 30, 12), (ONLINE, 15, 4), (SCHOOL, 20, 11)):
        closed_cases(facts, without, work_type, WITHOUT)
        closed_cases(facts, with_, work_type, WITH)

    shared = published(facts)

    assert table(shared) == {
        (GENERAL, WITHOUT): 30,
        (GENERAL, WITH): 12,
        (ONLINE, WITHOUT): None,
        (ONLINE, WITH): None,
        (SCHOOL, WITHOUT): None,
        (SCHOOL, WITH): None,
    }
    hidden = [c for c in shared.cells if c.suppressed]
    assert len(hidden) == 4 and all(c.minutes_per_case is None for c in hidden)
    shown = [c for c in shared.cells if not c.suppressed]
    assert {(c.minutes_per_case, c.lead_time_days) for c in shown} == {(60.0, 89.0)}


def test_the_suppressed_cells_cannot_be_computed_from_the_totals():
    """Two tables with the same totals, the same shown cells, that differ only in the
    suppressed ones (shifted round the cycle online-with, online-without, school-without,
    school-with): they publish the same snapshot, so the snapshot and the totals cannot
    tell which one it was."""
    one = {
        (GENERAL, WITHOUT): 30,
        (GENERAL, WITH): 12,
        (ONLINE, WITHOUT): 15,
        (ONLINE, WITH): 4,
        (SCHOOL, WITHOUT): 20,
        (SCHOOL, WITH): 11,
    }
    other = {**one, (ONLINE, WITH): 5, (ONLINE, WITHOUT): 14}
    other.update({(SCHOOL, WITHOUT): 21, (SCHOOL, WITH): 10})
    assert margins(one) == margins(other)
    assert suppressed_positions(one) == suppressed_positions(other)
    hidden = suppressed_positions(one)
    assert {p: v for p, v in one.items() if p not in hidden} == {
        p: v for p, v in other.items() if p not in hidden
    }
    assert one != other


def test_small_cells_in_one_column_protect_each_other_and_take_their_rows():
    """without  with
    general     25     3   <- suppressed
    online      40    18
    school      14     2   <- suppressed
    Column "with" has two suppressed cells: enough. Rows general and school have one each:
    their other cells (25, 14) go too. Column "without" then has two: done; online stays."""
    cases = {
        (GENERAL, WITHOUT): 25,
        (GENERAL, WITH): 3,
        (ONLINE, WITHOUT): 40,
        (ONLINE, WITH): 18,
        (SCHOOL, WITHOUT): 14,
        (SCHOOL, WITH): 2,
    }
    assert suppressed_positions(cases) == {
        (GENERAL, WITHOUT),
        (GENERAL, WITH),
        (SCHOOL, WITHOUT),
        (SCHOOL, WITH),
    }


def test_a_missing_cell_is_a_cell_of_none_and_suppressed_with_its_partner():
    """School has cases only without the dossier: its "with" cell is there, with zero cases,
    and suppressed (0 < 10). Its row partner (12) goes too; column "with" then has one, so
    the smallest shown cell of that column (general's 10) goes, and with it general's 11.
        without  with
    general     11    10   <- complementary
    school      12    (0)
    """
    facts = Facts()
    closed_cases(facts, 11, GENERAL, WITHOUT)
    closed_cases(facts, 10, GENERAL, WITH)
    closed_cases(facts, 12, SCHOOL, WITHOUT)

    assert table(published(facts)) == {
        (GENERAL, WITHOUT): None,
        (GENERAL, WITH): None,
        (SCHOOL, WITHOUT): None,
        (SCHOOL, WITH): None,
    }


def test_large_cells_are_all_shared_exactly():
    cases = {(GENERAL, WITHOUT): 10, (GENERAL, WITH): 11, (SCHOOL, WITHOUT): 12}
    cases[(SCHOOL, WITH)] = 13
    assert suppressed_positions(cases) == set()


def test_no_cell_names_a_funder():
    """A funder maps to one organisation: the cells are cut by work type and dossier only,
    so Leusden's cases are counted, but Leusden is nowhere in what goes on the bus."""
    facts = Facts()
    closed_cases(facts, 12, GENERAL, WITHOUT, funder="Amersfoort")
    closed_cases(facts, 9, GENERAL, WITHOUT, funder="Leusden")
    closed_cases(facts, 25, GENERAL, WITH, funder="Leusden")

    shared = published(facts, pseudonymise=True)

    assert table(shared) == {(GENERAL, WITHOUT): 21, (GENERAL, WITH): 25}
    on_the_bus = wrap(shared, source="analytics").to_bytes()
    assert b"Leusden" not in on_the_bus and b"Amersfoort" not in on_the_bus
    assert b"funder" not in on_the_bus
    assert "funder" not in json.loads(on_the_bus)["data"]["cells"][0]
    # What goes on the bus reads back the same: the contract holds.
    assert decode(on_the_bus, REGISTRY).data == shared
    assert decode(on_the_bus, REGISTRY).type.endswith("KpiSnapshotPublished.v2")


def test_only_a_year_and_its_own_quarters_overlap():
    assert overlap("2025", "2025-Q3") and overlap("2025-Q1", "2025")
    assert not overlap("2025", "2025")  # the same period: a replacement, not an overlap
    assert not overlap("2025-Q1", "2025-Q2")
    assert not overlap("2025", "2026") and not overlap("2025-Q4", "2026-Q1")
    assert not overlap("2024", "2025-Q1")


def test_a_quarter_or_year_is_over_once_its_last_day_has_ended_in_dutch_time():
    new_year = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January in Utrecht
    assert is_over("2025", new_year) and is_over("2025-Q4", new_year)
    assert not is_over("2026", new_year) and not is_over("2026-Q1", new_year)
    before_midnight = datetime(2025, 9, 30, 21, 59, tzinfo=UTC)  # 23:59 in Utrecht
    assert not is_over("2025-Q3", before_midnight) and is_over("2025-Q2", before_midnight)
    assert not is_over("2025", before_midnight) and is_over("2024", before_midnight)


def test_the_pseudonym_is_stable_and_does_not_show_the_name():
    facts = closed_cases(Facts(), 12, GENERAL, WITHOUT, minutes=30)
    one = published(facts, pseudonymise=True)
    two = published(facts, pseudonymise=True)

    assert one.pseudonymised is True
    assert one.organisation == two.organisation == pseudonym("welzijn-amersfoort", KEY)
    assert "amersfoort" not in one.organisation
    assert pseudonym("welzijn-utrecht", KEY) != one.organisation
    assert pseudonym("welzijn-amersfoort", b"another key" * 3) != one.organisation


@pytest.mark.stack
async def test_overlapping_periods_are_refused_and_the_same_period_replaces(chain):
    """Through the real analytics service: a quarter of a year already published is refused
    (409, naming the year), so is a month (422); the same year again replaces its snapshot,
    under the same label only, and the replaced one is marked and no longer compared."""
    stack = chain(["analytics"])
    org = "welzijn-utrecht"
    manager = {"Authorization": f"Bearer {stack.api_token(org, 'manager')}"}
    async with httpx.AsyncClient(
        base_url=stack.service_url("analytics"), headers=manager, timeout=30
    ) as http:

        async def publish(period: str, pseudonymise: bool = False) -> httpx.Response:
            body = {"period": period, "pseudonymise": pseudonymise}
            return await http.post("/v1/benchmark/snapshots", json=body)

        first = await publish("2025")
        assert first.status_code == 201, first.text
        assert first.json()["replaces"] is None

        quarter = await publish("2025-Q2")
        assert quarter.status_code == 409, quarter.text
        assert "2025" in quarter.json()["detail"] and "overlap" in quarter.json()["detail"]
        month = await publish("2025-07")
        assert month.status_code == 422, month.text
        assert "quarter or year" in month.json()["detail"]
        under_a_pseudonym = await publish("2025", pseudonymise=True)
        assert under_a_pseudonym.status_code == 409, under_a_pseudonym.text

        again = await publish("2025")
        assert again.status_code == 201, again.text
        assert again.json()["replaces"] == first.json()["snapshot_id"]
        elsewhere = await publish("2024-Q4")  # another year's quarter overlaps nothing
        assert elsewhere.status_code == 201, elsewhere.text

        async def replaced() -> Any:
            answer = (await http.get("/v1/benchmark", params={"period": "2025"})).json()
            columns = answer["organisations"]
            latest = again.json()["published_at"]
            return columns if [c["published_at"] for c in columns] == [latest] else None

        [column] = await eventually(replaced, "the replacement in the benchmark")
        assert column["organisation"] == org and column["own"] is True

    mongo: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    try:
        snapshots = mongo[stack.database_name("analytics")]["snapshots"]
        old = await snapshots.find_one({"_id": first.json()["snapshot_id"]})
        assert old is not None and old["replaced_by"] == again.json()["snapshot_id"]
    finally:
        await mongo.close()


@pytest.mark.stack
async def test_a_period_that_has_not_ended_is_refused(chain):
    """Through the real analytics service, on its own clock: the running quarter and year,
    and a later quarter, are refused (409, naming the period), because a snapshot of a period
    still running and its replacement would both stay on the topic; the quarter that ended
    last is published."""
    stack = chain(["analytics"])
    org = "welzijn-heuvelrug"  # publishes nothing in the other tests of this stack
    manager = {"Authorization": f"Bearer {stack.api_token(org, 'manager')}"}
    now = datetime.now(LOCAL)  # the service's clock is the system's here
    running_quarter = period_of(now, PeriodKind.QUARTER)
    quarter = int(running_quarter[-1])
    later = f"{now.year:04d}-Q{quarter + 1}" if quarter < 4 else f"{now.year + 1:04d}-Q1"
    ended = f"{now.year:04d}-Q{quarter - 1}" if quarter > 1 else f"{now.year - 1:04d}-Q4"
    async with httpx.AsyncClient(
        base_url=stack.service_url("analytics"), headers=manager, timeout=30
    ) as http:
        for period in (running_quarter, f"{now.year:04d}", later):
            refused = await http.post("/v1/benchmark/snapshots", json={"period": period})
            assert refused.status_code == 409, refused.text
            assert f"{period} has not ended yet" in refused.json()["detail"]
        published = await http.post("/v1/benchmark/snapshots", json={"period": ended})
        assert published.status_code == 201, published.text
        assert published.json()["period"] == ended
