"""The simulated year's plan, without servers: rows a social worker recognises (working
hours, the sector's magnitudes), each waiting only for rows that exist, and the simulation's
decisions on the chain's answers taken on status and code, never on the wording."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from statistics import mean
from zoneinfo import ZoneInfo

import httpx

from ketenbus.devstack.chain_client import ChainError
from ketenbus.devstack.working_hours import within_working_hours
from ketenbus.devstack.year_actions import (
    ALONGSIDE,
    Kind,
    appointment_slots,
    plan_actions,
    signal_actions,
)
from ketenbus.devstack.year_scenario import REFERRER_MIX, Client, plan_year

START = datetime(2025, 1, 1, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
YEAR = plan_year(START, 365, 200, seed=2025)
HELPED = [c for c in YEAR if c.organisation is not None and c.referred]
SIGNALLED = [c for c in YEAR if c.signal is not None]
# The shortened year tests/test_demo_year.py plays: a month from 1 March.
SHORT_START = datetime(2025, 3, 1, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
SHORT = plan_year(SHORT_START, 30, 24, seed=96)


def outcome(client: Client) -> str:
    signal = client.signal
    assert signal is not None
    if not signal.outreach:
        return "forgotten"
    if signal.accepts is None:
        return "not_reached"
    return "accepted" if signal.accepts else "declined"


def test_every_appointment_is_in_working_hours_on_a_working_day():
    slots = [s for c in HELPED for s in appointment_slots(c, c.referred_at)]
    assert len(slots) > 1000
    assert [s for s in slots if not within_working_hours(s)] == []


def test_each_row_waits_only_for_rows_of_its_journey_and_closing_comes_last():
    for client in HELPED:
        rows = plan_actions(client, client.referred_at, timedelta(days=1))
        keys = {row.key for row in rows}
        assert len(keys) == len(rows), client.number  # one row per key
        assert all(need in keys for row in rows for need in row.after), client.number
        close = next(row for row in rows if row.kind is Kind.CLOSE)
        for row in rows:
            if row.kind not in ALONGSIDE and row.kind not in (Kind.CLOSE, Kind.ERASE):
                assert row.moment < close.moment and row.key in close.after, (client, row)


def test_magnitudes_in_the_sectors_ranges():
    """DOMAIN.md: general social work about 8-14 h per closed case and 125-175 days lead
    time; the online dossier in roughly 4-25 % of cases."""
    guided = [c for c in HELPED if c.closure_reason != "no_contact"]
    lead_days = mean(c.closes_after / timedelta(days=1) for c in guided)
    assert 125 <= lead_days <= 175, lead_days
    hours = [
        (
            sum(a.minutes + a.paperwork for a in c.appointments if a.attended)
            + sum(m.minutes + 5 for m in c.messages)
            + sum(h.minutes for h in c.homework)
        )
        / 60
        for c in guided
    ]
    assert 8 <= mean(hours) <= 14, mean(hours)
    blended = sum(c.blended for c in HELPED) / len(HELPED)
    assert 0.04 <= blended <= 0.25, blended


def test_early_warning_signals_come_from_creditors_and_only_an_accepted_one_is_referred():
    """About the share of the year's residents the early-warning referrals had; reached out
    to within days, in working hours; most of those reached accept help."""
    share = len(SIGNALLED) / len(YEAR)
    assert REFERRER_MIX["early_warning"] / 2 <= share <= REFERRER_MIX["early_warning"] * 1.5
    assert all(c.organisation is not None for c in SIGNALLED)  # residents of the region only
    assert {c.signal.creditor_kind for c in SIGNALLED if c.signal} >= {"housing", "energy"}
    outcomes = [outcome(c) for c in SIGNALLED]
    assert set(outcomes) == {"forgotten", "not_reached", "accepted", "declined"}
    assert outcomes.count("accepted") > outcomes.count("declined")
    waits = [
        (c.signal.outreach[0].at - c.signal.sent_at) / timedelta(days=1)
        for c in SIGNALLED
        if c.signal and c.signal.outreach
    ]
    assert 2 <= mean(waits) <= 7 and max(waits) < 14, waits  # the window is 14 days
    for client in SIGNALLED:
        assert client.signal is not None
        attempts = client.signal.outreach
        assert all(within_working_hours(a.at, evening=False) for a in attempts)
        assert 0 <= len(attempts) <= 3 and sum(a.reached for a in attempts) <= 1
        assert client.referred == (outcome(client) == "accepted")
        if client.referred:  # referred when they accept, with their help to follow
            assert client.referred_at == client.signal.answered_at
            assert client.referrer_type == "early_warning" and client.topic == "debts_material"
        # Each row waits for the one before: the signal, the attempts, the answer.
        rows = signal_actions(client)
        assert rows[0].kind is Kind.SIGNAL and rows[0].moment == client.signal.sent_at
        assert [r.after for r in rows[1:]] == [(r.key,) for r in rows[:-1]]
        assert (rows[-1].kind is Kind.SIGNAL_ANSWER) == (client.signal.answered_at is not None)


def test_no_two_residents_of_a_regions_year_are_one_person_to_intake():
    """Intake knows a person by name and date of birth: two residents alike in both would be
    one person referred twice, linked to the first referral (a region-sized demo once counted
    a waitlisting the chain rightly did not make)."""
    region = plan_year(START, 365, 3_000, seed=2025)
    rng = random.Random(7)
    born = [client.person(rng)["date_of_birth"] for client in region]
    assert len(set(born)) == len(region) == 3_000


def test_a_short_year_still_sees_every_change_of_mind_and_a_declined_hand_off():
    short = [c for c in SHORT if c.referred]
    end = SHORT_START + timedelta(days=30 * 0.85)
    assert any(c.withdraws_consent for c in short)
    assert any(c.opts_out_at and c.referred_at + c.opts_out_at < end for c in short)
    assert any(c.erases and c.referred_at + c.closes_after < end for c in short)
    assert any(c.partner and not c.partner.accepts for c in short)
    assert any(c.partner and c.partner.accepts for c in short)


def test_a_short_year_sees_every_outcome_of_a_signal_in_time():
    """One never followed up, its window (14 days) passed well before the year ends; one
    accepted and one declined."""
    short = [c for c in SHORT if c.signal is not None]
    end = SHORT_START + timedelta(days=30)
    by_outcome = {outcome(c): c for c in sorted(short, key=lambda c: c.arrives_at, reverse=True)}
    forgotten = by_outcome["forgotten"]
    assert forgotten.arrives_at + timedelta(days=14) < end - timedelta(days=3)
    for answered in ("accepted", "declined"):
        signal = by_outcome[answered].signal
        assert signal is not None and signal.answered_at is not None
        assert signal.answered_at < end - timedelta(days=3)


def _error(status: int, body: object) -> ChainError:
    return ChainError.of("POST trajectory/x", httpx.Response(status, json=body))


def test_the_simulation_decides_on_status_and_code_never_on_the_words():
    unavailable = _error(503, {"detail": "anything at all", "code": "unavailable"})
    assert unavailable.retryable and unavailable.status == 503
    no_consent = _error(409, {"detail": "reworded any day", "code": "no_consent"})
    assert no_consent.code == "no_consent" and not no_consent.retryable
    # A service's "no such thing" is not a missing route; the framework's bare 404 is.
    assert not _error(404, {"detail": "no enrolment x", "code": "not_found"}).missing_route
    assert _error(404, {"detail": "Not Found"}).missing_route
    assert _error(405, {"detail": "Method Not Allowed"}).missing_route
    assert ChainError.of("GET x", httpx.Response(500, text="oops")).code is None
