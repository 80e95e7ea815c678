"""The help trajectory: opened on an accepted referral, guided through appointments,
contacts and modules, closed with a reason.

Plain Python, no I/O. A missed appointment is support to offer, never a reason to close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentMissed,
    AppointmentScheduled,
    ModuleAssigned,
    ModuleProgressRecorded,
    ReferralAccepted,
    TrajectoryOpened,
)
from ketenbus.contracts.values import AppointmentKind, Language, Modality, Phase, new_id
from ketenbus.kit.failures import DomainError


class NotFound(DomainError):
    status_code = 404


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
    goal: str | None
    status: AppointmentStatus = AppointmentStatus.SCHEDULED

    def ensure_open(self) -> None:
        if self.status is not AppointmentStatus.SCHEDULED:
            raise DomainError(f"appointment {self.id} is already {self.status}")


@dataclass
class ModuleAssignment:
    enrolment_id: str
    module_id: str
    assigned_at: datetime
    completed_at: datetime | None = None


@dataclass
class Trajectory:
    id: str
    client_ref: str
    referral_id: str
    organisation_id: str
    funder: str
    opened_at: datetime
    phase: Phase = Phase.INTAKE
    appointments: list[Appointment] = field(default_factory=list)
    modules: list[ModuleAssignment] = field(default_factory=list)
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, referral: ReferralAccepted, at: datetime) -> Trajectory:
        trajectory = cls(
            id=new_id("trj"),
            client_ref=referral.client_ref,
            referral_id=referral.referral_id,
            organisation_id=referral.organisation_id,
            funder=referral.funder,
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
                referrer_type=referral.referrer_type,
                topic=referral.topic,
                postcode_area=referral.postcode_area,
                crisis=referral.crisis,
                referred_at=referral.received_at,
                opened_at=at,
            )
        )
        return trajectory

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
        appointment = Appointment(
            new_id("apt"), kind, starts_at, duration_minutes, modality, worker_id, goal
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

    def assign_module(self, module_id: str, language: Language, at: datetime) -> ModuleAssignment:
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
        assignment = next((m for m in self.modules if m.enrolment_id == enrolment_id), None)
        if assignment is None:
            raise NotFound(f"enrolment {enrolment_id} was not assigned in trajectory {self.id}")
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

    def _appointment(self, appointment_id: str) -> Appointment:
        for appointment in self.appointments:
            if appointment.id == appointment_id:
                return appointment
        raise NotFound(f"no appointment {appointment_id} in trajectory {self.id}")

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
