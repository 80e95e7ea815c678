"""The projected facts the measures are computed from: plain data, read from documents.

Each class mirrors one fact collection of the projection. Measures never see events or the
database, only these, so a test can build them by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from ketenbus.contracts.values import ContactChannel

UNKNOWN = "unknown"
GENERAL_SOCIAL_WORK = "general_social_work"
DEBTS_MATERIAL = "debts_material"
# Published v1 events may still carry the work type "material_debt", from before the sector's
# form was followed (docs/analytics.md, "Material problems are not a work type"): such a case
# is a general social work case whose question is about money and debts.
LEGACY_MATERIAL_WORK_TYPE = "material_debt"


def _work_type_and_topic(work_type: str | None, topic: str | None) -> tuple[str | None, str | None]:
    if work_type == LEGACY_MATERIAL_WORK_TYPE:
        return GENERAL_SOCIAL_WORK, DEBTS_MATERIAL
    return work_type, topic


F = TypeVar("F")


def _from_doc(cls: type[F], doc: dict[str, Any]) -> F:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {("id" if k == "_id" else k): v for k, v in doc.items()}
    return cls(**{k: v for k, v in values.items() if k in names})


@dataclass
class Referral:
    id: str
    organisation_id: str = UNKNOWN
    client_ref: str | None = None
    municipality: str | None = None
    funder: str | None = None
    work_type: str | None = None
    postcode_area: str | None = None
    referrer_type: str | None = None
    topic: str | None = None
    crisis: bool = False
    duplicate: bool = False
    received_at: datetime | None = None
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = None
    waitlisted_at: datetime | None = None
    waitlist_exited_at: datetime | None = None

    def __post_init__(self) -> None:
        self.work_type, self.topic = _work_type_and_topic(self.work_type, self.topic)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Referral:
        return _from_doc(cls, doc)


@dataclass
class Case:
    """A help trajectory, which the sector counts as a case (casus) once it is closed."""

    id: str
    organisation_id: str = UNKNOWN
    client_ref: str | None = None
    referral_id: str | None = None
    funder: str = UNKNOWN
    work_type: str = UNKNOWN
    referrer_type: str | None = None
    topic: str | None = None
    postcode_area: str | None = None
    crisis: bool = False
    referred_at: datetime | None = None
    opened_at: datetime | None = None
    first_contact_at: datetime | None = None
    aftercare_started_at: datetime | None = None
    closed_at: datetime | None = None
    closure_reason: str | None = None
    online_dossier_used: bool = False
    phase: str | None = None
    debt_journey_phase: int | None = None

    def __post_init__(self) -> None:
        work_type, self.topic = _work_type_and_topic(self.work_type, self.topic)
        self.work_type = work_type or UNKNOWN

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Case:
        return _from_doc(cls, doc)


@dataclass
class Appointment:
    id: str
    trajectory_id: str
    organisation_id: str = UNKNOWN
    kind: str = "follow_up"
    modality: str | None = None
    starts_at: datetime | None = None
    rescheduled_starts_at: datetime | None = None
    held_at: datetime | None = None
    duration_minutes: int | None = None
    scheduled_at: datetime | None = None
    attended_at: datetime | None = None
    missed_at: datetime | None = None
    cancelled_at: datetime | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Appointment:
        return _from_doc(cls, doc)

    @property
    def outcome(self) -> str | None:
        """attended or missed; a later registration corrects an earlier one."""
        if self.attended_at and (self.missed_at is None or self.attended_at >= self.missed_at):
            return "attended"
        if self.missed_at:
            return "missed"
        return None

    @property
    def moment(self) -> datetime | None:
        return self.held_at or self.rescheduled_starts_at or self.starts_at


@dataclass
class Contact:
    id: str
    trajectory_id: str
    channel: str
    minutes: int
    occurred_at: datetime
    organisation_id: str = UNKNOWN
    direction: str = "both"
    default_duration: bool = False
    online_dossier: bool = False
    replaces_face_to_face: bool = False

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Contact:
        return _from_doc(cls, doc)

    @property
    def online(self) -> bool:
        return ContactChannel(self.channel).online


@dataclass
class Enrolment:
    id: str
    organisation_id: str = UNKNOWN
    client_ref: str | None = None
    module_id: str | None = None
    trajectory_id: str | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    self_enrolled: bool = False
    steps_completed: int = 0
    steps_total: int | None = None
    completed_at: datetime | None = None
    abandoned_at: datetime | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Enrolment:
        return _from_doc(cls, doc)


@dataclass
class HandOff:
    id: str
    trajectory_id: str | None = None
    organisation_id: str = UNKNOWN
    partner_organisation_id: str | None = None
    requested_at: datetime | None = None
    last_outcome_at: datetime | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> HandOff:
        return _from_doc(cls, doc)


@dataclass
class Signal:
    """An early-warning signal as far as the figures need it: nothing about who."""

    id: str
    organisation_id: str = UNKNOWN
    municipality: str | None = None
    creditor_kind: str | None = None
    end_of_supply: bool = False
    received_at: datetime | None = None
    outreach_due_by: datetime | None = None
    attempts: int = 0
    first_outreach_at: datetime | None = None
    reached_at: datetime | None = None
    overdue_flagged_at: datetime | None = None
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    referral_id: str | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Signal:
        return _from_doc(cls, doc)


@dataclass
class Facts:
    """Everything known about one or more organisations."""

    referrals: list[Referral] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    enrolments: list[Enrolment] = field(default_factory=list)
    handoffs: list[HandOff] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)

    @classmethod
    def of(cls, documents: Callable[[str], Iterable[dict[str, Any]]]) -> Facts:
        """Facts from the documents of each collection (a store's or a FactBook's)."""
        return cls(
            referrals=[Referral.of(d) for d in documents("referrals")],
            cases=[Case.of(d) for d in documents("cases")],
            appointments=[Appointment.of(d) for d in documents("appointments")],
            contacts=[Contact.of(d) for d in documents("contacts")],
            enrolments=[Enrolment.of(d) for d in documents("enrolments")],
            handoffs=[HandOff.of(d) for d in documents("handoffs")],
            signals=[Signal.of(d) for d in documents("signals")],
        )
