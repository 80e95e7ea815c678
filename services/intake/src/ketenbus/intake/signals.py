"""The early-warning signal (vroegsignalering): arrears reported by a creditor, the serving
organisation's outreach, and the resident's answer. Plain Python, no I/O.

A signal is not a referral. Nobody consented to it: the law (Wgs) lets the creditor report
and obliges the municipality to offer help. Only a resident who accepts becomes a referral,
with consent, through the referral's own reception (api_signals.py).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

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
from ketenbus.contracts.values import CreditorKind, OutreachMethod, new_id
from ketenbus.intake.regions import Region
from ketenbus.kit.errors import DomainError


class SignalClosed(DomainError):
    status_code = 409


class SignalState(StrEnum):
    OPEN = "open"  # waiting for outreach or for the resident's answer
    ACCEPTED = "accepted"  # the resident accepted help: a referral was made
    DECLINED = "declined"  # the resident declined help


@dataclass(frozen=True)
class OutreachWindows:
    """How soon after a signal the organisation must have tried to reach the resident."""

    usual: timedelta
    # A signal with an end-of-supply notice: supply ends in 20 working days, act sooner.
    end_of_supply: timedelta

    def due_by(self, received_at: datetime, end_of_supply_on: date | None) -> datetime:
        window = self.usual if end_of_supply_on is None else self.end_of_supply
        return received_at + window


def months_after(moment: datetime, months: int) -> datetime:
    """The same day `months` calendar months later (the last day of a shorter month)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass
class OutreachAttempt:
    number: int
    method: OutreachMethod
    reached: bool
    attempted_at: datetime
    recorded_by: str


@dataclass
class Signal:
    id: str
    organisation_id: str
    municipality: str
    creditor_organisation_id: str
    creditor_kind: CreditorKind
    signal_date: date
    received_at: datetime
    outreach_due_by: datetime
    end_of_supply_on: date | None = None
    state: SignalState = SignalState.OPEN
    attempts: list[OutreachAttempt] = field(default_factory=list)
    overdue_flagged_at: datetime | None = None
    answered_at: datetime | None = None
    referral_id: str | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def receive(
        cls,
        *,
        region: Region,
        creditor_organisation_id: str,
        creditor_kind: CreditorKind,
        signal_date: date,
        end_of_supply_on: date | None,
        windows: OutreachWindows,
        at: datetime,
        signal_id: str | None = None,
    ) -> Signal:
        if end_of_supply_on is not None and creditor_kind is not CreditorKind.ENERGY:
            raise DomainError("only an energy supplier gives an end-of-supply notice")
        signal = cls(
            id=signal_id or new_id("sig"),
            organisation_id=region.organisation_id,
            municipality=region.municipality,
            creditor_organisation_id=creditor_organisation_id,
            creditor_kind=creditor_kind,
            signal_date=signal_date,
            end_of_supply_on=end_of_supply_on,
            received_at=at,
            outreach_due_by=windows.due_by(at, end_of_supply_on),
        )
        signal._record(
            SignalReceived,
            municipality=signal.municipality,
            creditor_organisation_id=creditor_organisation_id,
            creditor_kind=creditor_kind,
            signal_date=signal_date,
            end_of_supply_on=end_of_supply_on,
            received_at=at,
            outreach_due_by=signal.outreach_due_by,
        )
        return signal

    @property
    def first_outreach_at(self) -> datetime | None:
        return min((a.attempted_at for a in self.attempts), default=None)

    @property
    def reached(self) -> bool:
        return any(a.reached for a in self.attempts)

    @property
    def overdue(self) -> bool:
        return self.overdue_flagged_at is not None

    def record_outreach(
        self, method: OutreachMethod, reached: bool, attempted_at: datetime, recorded_by: str
    ) -> OutreachAttempt:
        self._ensure_open("no more outreach is recorded")
        if attempted_at < self.received_at:
            raise DomainError("an outreach attempt cannot come before the signal arrived")
        attempt = OutreachAttempt(
            len(self.attempts) + 1, method, reached, attempted_at, recorded_by
        )
        self.attempts.append(attempt)
        self._record(
            SignalOutreachAttempted,
            attempt=attempt.number,
            method=method,
            reached=reached,
            attempted_at=attempted_at,
            recorded_by=recorded_by,
        )
        return attempt

    def flag_if_overdue(self, now: datetime) -> bool:
        """Flagged once, when the window passed without any outreach. True if flagged now."""
        if self.overdue or self.attempts or self.state is not SignalState.OPEN:
            return False
        if now < self.outreach_due_by:
            return False
        self.overdue_flagged_at = now
        self._record(
            SignalOutreachOverdue,
            received_at=self.received_at,
            outreach_due_by=self.outreach_due_by,
            flagged_at=now,
        )
        return True

    def accept(self, referral_id: str, at: datetime) -> None:
        self._ensure_answerable()
        self.state, self.answered_at, self.referral_id = SignalState.ACCEPTED, at, referral_id
        self._record(SignalHelpAccepted, referral_id=referral_id, accepted_at=at)

    def decline(self, at: datetime) -> None:
        self._ensure_answerable()
        self.state, self.answered_at = SignalState.DECLINED, at
        self._record(SignalHelpDeclined, declined_at=at)

    def delete_data(self, reason: SignalDeletionReason, at: datetime) -> None:
        """What happened is kept in the events; who it was about goes (the store deletes)."""
        self._record(SignalDataDeleted, reason=reason, deleted_at=at)

    def expires_at(self, retention_months: int) -> datetime:
        return months_after(self.received_at, retention_months)

    def _ensure_answerable(self) -> None:
        self._ensure_open("it was answered already")
        if not self.reached:
            raise DomainError("record the outreach that reached the resident before their answer")

    def _ensure_open(self, consequence: str) -> None:
        if self.state is not SignalState.OPEN:
            raise SignalClosed(f"signal {self.id} is {self.state}: {consequence}")

    def _record(self, event_type: type[Event], **facts: Any) -> None:
        """Every event of a signal names the signal and the organisation that serves it."""
        self.events.append(
            event_type(signal_id=self.id, organisation_id=self.organisation_id, **facts)
        )
