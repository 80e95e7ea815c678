"""The demo's closing report: its table in the words analytics gives, its narration in Dutch
unless English is chosen, numbers written the language's way. No servers: the labels are
analytics' own, as its figures API answers them, and the report is printed from a result
made here."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest

from ketenbus.analytics import labels, signals
from ketenbus.analytics.app import service as analytics
from ketenbus.analytics.measures import FIELDS
from ketenbus.contracts.values import Language
from ketenbus.devstack import narration
from ketenbus.devstack.errors import BadSetting
from ketenbus.devstack.report import (
    ANALYTICS_TOPICS,
    OWN_COUNTS,
    SIGNAL_TABLE,
    TABLE,
    Reports,
    sector_table,
    shown,
)
from ketenbus.devstack.simulation import LOCAL, YearCounts, YearOptions, moment_after_signal
from ketenbus.devstack.stack import SERVICES
from ketenbus.devstack.year import YearResult, print_report, referral_limits
from ketenbus.kit import wording
from ketenbus.kit.wording import number

ROWS = {
    "welzijn-utrecht": {
        "referrals_received": 1234,
        "closed_cases": 58,
        "time_per_case": "14:15",
        "registration_time_per_case": "13:40",
        "lead_time_days": 153.46,
        "no_show_rate_intake": 0.253,
    }
}


def test_every_figure_of_the_table_has_analytics_words():
    assert {name for name, _ in TABLE} <= set(FIELDS) <= set(labels.FIGURES)
    assert {name for name, _ in SIGNAL_TABLE} <= set(signals.COLUMNS) <= set(labels.FIGURES)


def test_the_table_in_dutch():
    words = labels.column_labels(FIELDS, Language.NL)
    table = sector_table(ROWS, words, "nl")
    lines = table.splitlines()
    assert lines[0].strip() == "welzijn-utrecht"
    row = {line[: len(line) - 17].rstrip(): line[-15:].strip() for line in lines[1:]}
    assert row["Aanmeldingen"] == "1.234"
    assert row["Afgesloten casussen"] == "58"
    assert row["Tijd per casus (u:mm)"] == "14:15"
    assert row["  waarvan registratiesysteem (u:mm)"] == "13:40"
    assert row["Doorlooptijd (dagen)"] == "153,5"
    assert row["No-show intake"] == "25,3 %"
    assert row["Chatcontacten per casus"] == "–"


def test_the_table_in_english():
    table = sector_table(ROWS, labels.column_labels(FIELDS, Language.EN), "en")
    assert "Referrals received" in table and "1,234" in table
    assert "Lead time (days)" in table and "153.5" in table and "25.3%" in table


def test_numbers():
    assert number(39180, 0, Language.NL) == "39.180"
    assert number(1234.5, 1, Language.NL) == "1.234,5"
    assert number(1234.5, 1, Language.EN) == "1,234.5"
    assert shown(0.2, "pct") == "20,0 %"
    assert shown(0.2, "pct", Language.EN) == "20.0%"
    assert shown(None, "num") == "–"


@pytest.mark.parametrize("key", sorted(narration.NARRATION))
def test_every_sentence_of_the_narration_has_both_languages(key):
    assert wording.untranslated({key: narration.NARRATION[key]}) == []


def test_a_missing_or_unequal_translation_is_found():
    """The check above, against sentences with a language missing or a blank dropped."""
    broken = {
        **narration.NARRATION,
        "took": {Language.NL: "Duurde {total} s ({stages})."},
        "year": wording.both("Het jaar {period}", "The year"),
    }
    assert sorted(wording.untranslated(broken)) == ["took", "year"]


def test_every_row_of_the_own_counts_has_words():
    assert {f"own.{name}" for _, name in OWN_COUNTS} <= set(narration.NARRATION)


def test_dutch_unless_english_is_chosen():
    assert narration.chosen_language({}) == Language.NL
    assert narration.chosen_language({"KETENBUS_DEMO_LANGUAGE": "EN "}) == Language.EN
    with pytest.raises(BadSetting, match="choose nl or en"):
        narration.chosen_language({"KETENBUS_DEMO_LANGUAGE": "de"})


class Place:
    """Where the report points: the URLs, keys and home of a stack, without the stack."""

    home = Path("/home/demo/.ketenbus")

    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{8001 + i}" for i, name in enumerate(SERVICES)}

    def api_token(self, organisation: str, role: str) -> str:
        return f"kb_{organisation}_{role}"


SIGNAL_ROW = {
    "signals_received": 12,
    "residents_reached": 9,
    "help_accepted": 7,
    "help_declined": 2,
    "outreach_overdue": 1,
    "days_to_first_outreach": 4.3,
}


def figure(report: str, label: str) -> str:
    """The value on the line of `label` (one organisation's column)."""
    line = next(line for line in report.splitlines() if line.startswith(label + "  "))
    return line.split()[-1]


def a_year(language: Language) -> YearResult:
    options = YearOptions(days=30, clients=1234, speed=60_000)
    counts = YearCounts(planned=1234, declined=4)
    own = counts.of("welzijn-utrecht")
    own["referral", "received"], own["trajectory", "closed"], own["intake", "missed"] = 1230, 58, 3
    own["signal", "received"] = 12
    for hours, action in ((0.5, "register"), (2.5, "intake appointment"), (1.25, "message")):
        counts.note_lag(hours, (action, datetime(2025, 3, 4, 9, 30, tzinfo=LOCAL)))
    reports = Reports(
        Path("/r"),
        {"welzijn-utrecht": Path("/r/dashboard-welzijn-utrecht.html")},
        Path("/r/figures.csv"),
        Path("/r/referral-mix.csv"),
        Path("/r/sector-table.csv"),
    )
    return YearResult(
        options,
        counts,
        totals={},
        year_figures=ROWS,
        problems=[],
        reports=reports,
        timings={"stage.year": 1234.4, "stage.catching_up": 5.0},
        labels=labels.column_labels(FIELDS, language),
        language=language,
        signal_figures={"welzijn-utrecht": SIGNAL_ROW},
        signal_labels=labels.column_labels(signals.COLUMNS, language),
    )


def printed(result: YearResult) -> str:
    out = io.StringIO()
    print_report(result, Place(), out)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_report_speaks_dutch_by_default():
    report = printed(a_year(Language.NL))
    assert (
        "Het jaar 2025: 1.234 inwoners gepland, 12 signalen van schuldeisers, "
        "1.230 aangemeld in de regio" in report
    )
    assert "Stuurcijfers 2025 per organisatie" in report
    # The early-warning figures, in analytics' words.
    assert "Vroegsignalering 2025 per organisatie" in report
    assert figure(report, "Signalen ontvangen") == "12"
    assert figure(report, "Inwoners bereikt") == "9"
    assert figure(report, "Hulp aanvaard") == "7" and figure(report, "Hulp afgewezen") == "2"
    assert figure(report, "Niet op tijd benaderd") == "1"
    assert figure(report, "Dagen tot eerste contactpoging") == "4,3"
    assert "Afgesloten casussen" in report and "Doorlooptijd (dagen)" in report
    assert "Wat de simulatie zelf deed" in report
    assert "afgesloten casussen" in report.split("Wat de simulatie zelf deed")[1]
    assert "De cijfers van analytics kloppen met de eigen tellingen" in report
    assert "Waar te kijken" in report and "dashboard (bestand)" in report
    assert "Duurde 1.239 s (het jaar 1.234 s, analytics haalt in 5 s)." in report
    assert "hoogstens 2,5 gesimuleerde uren achter op haar planning" in report
    assert "95 % van haar 3 handelingen" in report and "op 60.000x" in report
    for english in ("Took", "Where to look", "What the simulation", "behind its plan"):
        assert english not in report


def test_the_report_in_english_when_chosen():
    report = printed(a_year(Language.EN))
    assert (
        "The year 2025: 1,234 residents planned, 12 signals from creditors, "
        "1,230 referred into the region" in report
    )
    assert "Early-warning signals 2025 per organisation" in report
    assert figure(report, "Not reached out to in time") == "1"
    assert "Closed cases" in report and "Lead time (days)" in report
    assert "What the simulation itself did" in report
    assert "Analytics' figures agree with the simulation's own counts" in report
    assert "Where to look" in report and "dashboard (file)" in report
    assert "Took 1,239 s (the year 1,234 s, analytics catching up 5 s)." in report
    assert "at most 2.5 simulated hours behind its plan" in report and "at 60,000x" in report
    for dutch in ("Duurde", "Waar te kijken", "Afgesloten casussen", "achter op haar planning"):
        assert dutch not in report


def test_the_referral_limits_follow_the_years_pace_and_never_fall_below_the_default() -> None:
    # 3,000 residents in a year of 394 real seconds: some 457 referrals a real minute.
    region = referral_limits(YearOptions(clients=3000, speed=80_000))
    assert region == {"REFERRAL_RATE_PER_MINUTE": "1370", "REFERRAL_BURST": "114"}
    # 50 residents in a year of 66 real minutes refer fewer than the default stops.
    slow = referral_limits(YearOptions(clients=50, speed=8_000))
    assert slow == {"REFERRAL_RATE_PER_MINUTE": "60", "REFERRAL_BURST": "20"}


def test_the_demo_waits_for_the_topics_analytics_reads_and_no_other() -> None:
    # A topic it never reads would count as a backlog that never shrinks.
    assert sorted(analytics.handlers.topics()) == ANALYTICS_TOPICS


def test_an_outreach_is_never_dated_before_intake_received_the_signal():
    """Intake's clock may run minutes of simulated time ahead of the simulation's (each
    process reckons from its own start): its receipt wins over our `now`, or intake would
    refuse the outreach as coming before the signal."""
    received = datetime(2026, 3, 2, 10, 0)
    behind = datetime(2026, 3, 2, 9, 58)
    assert moment_after_signal(datetime(2026, 3, 2, 9, 0), received, behind) == received
    # A late run acts late: not at the planned moment already past, at now.
    later = datetime(2026, 3, 2, 15, 0)
    assert moment_after_signal(datetime(2026, 3, 3, 9, 0), received, later) == later
    # On time: as planned.
    assert moment_after_signal(datetime(2026, 3, 2, 12, 0), received, later) == datetime(
        2026, 3, 2, 12, 0
    )


def test_a_region_sized_year_is_played_slower_unless_a_speed_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KETENBUS_DEMO_SPEED", raising=False)
    monkeypatch.setenv("KETENBUS_DEMO_CLIENTS", "3000")
    assert YearOptions.from_environment().speed == 75_000
    monkeypatch.setenv("KETENBUS_DEMO_CLIENTS", "300")  # the default size, at full speed
    assert YearOptions.from_environment().speed == 130_000
    monkeypatch.setenv("KETENBUS_DEMO_CLIENTS", "3000")
    monkeypatch.setenv("KETENBUS_DEMO_SPEED", "130000")
    assert YearOptions.from_environment().speed == 130_000
