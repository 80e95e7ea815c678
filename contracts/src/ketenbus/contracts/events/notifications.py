"""Events notifications owns: what was scheduled, sent, failed or cancelled. Never the text."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import DELIVERIES, Topic
from ketenbus.contracts.values import (
    AppointmentId,
    Channel,
    ClientRef,
    EnrolmentId,
    OrganisationId,
    ReminderId,
    ReminderPurpose,
    TrajectoryId,
    WorkerId,
)


class _DeliveryEvent(Event):
    owner: ClassVar[str] = "notifications"
    stream: ClassVar[Topic | None] = DELIVERIES

    client_ref: ClientRef
    organisation_id: OrganisationId


class _ReminderEvent(_DeliveryEvent):
    reminder_id: ReminderId
    purpose: ReminderPurpose
    # What the reminder is about, so trajectory and analytics can put it next to the
    # appointment or the module (were reminders sent before a no-show?).
    appointment_id: AppointmentId | None = None
    enrolment_id: EnrolmentId | None = None


class ReminderScheduled(_ReminderEvent):
    due_at: AwareDatetime
    scheduled_at: AwareDatetime


class ReminderRescheduled(_ReminderEvent):
    """The appointment moved, and its reminder moved with it."""

    due_at: AwareDatetime
    previous_due_at: AwareDatetime
    rescheduled_at: AwareDatetime


class ReminderSent(_ReminderEvent):
    channel: Channel
    due_at: AwareDatetime
    sent_at: AwareDatetime


class ReminderFailed(_ReminderEvent):
    channel: Channel | None = None
    reason: str = Field(min_length=1, max_length=500)
    failed_at: AwareDatetime


class ReminderCancelled(_ReminderEvent):
    reason: str = Field(min_length=1, max_length=200)
    cancelled_at: AwareDatetime


class OptOutRoute(StrEnum):
    """How the client told us: a STOP reply, the link in a message, or their social worker."""

    STOP_REPLY = "stop_reply"
    LINK = "link"
    WORKER = "worker"


class ClientOptedOut(_DeliveryEvent):
    channel: Channel
    via: OptOutRoute | None = None
    opted_out_at: AwareDatetime


class WorkerNote(StrEnum):
    CLIENT_MISSED_APPOINTMENT = "client_missed_appointment"
    REMINDER_FAILED = "reminder_failed"


class WorkerNotified(_DeliveryEvent):
    """A note for the client's social worker, for the worker's task list in trajectory.

    Organisations that configured a team mailbox also get it by e-mail. Never message text.
    """

    note: WorkerNote
    trajectory_id: TrajectoryId | None = None
    worker_id: WorkerId | None = None
    appointment_id: AppointmentId | None = None
    reminder_id: ReminderId | None = None
    # After a missed appointment: when the client will hear from us.
    follow_up_due_at: AwareDatetime | None = None
    notified_at: AwareDatetime
