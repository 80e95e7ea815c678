"""The benchmark shares aggregates only: small cells suppressed, the name pseudonymised."""

from __future__ import annotations

from datetime import UTC, datetime

from ketenbus.analytics.benchmark import pseudonym, snapshot
from ketenbus.analytics.facts import Case, Contact, Facts
from ketenbus.analytics.measures import figures
from ketenbus.analytics.periods import PeriodKind
from ketenbus.contracts.envelope import decode, wrap
from ketenbus.contracts.events import REGISTRY
from ketenbus.contracts.values import new_id

KEY = b"k" * 32


def closed_cases(count: int, funder: str, minutes: int) -> Facts:
    facts = Facts()
    for _ in range(count):
        case = Case(
            id=new_id("trj"),
            organisation_id="welzijn-amersfoort",
            funder=funder,
            work_type="general_social_work",
            opened_at=datetime(2025, 2, 1, 9, tzinfo=UTC),
            closed_at=datetime(2025, 5, 1, 9, tzinfo=UTC),  # 89 days
        )
        facts.cases.append(case)
        facts.contacts.append(
            Contact(
                new_id("con"), case.id, "face_to_face", minutes, datetime(2025, 2, 2, tzinfo=UTC)
            )
        )
    return facts


def test_cells_under_ten_cases_are_suppressed_and_the_rest_shared_exactly():
    facts = closed_cases(10, "Amersfoort", 90)
    small = closed_cases(9, "Leusden", 60)
    facts.cases += small.cases
    facts.contacts += small.contacts
    cells = figures(facts, PeriodKind.YEAR, by=["funder", "work_type", "online_dossier"])

    published = snapshot(
        "welzijn-amersfoort", "2025", cells, at=datetime.now(UTC), pseudonymise=False, key=KEY
    )

    by_funder = {c.funder: c for c in published.cells}
    amersfoort, leusden = by_funder["Amersfoort"], by_funder["Leusden"]
    assert (amersfoort.suppressed, amersfoort.closed_cases) == (False, 10)
    assert amersfoort.minutes_per_case == 90.0
    assert amersfoort.lead_time_days == 89.0
    assert amersfoort.online_share_of_contacts == 0.0
    assert (leusden.suppressed, leusden.closed_cases, leusden.minutes_per_case) == (
        True,
        None,
        None,
    )
    assert leusden.lead_time_days is None
    assert published.organisation == "welzijn-amersfoort"
    # What goes on the bus reads back the same: the contract holds.
    envelope = decode(wrap(published, source="analytics").to_bytes(), REGISTRY)
    assert envelope.data == published


def test_the_pseudonym_is_stable_and_does_not_show_the_name():
    cells = figures(
        closed_cases(12, "Amersfoort", 30),
        PeriodKind.YEAR,
        by=["funder", "work_type", "online_dossier"],
    )
    one = snapshot(
        "welzijn-amersfoort", "2025", cells, at=datetime.now(UTC), pseudonymise=True, key=KEY
    )
    two = snapshot(
        "welzijn-amersfoort", "2025", cells, at=datetime.now(UTC), pseudonymise=True, key=KEY
    )

    assert one.pseudonymised is True
    assert one.organisation == two.organisation == pseudonym("welzijn-amersfoort", KEY)
    assert "amersfoort" not in one.organisation
    assert pseudonym("welzijn-utrecht", KEY) != one.organisation
    assert pseudonym("welzijn-amersfoort", b"another key" * 3) != one.organisation
