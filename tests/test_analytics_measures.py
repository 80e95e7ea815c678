"""The steering figures from small hand-built event streams, every figure computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ketenbus.analytics.facts import Facts
from ketenbus.analytics.measures import (
    DIMENSIONS,
    figures,
    hours_minutes,
    one_working_day_after,
)
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FactBook
from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentMissed,
    AppointmentScheduled,
    ClientWaitlisted,
    ContactRegistered,
    FirstContactMade,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ReferralReceived,
    TrajectoryClosed,
    TrajectoryOpened,
    Urgency,
)
from ketenbus.contracts.topics import ENROLMENTS
from ketenbus.contracts.values import new_id

NL = ZoneInfo("Europe/Amsterdam")
ORG = "welzijn-utrecht"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NL)


class Stream:
    """Builds one organisation's events the way the services would publish them."""

    def __init__(self) -> None:
        self.book = FactBook()
        self.events: list = []
        record = self.book.record
        self.book.record = lambda event: (self.events.append(event), record(event))  # type: ignore[method-assign]

    def facts(self) -> Facts:
        return Facts.of(self.book.documents)

    def case(self, referred: str, opened: str, *, client: str | None = None) -> dict[str, str]:
        ids = {
            "trajectory_id": new_id("trj"),
            "client_ref": client or new_id("cl"),
            "referral_id": new_id("ref"),
        }
        self.book.record(
            TrajectoryOpened(
                **ids,
                organisation_id=ORG,
                funder="Utrecht",
                work_type="general_social_work",
                referrer_type="gp",
                topic="psychosocial",
                postcode_area="3512",
                crisis=False,
                referred_at=at(referred),
                opened_at=at(opened),
            )
        )
        return ids

    def waitlisted(self, on: str) -> dict[str, str]:
        """A self-registration put on the waiting list the moment it arrived."""
        ids = {"referral_id": new_id("ref"), "client_ref": new_id("cl"), "organisation_id": ORG}
        self.book.record(
            ReferralReceived(
                **ids,
                municipality="Utrecht",
                postcode_area="3512",
                referrer_type="self",
                referrer_organisation_id=ORG,
                topic="loneliness",
                urgency=Urgency(),
                consent_id=new_id("cns"),
                received_at=at(on),
            )
        )
        self.book.record(ClientWaitlisted(**ids, position=1, waitlisted_at=at(on)))
        return ids

    def contact(self, case: dict[str, str], when: str, channel: str, minutes: int, **flags):
        self.book.record(
            ContactRegistered(
                trajectory_id=case["trajectory_id"],
                client_ref=case["client_ref"],
                organisation_id=ORG,
                contact_id=new_id("con"),
                channel=channel,
                minutes=minutes,
                occurred_at=at(when),
                **flags,
            )
        )

    def appointment(self, case: dict[str, str], when: str, kind: str, outcome: str) -> None:
        about = {
            "trajectory_id": case["trajectory_id"],
            "client_ref": case["client_ref"],
            "organisation_id": ORG,
            "appointment_id": new_id("apt"),
            "kind": kind,
        }
        self.book.record(
            AppointmentScheduled(
                **about,
                starts_at=at(when),
                duration_minutes=45,
                modality="face_to_face",
                worker_id="mw.utrecht",
                scheduled_at=at(when) - timedelta(days=3),
            )
        )
        if outcome == "attended":
            self.book.record(
                AppointmentAttended(
                    **about, starts_at=at(when), modality="face_to_face", registered_at=at(when)
                )
            )
        else:
            self.book.record(
                AppointmentMissed(
                    **about, starts_at=at(when), worker_id="mw.utrecht", registered_at=at(when)
                )
            )

    def close(self, case: dict[str, str], when: str, online_dossier_used: bool) -> None:
        self.book.record(
            TrajectoryClosed(
                **case,
                organisation_id=ORG,
                reason="goal_reached",
                online_dossier_used=online_dossier_used,
                closed_at=at(when),
            )
        )

    def module(self, case: dict[str, str], started: str, *, completed=None, abandoned_after=None):
        about = {
            "enrolment_id": new_id("enr"),
            "client_ref": case["client_ref"],
            "organisation_id": ORG,
            "module_id": "grip-op-je-geld",
        }
        self.book.record(ModuleStarted(**about, started_at=at(started)))
        if completed:
            self.book.record(ModuleCompleted(**about, completed_at=at(completed)))
        if abandoned_after is not None:
            self.book.record(
                ModuleAbandoned(
                    **about,
                    steps_completed=abandoned_after,
                    idle_since=at(started),
                    abandoned_at=at(started) + timedelta(days=21),
                )
            )


def two_cases() -> Stream:
    s = Stream()
    a = s.case("2025-01-06T09:00", "2025-01-06T10:00")
    s.book.record(FirstContactMade(**a, organisation_id=ORG, occurred_at=at("2025-01-08T10:00")))
    s.contact(a, "2025-01-08T10:00", "face_to_face", 60)
    # A message on Friday afternoon answered on Monday: 71 hours, yet within one working day.
    s.contact(
        a,
        "2025-01-10T15:00",
        "dossier_message",
        5,
        online_dossier=True,
        direction="client_to_worker",
    )
    s.contact(
        a,
        "2025-01-13T14:00",
        "dossier_message",
        10,
        online_dossier=True,
        direction="worker_to_client",
    )
    s.contact(a, "2025-01-20T11:00", "chat", 20, replaces_face_to_face=True)
    s.appointment(a, "2025-01-08T10:00", "intake", "attended")
    s.appointment(a, "2025-01-22T10:00", "follow_up", "attended")
    s.appointment(a, "2025-02-05T10:00", "follow_up", "missed")
    s.appointment(a, "2025-02-12T10:00", "follow_up", "attended")
    s.close(a, "2025-03-06T10:00", online_dossier_used=True)  # 59 days

    b = s.case("2025-01-10T12:00", "2025-01-10T12:00")
    s.appointment(b, "2025-01-12T12:00", "intake", "missed")
    s.appointment(b, "2025-01-14T12:00", "intake", "attended")
    s.appointment(b, "2025-01-28T12:00", "follow_up", "missed")
    s.contact(b, "2025-01-14T12:00", "face_to_face", 45)  # first contact: 4 days of waiting
    s.contact(b, "2025-01-21T12:00", "home_visit", 90)
    s.contact(b, "2025-01-23T12:00", "phone", 15, default_duration=True)
    s.close(b, "2025-02-09T12:00", online_dossier_used=False)  # 30 days

    s.module(a, "2025-01-09T20:00", completed="2025-01-30T20:00")
    s.module(a, "2025-02-01T20:00", abandoned_after=1)
    s.module(b, "2025-02-02T20:00", abandoned_after=3)
    return s


def test_the_year_of_two_cases_by_hand():
    [year] = figures(two_cases().facts(), PeriodKind.YEAR)
    row = year.row()

    assert (row["organisation"], row["period"]) == (ORG, "2025")
    assert row["closed_cases"] == 2
    # 95 + 150 = 245 minutes over 2 cases = 122.5 -> 2:02; registration 230 / 2 = 115 -> 1:55;
    # online dossier 15 / 2 = 7.5 -> 0:07.
    assert row["time_per_case"] == "2:02"
    assert row["registration_time_per_case"] == "1:55"
    assert row["dossier_time_per_case"] == "0:07"
    assert (row["registration_minutes"], row["dossier_minutes"]) == (230, 15)
    assert row["minutes_per_case"] == 122.5
    assert row["default_duration_share"] == round(15 / 245, 4)
    assert row["lead_time_days"] == 44.5  # (59 + 30) / 2
    assert row["chats_per_case"] == 0.5
    assert row["dossier_messages_per_case"] == 1.0
    assert row["homework_contacts_per_case"] == 0.0
    assert row["online_dossier_adoption"] == 0.5
    assert row["online_share_of_contacts"] == round(3 / 7, 4)
    assert row["online_share_of_time"] == round(35 / 245, 4)
    assert row["online_replacing_face_to_face_share"] == round(1 / 3, 4)
    # Blended (any online contact) against face-to-face only.
    assert (row["blended_cases"], row["blended_hours_per_case"]) == (1, round(95 / 60, 2))
    assert row["blended_lead_time_days"] == 59.0
    assert (row["face_to_face_cases"], row["face_to_face_hours_per_case"]) == (1, 2.5)
    assert row["face_to_face_lead_time_days"] == 30.0
    # Intake: A attended, B missed then attended -> 1 / 3. Follow-up: 2 missed, 2 attended.
    assert (row["intake_attended"], row["intake_missed"]) == (2, 1)
    assert row["no_show_rate_intake"] == 0.3333
    assert (row["follow_up_attended"], row["follow_up_missed"]) == (2, 2)
    assert row["no_show_rate_follow_up"] == 0.5
    # Modules: one completed, one left after its first step (drop-out), one after three.
    assert (row["modules_started"], row["modules_completed"], row["modules_dropped_out"]) == (
        3,
        1,
        1,
    )
    assert row["module_completion_rate"] == 0.3333
    assert row["module_drop_out_rate"] == 0.3333
    # Waiting: A 2 days 1 hour (explicit FirstContactMade), B 4 days (its first contact).
    assert row["first_contacts"] == 2
    assert row["waiting_time_days"] == round((2 + 1 / 24 + 4) / 2, 2)
    assert (row["client_messages"], row["messages_answered"]) == (1, 1)
    assert row["response_time_hours"] == 71.0
    assert row["answered_within_working_day_share"] == 1.0
    assert row["answered_within_48h_share"] == 0.0


def test_each_fact_counts_in_its_own_month():
    cells = {c.key.period: c.row() for c in figures(two_cases().facts(), PeriodKind.MONTH)}

    assert sorted(cells) == ["2025-01", "2025-02", "2025-03"]
    assert [cells[m]["closed_cases"] for m in sorted(cells)] == [0, 1, 1]
    assert cells["2025-02"]["time_per_case"] == "2:30"  # B alone: 150 minutes
    assert cells["2025-03"]["time_per_case"] == "1:35"  # A alone: 95 minutes
    assert cells["2025-01"]["no_show_rate_intake"] == 0.3333
    assert (cells["2025-02"]["follow_up_attended"], cells["2025-02"]["follow_up_missed"]) == (1, 1)
    assert cells["2025-01"]["time_per_case"] is None


def test_grouped_by_online_dossier_the_cases_part():
    cells = {
        c.key.online_dossier_used: c.row()
        for c in figures(two_cases().facts(), PeriodKind.QUARTER, by=["online_dossier"])
    }

    assert cells["yes"]["period"] == "2025-Q1"
    assert (cells["yes"]["closed_cases"], cells["yes"]["time_per_case"]) == (1, "1:35")
    assert (cells["no"]["closed_cases"], cells["no"]["time_per_case"]) == (1, "2:30")
    assert cells["no"]["no_show_rate_intake"] == 0.5
    assert cells["yes"]["no_show_rate_intake"] == 0.0


def test_time_per_case_is_truncated_to_the_whole_minute_as_the_sector_prints_it():
    assert hours_minutes(442 * 60 + 10, 31) == "14:15"  # 855.8 minutes, not rounded up
    assert hours_minutes(119, 1) == "1:59"
    assert hours_minutes(0, 3) == "0:00"
    assert hours_minutes(100, 0) is None

    s = Stream()
    for number in range(31):
        case = s.case("2025-04-01T09:00", "2025-04-01T09:00")
        # 30 cases of 855 minutes and one of 880: 26 530 minutes = 442 h 10 min.
        minutes = 880 if number == 0 else 855
        s.contact(case, "2025-04-02T09:00", "face_to_face", minutes - 60)
        s.contact(case, "2025-04-03T09:00", "dossier_message", 60, online_dossier=True)
        s.close(case, "2025-05-01T09:00", online_dossier_used=True)
    [cell] = figures(s.facts(), PeriodKind.YEAR)
    assert cell.tally.minutes == 442 * 60 + 10
    assert cell.row()["time_per_case"] == "14:15"
    assert cell.row()["dossier_time_per_case"] == "1:00"
    assert cell.row()["registration_time_per_case"] == "13:15"  # 24 670 / 31 = 795.8


def test_a_case_closed_on_new_years_eve_late_at_night_counts_in_the_dutch_year():
    s = Stream()
    case = s.case("2025-11-01T09:00", "2025-11-01T09:00")
    s.close(case, "2026-01-01T00:30", online_dossier_used=False)  # 23:30 UTC on 31 December
    [cell] = figures(s.facts(), PeriodKind.YEAR)
    assert cell.key.period == "2026"


def test_one_working_day_skips_the_weekend():
    assert one_working_day_after(at("2025-01-10T15:00")) == at("2025-01-13T15:00")  # Fri
    assert one_working_day_after(at("2025-01-08T09:00")) == at("2025-01-09T09:00")  # Wed
    assert one_working_day_after(at("2025-01-11T10:00")) == at("2025-01-14T00:00")  # Sat


def test_a_replay_in_another_topic_order_with_repeats_gives_the_same_figures():
    stream = two_cases()
    live = [c.row() for c in figures(stream.facts(), PeriodKind.MONTH, by=DIMENSIONS)]
    # A replay reads topic after topic: here learning's events first, then trajectory's,
    # and a relay that published some events twice.
    by_topic = sorted(stream.events, key=lambda e: e.destination().name != ENROLMENTS.name)
    replay = FactBook()
    for event in by_topic + stream.events[:7]:
        replay.record(event)

    rebuilt = [
        c.row() for c in figures(Facts.of(replay.documents), PeriodKind.MONTH, by=DIMENSIONS)
    ]
    assert rebuilt == live
    assert by_topic != stream.events
