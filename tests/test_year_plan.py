"""The simulated year's plan, without servers: rows a social worker recognises (working
hours, the sector's magnitudes), each waiting only for rows that exist, and the simulation's
decisions on the chain's answers taken on status and code, never on the wording."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import mean
from zoneinfo import ZoneInfo

import httpx

from ketenbus.devstack.chain_client import ChainError
from ketenbus.devstack.working_hours import within_working_hours
from ketenbus.devstack.year_actions import ALONGSIDE, Kind, appointment_slots, plan_actions
from ketenbus.devstack.year_scenario import plan_year

START = datetime(2025, 1, 1, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
YEAR = plan_year(START, 365, 200, seed=2025)
HELPED = [c for c in YEAR if c.organisation is not None]


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


def test_a_short_year_still_sees_every_change_of_mind_and_a_declined_hand_off():
    short = plan_year(START, 30, 24, seed=7)
    end = START + timedelta(days=30 * 0.85)
    assert any(c.withdraws_consent for c in short)
    assert any(c.opts_out_at and c.referred_at + c.opts_out_at < end for c in short)
    assert any(c.erases and c.referred_at + c.closes_after < end for c in short)
    assert any(c.partner and not c.partner.accepts for c in short)
    assert any(c.partner and c.partner.accepts for c in short)


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
