"""The sector's own figures table from a hand-built event stream, every cell worked out by hand:
rows per location x work type, the "of which material problems" row under general social
work, the with/without online dossier column groups and the total row."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ketenbus.analytics.facts import Facts
from ketenbus.analytics.measures import figures
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FactBook
from ketenbus.analytics.sector import as_text, per_case, sector_table
from ketenbus.contracts.events import ContactRegistered, TrajectoryClosed, TrajectoryOpened
from ketenbus.contracts.values import Language, new_id

NL = ZoneInfo("Europe/Amsterdam")
ORG = "welzijn-utrecht"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NL)


class Year:
    def __init__(self) -> None:
        self.book = FactBook()

    def facts(self) -> Facts:
        return Facts.of(self.book.documents)

    def case(self, funder: str, work_type: str, topic: str, opened: str) -> dict[str, str]:
        ids = {
            "trajectory_id": new_id("trj"),
            "client_ref": new_id("cl"),
            "referral_id": new_id("ref"),
        }
        self.book.record(
            TrajectoryOpened(
                **ids,
                organisation_id=ORG,
                funder=funder,
                work_type=work_type,
                referrer_type="gp",
                topic=topic,
                postcode_area="3512",
                crisis=False,
                referred_at=at(opened),
                opened_at=at(opened),
            )
        )
        return ids

    def contact(self, case: dict[str, str], channel: str, minutes: int, dossier: bool = False):
        self.book.record(
            ContactRegistered(
                trajectory_id=case["trajectory_id"],
                client_ref=case["client_ref"],
                organisation_id=ORG,
                contact_id=new_id("con"),
                channel=channel,
                minutes=minutes,
                occurred_at=at("2025-01-15T10:00"),
                online_dossier=dossier,
            )
        )

    def close(self, case: dict[str, str], when: str, dossier: bool) -> None:
        self.book.record(
            TrajectoryClosed(
                **case,
                organisation_id=ORG,
                reason="goal_reached",
                online_dossier_used=dossier,
                closed_at=at(when),
            )
        )


def a_year() -> Year:
    y = Year()
    # Utrecht, general social work, psychosocial, with the online dossier: 59 days.
    a = y.case("Utrecht", "general_social_work", "psychosocial", "2025-01-06T10:00")
    y.contact(a, "face_to_face", 60)
    y.contact(a, "dossier_message", 10, dossier=True)
    y.contact(a, "chat", 20)
    y.contact(a, "homework", 15, dossier=True)
    y.close(a, "2025-03-06T10:00", dossier=True)
    # Utrecht, general social work, money and debts, with the online dossier: 49 days.
    b = y.case("Utrecht", "general_social_work", "debts_material", "2025-02-03T09:00")
    y.contact(b, "face_to_face", 90)
    y.contact(b, "dossier_message", 5, dossier=True)
    y.contact(b, "dossier_message", 7, dossier=True)
    y.close(b, "2025-03-24T09:00", dossier=True)
    # Utrecht, general social work, money and debts, without: 59 days.
    c = y.case("Utrecht", "general_social_work", "debts_material", "2025-01-13T09:00")
    y.contact(c, "face_to_face", 45)
    y.contact(c, "home_visit", 120)
    y.contact(c, "phone", 15)
    y.close(c, "2025-03-13T09:00", dossier=False)
    # Utrecht, general social work, psychosocial, without: 20 days.
    d = y.case("Utrecht", "general_social_work", "psychosocial", "2025-01-02T09:00")
    y.contact(d, "face_to_face", 51)
    y.close(d, "2025-01-22T09:00", dossier=False)
    # A v1 event from before the sector's form: work type material_debt. It is general
    # social work about money and debts, without the online dossier: 7 days.
    h = y.case("Utrecht", "material_debt", "debts_material", "2025-03-03T09:00")
    y.contact(h, "face_to_face", 61)
    y.close(h, "2025-03-10T09:00", dossier=False)
    # Nieuwegein, school social work, without: 30 days.
    e = y.case("Nieuwegein", "school_social_work", "parenting", "2025-01-07T09:00")
    y.contact(e, "face_to_face", 100)
    y.contact(e, "phone", 25)
    y.close(e, "2025-02-06T09:00", dossier=False)
    # Still open: in no row. Closed in 2026: in the next year's table only.
    f = y.case("Utrecht", "general_social_work", "psychosocial", "2025-11-03T09:00")
    y.contact(f, "face_to_face", 300)
    g = y.case("Utrecht", "general_social_work", "debts_material", "2025-11-03T09:00")
    y.contact(g, "face_to_face", 30)
    y.close(g, "2026-01-05T09:00", dossier=False)
    return y


def test_the_sector_table_of_a_year_by_hand():
    rows = [r.row() for r in sector_table(a_year().facts(), PeriodKind.YEAR, only="2025")]
    shape = [(r["location"], r["work_type"], r["of_which"]) for r in rows]
    assert shape == [
        ("Nieuwegein", "school_social_work", "all"),
        ("Utrecht", "general_social_work", "all"),
        ("Utrecht", "general_social_work", "debts_material"),
        ("total", "total", "all"),
    ]
    school, general, material, total = ({k: v for k, v in r.items() if "_" in k} for r in rows)
    # General social work, with: a (60+20 registration, 10+15 dossier) and b (90; 5+7).
    assert general == {
        "work_type": "general_social_work",
        "of_which": "all",
        "with_closed_cases": 2,
        "with_registration_time": "2:50",  # 170 minutes
        "with_dossier_time": "0:37",
        "with_total_time": "3:27",  # 207 minutes
        "with_time_per_case": "1:43",  # 103.5 minutes, truncated
        "with_lead_time_days": 54,  # (59 + 49) / 2
        "with_chats": 1,
        "with_messages": 3,
        "with_homework_contacts": 1,
        # c (180), d (51), h (61): 292 minutes over three cases
        "without_closed_cases": 3,
        "without_registration_time": "4:52",
        "without_time_per_case": "1:37",  # 97.33 minutes, truncated
        "without_lead_time_days": 29,  # (59 + 20 + 7) / 3 = 28.67, rounded
    }
    # Of which material problems: b with; c and the v1 material_debt case h without.
    assert material == {
        "work_type": "general_social_work",
        "of_which": "debts_material",
        "with_closed_cases": 1,
        "with_registration_time": "1:30",
        "with_dossier_time": "0:12",
        "with_total_time": "1:42",
        "with_time_per_case": "1:42",
        "with_lead_time_days": 49,
        "with_chats": 0,
        "with_messages": 2,
        "with_homework_contacts": 0,
        "without_closed_cases": 2,
        "without_registration_time": "4:01",  # 180 + 61
        "without_time_per_case": "2:00",  # 120.5, truncated
        "without_lead_time_days": 33,  # (59 + 7) / 2
    }
    assert school["with_closed_cases"] == 0 and school["with_time_per_case"] is None
    assert school["with_lead_time_days"] is None and school["with_total_time"] == "0:00"
    assert (school["without_closed_cases"], school["without_registration_time"]) == (1, "2:05")
    assert (school["without_time_per_case"], school["without_lead_time_days"]) == ("2:05", 30)
    # The total adds the rows, not the "of which" row again; averages from the totals.
    assert total["with_closed_cases"] == 2 and total["with_total_time"] == "3:27"
    assert total["with_messages"] == 3 and total["with_lead_time_days"] == 54
    assert total["without_closed_cases"] == 4
    assert total["without_registration_time"] == "6:57"  # 292 + 125 = 417 minutes
    assert total["without_time_per_case"] == "1:44"  # 104.25, truncated
    assert total["without_lead_time_days"] == 29  # (59 + 20 + 7 + 30) / 4


def test_the_case_closed_in_the_next_year_counts_there():
    rows = [r.row() for r in sector_table(a_year().facts(), PeriodKind.YEAR)]
    next_year = [r for r in rows if r["period"] == "2026"]
    assert [(r["location"], r["of_which"], r["without_closed_cases"]) for r in next_year] == [
        ("Utrecht", "all", 1),
        ("Utrecht", "debts_material", 1),
        ("total", "all", 1),
    ]


def test_the_sector_prints_442_hours_10_minutes_over_31_cases_as_14_15():
    assert per_case(442 * 60 + 10, 31) == "14:15"


def test_every_figure_per_topic_within_a_work_type():
    cells = figures(a_year().facts(), PeriodKind.YEAR, by=["work_type", "topic"])
    closed = {
        (c.key.work_type, c.key.topic): c.tally.closed_cases
        for c in cells
        if c.key.period == "2025" and c.tally.closed_cases
    }
    assert closed == {
        ("general_social_work", "debts_material"): 3,
        ("general_social_work", "psychosocial"): 2,
        ("school_social_work", "parenting"): 1,
    }


def test_the_terminal_table_in_dutch_and_english():
    rows = [r.row() for r in sector_table(a_year().facts(), PeriodKind.YEAR, only="2025")]
    dutch = as_text(rows, Language.NL).splitlines()
    assert "Met online dossier" in dutch[0] and "Zonder online dossier" in dutch[0]
    assert dutch[0].index("Met online") < dutch[0].index("Zonder online")
    assert dutch[3].startswith("Utrecht, Algemeen Maatschappelijk Werk")
    assert dutch[4].startswith("  waarvan materiële problematiek")
    assert dutch[5].startswith("Totaal") and dutch[5].split()[-4:] == ["4", "6:57", "1:44", "29"]
    english = as_text(rows, Language.EN)
    assert "of which material problems" in english and "With online dossier" in english
