"""Events trajectory owns: the help trajectory from opening to aftercare.

Goals, notes and plans stay in trajectory's own store; the bus carries only what other
services need to count, remind or hand off.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import TRAJECTORIES, Topic, partner_outbound
from ketenbus.contracts.values import (
    AppointmentId,
    AppointmentKind,
    ClientRef,
    ClosureReason,
    ConsentId,
    ContactChannel,
    ContactDirection,
    ContactId,
    EnrolmentId,
    Language,
    Minutes,
    Modality,
    ModuleId,
    Municipality,
    OrganisationId,
    PartnerReferralId,
    Phase,
    PostcodeArea,
    ReferralId,
    ReferralTopic,
    ReferrerType,
    Sealed,
    ShortText,
    StepId,
    SubmissionId,
    TrajectoryId,
    WorkerId,
    WorkType,
)

DebtJourneyPhase = Annotated[int, Field(ge=1, le=5)]


class WithdrawalReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CLIENT_ERASED = "client_erased"


class _TrajectoryEvent(Event):
    owner: ClassVar[str] = "trajectory"
    stream: ClassVar[Topic | None] = TRAJECTORIES


class TrajectoryOpened(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    referral_id: ReferralId
    organisation_id: OrganisationId
    funder: Municipality
    work_type: WorkType
    referrer_type: ReferrerType
    topic: ReferralTopic
    postcode_area: PostcodeArea
    crisis: bool
    referred_at: AwareDatetime
    opened_at: AwareDatetime


class TrajectoryPhaseChanged(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    phase: Phase
    # Internal label only (klantreis schulden 1-5), never shown to clients.
    debt_journey_phase: DebtJourneyPhase | None = None
    changed_at: AwareDatetime


class _AppointmentEvent(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    appointment_id: AppointmentId
    kind: AppointmentKind


class AppointmentScheduled(_AppointmentEvent):
    starts_at: AwareDatetime
    duration_minutes: Minutes
    modality: Modality
    worker_id: WorkerId
    scheduled_at: AwareDatetime


class AppointmentRescheduled(_AppointmentEvent):
    starts_at: AwareDatetime
    previous_starts_at: AwareDatetime
    modality: Modality
    rescheduled_at: AwareDatetime


class AppointmentCancelled(_AppointmentEvent):
    starts_at: AwareDatetime
    cancelled_at: AwareDatetime


class AppointmentAttended(_AppointmentEvent):
    starts_at: AwareDatetime
    modality: Modality
    registered_at: AwareDatetime


class AppointmentMissed(_AppointmentEvent):
    """The client did not come. This starts support, never closure."""

    starts_at: AwareDatetime
    worker_id: WorkerId
    registered_at: AwareDatetime


class AppointmentRegistrationOverdue(_AppointmentEvent):
    """Nobody registered attended or missed within the grace period: remind the worker."""

    starts_at: AwareDatetime
    worker_id: WorkerId
    overdue_since: AwareDatetime


class ContactRegistered(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    contact_id: ContactId
    channel: ContactChannel
    direction: ContactDirection = ContactDirection.BOTH
    minutes: Minutes
    # The minutes are the registered default, not measured: the figures must show that.
    default_duration: bool = False
    online_dossier: bool = False
    replaces_face_to_face: bool = False
    occurred_at: AwareDatetime


class ModuleAssigned(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    enrolment_id: EnrolmentId
    module_id: ModuleId
    language: Language
    assigned_at: AwareDatetime


class HomeworkFeedbackGiven(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    enrolment_id: EnrolmentId
    submission_id: SubmissionId
    step_id: StepId
    # The worker's words are case content: sealed, readable only where the client reads them.
    feedback: Sealed
    given_at: AwareDatetime


class ModuleProgressRecorded(_TrajectoryEvent):
    """Trajectory has put a completed module in the client's dossier."""

    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    enrolment_id: EnrolmentId
    module_id: ModuleId
    recorded_at: AwareDatetime


class PartnerReferralRequested(Event):
    """Hand-off to debt counselling, on the partner's own topic, with the consented minimum."""

    owner: ClassVar[str] = "trajectory"

    partner_referral_id: PartnerReferralId
    partner_organisation_id: OrganisationId
    referring_organisation_id: OrganisationId
    consent_id: ConsentId
    postcode_area: PostcodeArea
    crisis: bool
    # Name and phone, sealed with the key this partner shares with the chain.
    client_contact: Sealed
    requested_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.partner_referral_id

    def destination(self) -> Topic:
        return partner_outbound(self.partner_organisation_id)


class PartnerReferralWithdrawn(Event):
    """The hand-off ends from our side (consent withdrawn, erasure): stop and forget the contact."""

    owner: ClassVar[str] = "trajectory"

    partner_referral_id: PartnerReferralId
    partner_organisation_id: OrganisationId
    referring_organisation_id: OrganisationId
    reason: WithdrawalReason
    withdrawn_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.partner_referral_id

    def destination(self) -> Topic:
        return partner_outbound(self.partner_organisation_id)


class PartnerReferralRecorded(_TrajectoryEvent):
    """The hand-off as the chain sees it, on the trajectory stream, for counting."""

    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    partner_referral_id: PartnerReferralId
    partner_organisation_id: OrganisationId
    requested_at: AwareDatetime


class PartnerOutcomeRecorded(_TrajectoryEvent):
    """A partner's answer or progress, as recorded in the trajectory."""

    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    partner_referral_id: PartnerReferralId
    partner_organisation_id: OrganisationId
    status: ShortText
    recorded_at: AwareDatetime


class AftercareStarted(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    started_at: AwareDatetime


class TrajectoryClosed(_TrajectoryEvent):
    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    referral_id: ReferralId
    reason: ClosureReason
    online_dossier_used: bool
    closed_at: AwareDatetime


class FirstContactMade(_TrajectoryEvent):
    """The first attended appointment or contact: closes the referrer's waiting time."""

    trajectory_id: TrajectoryId
    client_ref: ClientRef
    organisation_id: OrganisationId
    referral_id: ReferralId
    occurred_at: AwareDatetime


__all__ = [
    "AftercareStarted",
    "AppointmentAttended",
    "AppointmentCancelled",
    "AppointmentMissed",
    "AppointmentRegistrationOverdue",
    "AppointmentRescheduled",
    "AppointmentScheduled",
    "ContactRegistered",
    "FirstContactMade",
    "HomeworkFeedbackGiven",
    "ModuleAssigned",
    "ModuleProgressRecorded",
    "PartnerOutcomeRecorded",
    "PartnerReferralRecorded",
    "PartnerReferralRequested",
    "PartnerReferralWithdrawn",
    "TrajectoryClosed",
    "TrajectoryOpened",
    "TrajectoryPhaseChanged",
    "WithdrawalReason",
]
