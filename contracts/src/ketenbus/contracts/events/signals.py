"""Events of the early-warning signals (vroegsignalering), owned by intake.

A signal is not a referral: a creditor reports arrears, the serving organisation reaches out,
and only a resident who accepts help becomes a referral (with consent, through the referral's
own events). These events carry nothing that points to a person: no name, no address, no
postcode, no amount, no customer number. The subject (the Kafka key) is the signal's random
id, so one signal's events stay in order.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import SIGNALS, Topic
from ketenbus.contracts.values import (
    CreditorKind,
    Municipality,
    OrganisationId,
    OutreachMethod,
    ReferralId,
    SignalId,
    WorkerId,
)


class _SignalEvent(Event):
    owner: ClassVar[str] = "intake"
    stream: ClassVar[Topic | None] = SIGNALS

    signal_id: SignalId
    # The organisation that serves the resident's postcode and reaches out.
    organisation_id: OrganisationId

    @property
    def subject(self) -> str:
        return self.signal_id


class SignalReceived(_SignalEvent):
    """A creditor's signal arrived and was routed: the organisation is to reach out by
    `outreach_due_by`."""

    municipality: Municipality
    creditor_organisation_id: OrganisationId
    creditor_kind: CreditorKind
    signal_date: date
    # Energy only: the day supply ends unless the arrears are dealt with.
    end_of_supply_on: date | None = None
    received_at: AwareDatetime
    outreach_due_by: AwareDatetime


class SignalOutreachAttempted(_SignalEvent):
    """One attempt to reach the resident: a letter, a call, a home visit."""

    attempt: int = Field(ge=1)
    method: OutreachMethod
    reached: bool
    attempted_at: AwareDatetime
    recorded_by: WorkerId


class SignalOutreachOverdue(_SignalEvent):
    """No outreach within the window after the signal: the organisation is behind."""

    received_at: AwareDatetime
    outreach_due_by: AwareDatetime
    flagged_at: AwareDatetime


class SignalHelpAccepted(_SignalEvent):
    """The resident accepts help: from here on it is a referral with consent."""

    referral_id: ReferralId
    accepted_at: AwareDatetime


class SignalHelpDeclined(_SignalEvent):
    """The resident declines help: the signal is closed."""

    declined_at: AwareDatetime


class SignalDeletionReason(StrEnum):
    RETENTION_EXPIRED = "retention_expired"  # six months after the signal arrived
    ERASURE_REQUESTED = "erasure_requested"


class SignalDataDeleted(_SignalEvent):
    """Intake deleted the signal's details (who, where, how much): after six months, or when
    the resident asked. Its events stay: they say nothing about who it was."""

    reason: SignalDeletionReason
    deleted_at: AwareDatetime
