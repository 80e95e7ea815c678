"""The early-warning signal's rules, without servers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ketenbus.contracts.events import (
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
)
from ketenbus.contracts.values import CreditorKind, OutreachMethod, WorkType, new_id
from ketenbus.intake.regions import Region
from ketenbus.intake.signals import (
    OutreachWindows,
    Signal,
    SignalClosed,
    SignalState,
    months_after,
)
from ketenbus.kit.errors import DomainError

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UTRECHT = Region(3500, 3585, "Utrecht", "welzijn-utrecht", WorkType.GENERAL, "schuldhulp-midden")
WINDOWS = OutreachWindows(usual=timedelta(days=14), end_of_supply=timedelta(days=3))


def signal(kind: CreditorKind = CreditorKind.HOUSING, end_of_supply: date | None = None) -> Signal:
    return Signal.receive(
        region=UTRECHT,
        creditor_organisation_id="woonstichting-domstad",
        creditor_kind=kind,
        signal_date=date(2026, 3, 1),
        end_of_supply_on=end_of_supply,
        windows=WINDOWS,
        at=NOW,
    )


def test_a_signal_is_routed_and_the_organisation_asked_to_reach_out_within_the_window():
    received = signal()
    assert received.organisation_id == "welzijn-utrecht"
    [event] = received.events
    assert isinstance(event, SignalReceived)
    assert event.outreach_due_by == NOW + timedelta(days=14)
    assert event.municipality == "Utrecht"


def test_an_end_of_supply_notice_shortens_the_window_and_only_energy_gives_one():
    energy = signal(CreditorKind.ENERGY, end_of_supply=date(2026, 3, 30))
    assert energy.outreach_due_by == NOW + timedelta(days=3)
    with pytest.raises(DomainError, match="energy"):
        signal(CreditorKind.WATER, end_of_supply=date(2026, 3, 30))


def test_the_window_passing_without_outreach_flags_the_signal_once():
    received = signal()
    assert not received.flag_if_overdue(NOW + timedelta(days=13, hours=23))
    assert received.flag_if_overdue(NOW + timedelta(days=14))
    assert not received.flag_if_overdue(NOW + timedelta(days=20))
    assert [type(e) for e in received.events].count(SignalOutreachOverdue) == 1
    assert received.overdue_flagged_at == NOW + timedelta(days=14)


def test_outreach_in_time_is_never_flagged():
    received = signal()
    received.record_outreach(OutreachMethod.LETTER, False, NOW + timedelta(days=2), "mw.utrecht")
    assert not received.flag_if_overdue(NOW + timedelta(days=30))
    assert received.first_outreach_at == NOW + timedelta(days=2)
    assert not received.reached


def test_an_answer_needs_an_attempt_that_reached_the_resident_and_comes_once():
    received = signal()
    received.record_outreach(OutreachMethod.LETTER, False, NOW + timedelta(days=1), "mw.utrecht")
    with pytest.raises(DomainError, match="reached"):
        received.decline(NOW + timedelta(days=2))
    received.record_outreach(OutreachMethod.PHONE, True, NOW + timedelta(days=3), "mw.utrecht")
    referral_id = new_id("ref")
    received.accept(referral_id, NOW + timedelta(days=3))
    assert received.state is SignalState.ACCEPTED and received.referral_id == referral_id
    with pytest.raises(SignalClosed):
        received.decline(NOW + timedelta(days=4))
    with pytest.raises(SignalClosed):
        received.record_outreach(OutreachMethod.HOME_VISIT, True, NOW, "mw.utrecht")
    kinds = [type(e) for e in received.events]
    assert kinds == [
        SignalReceived,
        SignalOutreachAttempted,
        SignalOutreachAttempted,
        SignalHelpAccepted,
    ]


def test_a_declined_signal_is_closed():
    received = signal()
    received.record_outreach(OutreachMethod.HOME_VISIT, True, NOW + timedelta(days=5), "mw.u")
    received.decline(NOW + timedelta(days=5))
    assert received.state is SignalState.DECLINED
    assert isinstance(received.events[-1], SignalHelpDeclined)


def test_an_attempt_before_the_signal_is_refused():
    with pytest.raises(DomainError, match="before"):
        signal().record_outreach(OutreachMethod.PHONE, True, NOW - timedelta(days=1), "mw.u")


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2026, 3, 2, tzinfo=UTC), 6, datetime(2026, 9, 2, tzinfo=UTC)),
        (datetime(2026, 8, 31, tzinfo=UTC), 6, datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2026, 3, 2, tzinfo=UTC), -6, datetime(2025, 9, 2, tzinfo=UTC)),
        (datetime(2026, 5, 31, tzinfo=UTC), -3, datetime(2026, 2, 28, tzinfo=UTC)),
    ],
)
def test_six_months_are_calendar_months(moment, months, expected):
    assert months_after(moment, months) == expected
