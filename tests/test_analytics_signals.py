"""The early-warning figures from a hand-built event stream, every figure computed by hand:
signals received, residents reached, help accepted and declined, overdue, and the mean days
to the first outreach, per organisation and period. No servers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ketenbus.analytics import labels
from ketenbus.analytics.facts import Facts
from ketenbus.analytics.periods import PeriodKind
from ketenbus.analytics.projection import FactBook
from ketenbus.analytics.rebuild import ReplayBook
from ketenbus.analytics.signals import COLUMNS, signal_figures
from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    SignalDataDeleted,
    SignalDeletionReason,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
)
from ketenbus.contracts.values import CreditorKind, Language, OutreachMethod, new_id

UTRECHT, AMERSFOORT = "welzijn-utrecht", "welzijn-amersfoort"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Stream:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def received(self, when: str, organisation: str = UTRECHT) -> tuple[str, str]:
        signal_id = new_id("sig")
        self.events.append(
            SignalReceived(
                signal_id=signal_id,
                organisation_id=organisation,
                municipality="Utrecht",
                creditor_organisation_id="woonstichting-domstad",
                creditor_kind=CreditorKind.HOUSING,
                signal_date=date(2026, 1, 1),
                received_at=at(when),
                outreach_due_by=at(when) + timedelta(days=14),
            )
        )
        return signal_id, organisation

    def outreach(self, signal: tuple[str, str], number: int, when: str, reached: bool) -> None:
        self.events.append(
            SignalOutreachAttempted(
                signal_id=signal[0],
                organisation_id=signal[1],
                attempt=number,
                method=OutreachMethod.PHONE,
                reached=reached,
                attempted_at=at(when),
                recorded_by="mw.utrecht",
            )
        )

    def accepted(self, signal: tuple[str, str], when: str) -> None:
        self.events.append(
            SignalHelpAccepted(
                signal_id=signal[0],
                organisation_id=signal[1],
                referral_id=new_id("ref"),
                accepted_at=at(when),
            )
        )

    def declined(self, signal: tuple[str, str], when: str) -> None:
        self.events.append(
            SignalHelpDeclined(signal_id=signal[0], organisation_id=signal[1], declined_at=at(when))
        )

    def overdue(self, signal: tuple[str, str], received: str, when: str) -> None:
        self.events.append(
            SignalOutreachOverdue(
                signal_id=signal[0],
                organisation_id=signal[1],
                received_at=at(received),
                outreach_due_by=at(received) + timedelta(days=14),
                flagged_at=at(when),
            )
        )

    def deleted(self, signal: tuple[str, str], when: str) -> None:
        self.events.append(
            SignalDataDeleted(
                signal_id=signal[0],
                organisation_id=signal[1],
                reason=SignalDeletionReason.RETENTION_EXPIRED,
                deleted_at=at(when),
            )
        )


def hand_built() -> Stream:
    s = Stream()
    # January, Utrecht: reached on the second try (first outreach after 2 days), accepted.
    one = s.received("2026-01-05T09:00")
    s.outreach(one, 1, "2026-01-07T09:00", reached=False)
    s.outreach(one, 2, "2026-01-09T09:00", reached=True)
    s.accepted(one, "2026-01-09T09:30")
    # Reached at a home visit after 6 days, declined; its data deleted six months on.
    two = s.received("2026-01-20T10:00")
    s.outreach(two, 1, "2026-01-26T10:00", reached=True)
    s.declined(two, "2026-01-26T10:30")
    s.deleted(two, "2026-07-20T10:00")
    # February: nobody reached out within the window.
    three = s.received("2026-02-03T08:00")
    s.overdue(three, "2026-02-03T08:00", "2026-02-17T08:00")
    # A call at midnight (0.5 day), then a letter of that afternoon recorded afterwards:
    # the first outreach is the letter, 0.2 day (4 h 48 min) after the signal.
    four = s.received("2026-02-10T12:00")
    s.outreach(four, 1, "2026-02-11T00:00", reached=False)
    s.outreach(four, 2, "2026-02-10T16:48", reached=False)
    # Another organisation: never in Utrecht's figures.
    five = s.received("2026-01-15T09:00", AMERSFOORT)
    s.outreach(five, 1, "2026-01-16T09:00", reached=True)
    s.accepted(five, "2026-01-16T09:10")
    return s


def facts_of(stream: Stream) -> Facts:
    book = FactBook()
    for event in stream.events:
        book.record(event)
    return Facts.of(book.documents)


def test_the_figures_per_month_computed_by_hand():
    rows = [row.as_dict() for row in signal_figures(facts_of(hand_built()), PeriodKind.MONTH)]
    assert rows == [
        {
            "organisation": AMERSFOORT,
            "period": "2026-01",
            "signals_received": 1,
            "residents_reached": 1,
            "help_accepted": 1,
            "help_declined": 0,
            "outreach_overdue": 0,
            "days_to_first_outreach": 1.0,
        },
        {
            "organisation": UTRECHT,
            "period": "2026-01",
            "signals_received": 2,
            "residents_reached": 2,
            "help_accepted": 1,
            "help_declined": 1,
            "outreach_overdue": 0,
            "days_to_first_outreach": 4.0,  # (2 + 6) / 2
        },
        {
            "organisation": UTRECHT,
            "period": "2026-02",
            "signals_received": 2,
            "residents_reached": 0,
            "help_accepted": 0,
            "help_declined": 0,
            "outreach_overdue": 1,
            "days_to_first_outreach": 0.2,  # only the one with outreach: the letter
        },
    ]


def test_the_quarter_holds_both_months_and_the_mean_over_every_first_outreach():
    rows = signal_figures(facts_of(hand_built()), PeriodKind.QUARTER)
    [utrecht] = [r for r in rows if r.organisation == UTRECHT]
    assert utrecht.period == "2026-Q1"
    assert (utrecht.signals_received, utrecht.residents_reached) == (4, 2)
    assert (utrecht.help_accepted, utrecht.help_declined, utrecht.outreach_overdue) == (1, 1, 1)
    assert utrecht.days_to_first_outreach == 2.7  # (2 + 6 + 0.2) / 3 = 2.73


def test_a_replay_in_another_order_gives_the_same_figures():
    """Topics are replayed in no fixed order between them: within one signal's partition the
    order holds, and the earliest outreach is kept whatever order its attempts come in."""
    stream = hand_built()
    replay = ReplayBook()
    for event in reversed(stream.events):
        replay.project(event)
    replayed = signal_figures(Facts.of(replay.documents), PeriodKind.MONTH)
    assert [r.as_dict() for r in replayed] == [
        r.as_dict() for r in signal_figures(facts_of(stream), PeriodKind.MONTH)
    ]


def test_every_column_has_its_words_in_both_languages():
    for language in Language:
        assert set(labels.column_labels(COLUMNS, language)) == set(COLUMNS)
