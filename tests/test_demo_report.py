"""The demo's closing table in the words analytics gives and with numbers written the
language's way. No servers: the labels are analytics' own, as its figures API answers them."""

from __future__ import annotations

from ketenbus.analytics import labels
from ketenbus.analytics.measures import FIELDS
from ketenbus.contracts.values import Language
from ketenbus.devstack.report import TABLE, number, sector_table, shown

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
    assert number(39180, 0) == "39.180"
    assert number(1234.5, 1) == "1.234,5"
    assert number(1234.5, 1, "en") == "1,234.5"
    assert shown(0.2, "pct") == "20,0 %"
    assert shown(None, "num") == "–"
