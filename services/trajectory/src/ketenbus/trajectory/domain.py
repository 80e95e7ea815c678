"""The help trajectory: opened on an accepted referral, guided through appointments,
contacts, modules and homework, handed in parallel to a debt-counselling partner, closed
with a reason, followed by aftercare.

Plain Python, no I/O. A missed appointment is support to offer, never a reason to close;
an appointment nobody registered is a reminder to the worker, never a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    AftercareStarted,
    AppointmentAttended,
    AppointmentCancelled,
    AppointmentMissed,
    AppointmentRegistrationOverdue,
    AppointmentRescheduled,
    AppointmentScheduled,
    ContactRegistered,
    FirstContactMade,
    HomeworkFeedbackGiven,
    ModuleAssigned,
    ModuleProgressRecorded,
    PartnerOutcomeRecorded,
    PartnerReferralRecorded,
    PartnerReferralRequested,
    PartnerReferralWithdrawn,
    ReferralAccepted,
    TrajectoryClosed,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
    WaitlistExited,
    WithdrawalReason,
)
from ketenbus.contracts.values import (
    AppointmentKind,
    ClosureReason,
    ContactChannel,
    ContactDirection,
    Language,
    Modality,
    Phase,
    ReferralTopic,
    ReferrerType,
    Sealed,
    WorkType,
    new_id,
)
from ketenbus.kit.errors import DomainError


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class NoConsent(DomainError):
    """The client has not consented to this hand-off (or withdrew it), or trajectory has
    not heard of the consent yet: a caller that just recorded it may ask again."""

    code = "no_consent"


class AppointmentStatus(StrEnum):
    SCHEDULED = "scheduled"
    ATTENDED = "attended"
    MISSED = "missed"
    CANCELLED = "cancelled"


@dataclass
class Appointment:
    id: str
    kind: AppointmentKind
    starts_at: datetime
    duration_minutes: int
    modality: Modality
    worker_id: str
    # The worker's own words: case content, stays here, forgotten on erasure.
    goal: str | None
    ends_at: datetime
    status: AppointmentStatus = AppointmentStatus.SCHEDULED
    # When the worker was reminded that attendance is still to be registered.
    overdue_reported_at: datetime | None = None

    def ensure_open(self) -> None:
        if self.status is not AppointmentStatus.SCHEDULED:
            raise DomainError(f"appointment {self.id} is already {self.status}")


@dataclass
class Contact:
    id: str
    channel: ContactChannel
    direction: ContactDirection
    minutes: int
    default_duration: bool
    online_dossier: bool
    replaces_face_to_face: bool
    occurred_at: datetime
    worker_id: str


@dataclass
class ModuleAssignment:
    enrolment_id: str
    module_id: str
    assigned_at: datetime
    completed_at: datetime | None = None


@dataclass
class Homework:
    """A client's homework answer: it stays in learning, the worker sees that it is there."""

    submission_id: str
    enrolment_id: str
    module_id: str
    step_id: str
    submitted_at: datetime
    feedback_given_at: datetime | None = None
    feedback_by: str | None = None


class HandOffStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


_OPEN_HAND_OFFS = frozenset({HandOffStatus.REQUESTED, HandOffStatus.ACCEPTED})


@dataclass
class PartnerReferral:
    """A hand-off to debt counselling. The partner takes the debts; the worker stays on."""

    id: str
    partner_organisation_id: str
    consent_id: str
    requested_at: datetime
    status: HandOffStatus = HandOffStatus.REQUESTED
    # The partner's last word: its progress or outcome, or why it declined.
    progress: str | None = None
    # Why the partner declined, in its words: for the worker, never put on the bus.
    reason: str | None = None
    updated_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status in _OPEN_HAND_OFFS


@dataclass(frozen=True)
class HandOffConsent:
    """What the client consented to share with a partner: the contact sealed for it alone."""

    consent_id: str
    partner_organisation_id: str
    contact: Sealed


@dataclass
class Trajectory:
    id: str
    client_ref: str
    referral_id: str
    organisation_id: str
    funder: str
    work_type: WorkType
    postcode_area: str
    crisis: bool
    opened_at: datetime
    phase: Phase = Phase.INTAKE
    # Internal label only (klantreis schulden 1-5), never shown to clients.
    debt_journey_phase: int | None = None
    appointments: list[Appointment] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    modules: list[ModuleAssignment] = field(default_factory=list)
    homework: list[Homework] = field(default_factory=list)
    partner_referrals: list[PartnerReferral] = field(default_factory=list)
    first_contact_at: datetime | None = None
    # A partner finished: a good moment for aftercare; the worker decides.
    aftercare_suggested: bool = False
    aftercare_started_at: datetime | None = None
    closed_at: datetime | None = None
    closure_reason: ClosureReason | None = None
    forgotten_at: datetime | None = None
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, referral: ReferralAccepted | WaitlistExited, at: datetime) -> Trajectory:
        trajectory = cls(
            id=new_id("trj"),
            client_ref=referral.client_ref,
            referral_id=referral.referral_id,
            organisation_id=referral.organisation_id,
            funder=referral.funder,
            work_type=referral.work_type,
            postcode_area=referral.postcode_area,
            crisis=referral.crisis,
            opened_at=at,
        )
        trajectory._record(
            TrajectoryOpened(
                trajectory_id=trajectory.id,
                client_ref=referral.client_ref,
                referral_id=referral.referral_id,
                organisation_id=referral.organisation_id,
                funder=referral.funder,
                work_type=referral.work_type,
                referrer_type=ReferrerType(referral.referrer_type),
                topic=ReferralTopic(referral.topic),
                postcode_area=referral.postcode_area,
                crisis=referral.crisis,
                referred_at=referral.received_at,
                opened_at=at,
            )
        )
        return trajectory

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    # ------------------------------------------------------------------ appointments

    def schedule(
        self,
        *,
        kind: AppointmentKind,
        starts_at: datetime,
        duration_minutes: int,
        modality: Modality,
        worker_id: str,
        goal: str | None,
        at: datetime,
    ) -> Appointment:
        self._ensure_open()
        appointment = Appointment(
            new_id("apt"),
            kind,
            starts_at,
            duration_minutes,
            modality,
            worker_id,
            goal,
            ends_at=starts_at + timedelta(minutes=duration_minutes),
        )
        self.appointments.append(appointment)
        self._record(
            AppointmentScheduled(
                **self._about(appointment),
                starts_at=starts_at,
                duration_minutes=duration_minutes,
                modality=modality,
                worker_id=worker_id,
                scheduled_at=at,
            )
        )
        return appointment

    def reschedule(
        self, appointment_id: str, starts_at: datetime, modality: Modality | None, at: datetime
    ) -> Appointment:
        self._ensure_open()
        appointment = self._appointment(appointment_id)
        appointment.ensure_open()
        previous = appointment.starts_at
        appointment.starts_at = starts_at
        appointment.ends_at = starts_at + timedelta(minutes=appointment.duration_minutes)
        appointment.modality = modality or appointment.modality
        appointment.overdue_reported_at = None
        self._record(
            AppointmentRescheduled(
                **self._about(appointment),
                starts_at=starts_at,
                previous_starts_at=previous,
                modality=appointment.modality,
                rescheduled_at=at,
            )
        )
        return appointment

    def cancel(self, appointment_id: str, at: datetime) -> None:
        appointment = self._appointment(appointment_id)
        appointment.ensure_open()
        appointment.status = AppointmentStatus.CANCELLED
        self._record(
            AppointmentCancelled(
                **self._about(appointment), starts_at=appointment.starts_at, cancelled_at=at
            )
        )

    def attend(self, appointment_id: str, at: datetime) -> None:
        appointment = self._appointment(appointment_id)
        appointment.ensure_open()
        appointment.status = AppointmentStatus.ATTENDED
        self._record(
            AppointmentAttended(
                **self._about(appointment),
                starts_at=appointment.starts_at,
                modality=appointment.modality,
                registered_at=at,
            )
        )
        self._first_contact(appointment.starts_at)

    def miss(self, appointment_id: str, registered_by: str, at: datetime) -> None:
        appointment = self._appointment(appointment_id)
        appointment.ensure_open()
        appointment.status = AppointmentStatus.MISSED
        self._record(
            AppointmentMissed(
                **self._about(appointment),
                starts_at=appointment.starts_at,
                worker_id=registered_by,
                registered_at=at,
            )
        )

    def remind_overdue(self, now: datetime, grace: timedelta) -> list[Appointment]:
        """Appointments over for longer than the grace period with nothing registered: the
        worker is reminded once each. They are never marked missed here: only the worker
        knows whether the client came."""
        overdue = [
            a
            for a in self.appointments
            if a.status is AppointmentStatus.SCHEDULED
            and a.overdue_reported_at is None
            and a.ends_at + grace <= now
        ]
        for appointment in overdue:
            appointment.overdue_reported_at = now
            self._record(
                AppointmentRegistrationOverdue(
                    **self._about(appointment),
                    starts_at=appointment.starts_at,
                    worker_id=appointment.worker_id,
                    overdue_since=appointment.ends_at + grace,
                )
            )
        return overdue

    # ------------------------------------------------------------------ contacts, phases

    def register_contact(
        self,
        *,
        channel: ContactChannel,
        direction: ContactDirection,
        minutes: int,
        default_duration: bool,
        online_dossier: bool,
        replaces_face_to_face: bool,
        occurred_at: datetime,
        worker_id: str,
    ) -> Contact:
        self._ensure_open()
        contact = Contact(
            new_id("con"),
            channel,
            direction,
            minutes,
            default_duration,
            online_dossier,
            replaces_face_to_face,
            occurred_at,
            worker_id,
        )
        self.contacts.append(contact)
        self._record(
            ContactRegistered(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                contact_id=contact.id,
                channel=channel,
                direction=direction,
                minutes=minutes,
                default_duration=default_duration,
                online_dossier=online_dossier,
                replaces_face_to_face=replaces_face_to_face,
                occurred_at=occurred_at,
            )
        )
        if direction is not ContactDirection.WORKER_TO_CLIENT:
            self._first_contact(occurred_at)  # the client answered or came: contact is made
        return contact

    def change_phase(self, phase: Phase, debt_journey_phase: int | None, at: datetime) -> None:
        self._ensure_open()
        if phase is self.phase and debt_journey_phase == self.debt_journey_phase:
            raise DomainError(f"the trajectory is already in phase {phase}")
        self.phase, self.debt_journey_phase = phase, debt_journey_phase
        self._record(
            TrajectoryPhaseChanged(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                phase=phase,
                debt_journey_phase=debt_journey_phase,
                changed_at=at,
            )
        )

    # ------------------------------------------------------------------ modules, homework

    def assign_module(self, module_id: str, language: Language, at: datetime) -> ModuleAssignment:
        self._ensure_open()
        if any(m.module_id == module_id and m.completed_at is None for m in self.modules):
            raise DomainError(f"module {module_id} is already assigned and not yet completed")
        assignment = ModuleAssignment(new_id("enr"), module_id, at)
        self.modules.append(assignment)
        self._record(
            ModuleAssigned(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                enrolment_id=assignment.enrolment_id,
                module_id=module_id,
                language=language,
                assigned_at=at,
            )
        )
        return assignment

    def record_module_completed(self, enrolment_id: str, at: datetime) -> None:
        assignment = self._assignment(enrolment_id)
        if assignment.completed_at is not None:
            return  # a module completes once; hearing it again changes nothing
        assignment.completed_at = at
        self._record(
            ModuleProgressRecorded(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                enrolment_id=enrolment_id,
                module_id=assignment.module_id,
                recorded_at=at,
            )
        )

    def record_homework(
        self, submission_id: str, enrolment_id: str, step_id: str, submitted_at: datetime
    ) -> None:
        assignment = self._assignment(enrolment_id)
        if any(h.submission_id == submission_id for h in self.homework):
            return
        self.homework.append(
            Homework(submission_id, enrolment_id, assignment.module_id, step_id, submitted_at)
        )

    def give_feedback(
        self, submission_id: str, feedback: Sealed, worker_id: str, at: datetime
    ) -> None:
        """The worker's words go to the client sealed; this store keeps only that it happened."""
        self._ensure_open()
        homework = next((h for h in self.homework if h.submission_id == submission_id), None)
        if homework is None:
            raise NotFound(f"no homework {submission_id} in trajectory {self.id}")
        homework.feedback_given_at, homework.feedback_by = at, worker_id
        self._record(
            HomeworkFeedbackGiven(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                enrolment_id=homework.enrolment_id,
                submission_id=submission_id,
                step_id=homework.step_id,
                feedback=feedback,
                given_at=at,
            )
        )

    # ------------------------------------------------------------------ hand-off

    def request_partner_referral(self, consent: HandOffConsent, at: datetime) -> PartnerReferral:
        self._ensure_open()
        partner = consent.partner_organisation_id
        if any(p.open and p.partner_organisation_id == partner for p in self.partner_referrals):
            raise DomainError(f"a hand-off to {partner} is already under way")
        hand_off = PartnerReferral(new_id("prf"), partner, consent.consent_id, at)
        self.partner_referrals.append(hand_off)
        self._record(
            PartnerReferralRequested(
                partner_referral_id=hand_off.id,
                partner_organisation_id=partner,
                referring_organisation_id=self.organisation_id,
                consent_id=consent.consent_id,
                postcode_area=self.postcode_area,
                crisis=self.crisis,
                client_contact=consent.contact,
                requested_at=at,
            )
        )
        self._record(
            PartnerReferralRecorded(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                partner_referral_id=hand_off.id,
                partner_organisation_id=partner,
                requested_at=at,
            )
        )
        return hand_off

    def record_partner_answer(
        self,
        partner_referral_id: str,
        partner_organisation_id: str,
        status: HandOffStatus | None,
        progress: str,
        at: datetime,
        reason: str | None = None,
    ) -> None:
        """The partner accepted, declined, progressed or finished (status None: progress only).
        The trajectory goes on either way; a finished arrangement suggests aftercare."""
        hand_off = self._hand_off(partner_referral_id)
        if hand_off.partner_organisation_id != partner_organisation_id:
            raise DomainError(
                f"hand-off {partner_referral_id} went to {hand_off.partner_organisation_id}, "
                f"not to {partner_organisation_id}"
            )
        if hand_off.status is HandOffStatus.WITHDRAWN:
            return  # the client withdrew consent: nothing more about it is recorded
        if not hand_off.open:
            raise DomainError(f"hand-off {partner_referral_id} is already {hand_off.status}")
        if status is not None:
            hand_off.status = status
        hand_off.progress, hand_off.updated_at = progress, at
        hand_off.reason = reason or hand_off.reason
        if hand_off.status is HandOffStatus.COMPLETED and self.aftercare_started_at is None:
            self.aftercare_suggested = True
        self._record(
            PartnerOutcomeRecorded(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                partner_referral_id=partner_referral_id,
                partner_organisation_id=partner_organisation_id,
                status=progress,
                recorded_at=at,
            )
        )

    def withdraw_partner_referrals(
        self, partner_organisation_id: str | None, reason: WithdrawalReason, at: datetime
    ) -> None:
        """Consent withdrawn (for one partner) or erasure (all): the partners are told to stop."""
        for hand_off in self.partner_referrals:
            if not hand_off.open or partner_organisation_id not in (
                None,
                hand_off.partner_organisation_id,
            ):
                continue
            hand_off.status, hand_off.updated_at = HandOffStatus.WITHDRAWN, at
            self._record(
                PartnerReferralWithdrawn(
                    partner_referral_id=hand_off.id,
                    partner_organisation_id=hand_off.partner_organisation_id,
                    referring_organisation_id=self.organisation_id,
                    reason=reason,
                    withdrawn_at=at,
                )
            )

    # ------------------------------------------------------------------ the end

    def start_aftercare(self, at: datetime) -> None:
        self._ensure_open()
        if self.aftercare_started_at is not None:
            raise DomainError("aftercare has already started")
        self.aftercare_started_at, self.aftercare_suggested = at, False
        self._record(
            AftercareStarted(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                started_at=at,
            )
        )
        if self.phase is not Phase.AFTERCARE:
            debt_phase = 5 if self.debt_journey_phase is not None else None
            self.change_phase(Phase.AFTERCARE, debt_phase, at)

    def close(self, reason: ClosureReason, at: datetime) -> None:
        self._ensure_open()
        # Appointments still planned would remind a client of help that has ended.
        for appointment in self.appointments:
            if appointment.status is AppointmentStatus.SCHEDULED:
                self.cancel(appointment.id, at)
        self.closed_at, self.closure_reason = at, reason
        self._record(
            TrajectoryClosed(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                referral_id=self.referral_id,
                reason=reason,
                online_dossier_used=any(c.online_dossier for c in self.contacts),
                closed_at=at,
            )
        )

    def forget(self, at: datetime) -> None:
        """The client asked to be forgotten: the worker's words go, partners are told to stop;
        what is left is only what counts (dates, durations, channels)."""
        for appointment in self.appointments:
            appointment.goal = None
        self.withdraw_partner_referrals(None, WithdrawalReason.CLIENT_ERASED, at)
        self.forgotten_at = at

    # ------------------------------------------------------------------ inside

    def _first_contact(self, at: datetime) -> None:
        if self.first_contact_at is not None:
            return
        self.first_contact_at = at
        self._record(
            FirstContactMade(
                trajectory_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                referral_id=self.referral_id,
                occurred_at=at,
            )
        )

    def _ensure_open(self) -> None:
        if not self.is_open:
            raise DomainError(f"trajectory {self.id} was closed ({self.closure_reason})")

    def _appointment(self, appointment_id: str) -> Appointment:
        for appointment in self.appointments:
            if appointment.id == appointment_id:
                return appointment
        raise NotFound(f"no appointment {appointment_id} in trajectory {self.id}")

    def _assignment(self, enrolment_id: str) -> ModuleAssignment:
        for assignment in self.modules:
            if assignment.enrolment_id == enrolment_id:
                return assignment
        raise NotFound(f"enrolment {enrolment_id} was not assigned in trajectory {self.id}")

    def _hand_off(self, partner_referral_id: str) -> PartnerReferral:
        for hand_off in self.partner_referrals:
            if hand_off.id == partner_referral_id:
                return hand_off
        raise NotFound(f"no hand-off {partner_referral_id} in trajectory {self.id}")

    def _about(self, appointment: Appointment) -> dict[str, object]:
        return {
            "trajectory_id": self.id,
            "client_ref": self.client_ref,
            "organisation_id": self.organisation_id,
            "appointment_id": appointment.id,
            "kind": appointment.kind,
        }

    def _record(self, event: Event) -> None:
        self.events.append(event)
