"""Which reminders an event calls for: pure decisions, the handlers only store them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ketenbus.contracts.events import (
    AppointmentMissed,
    AppointmentRescheduled,
    AppointmentScheduled,
    WorkerNote,
)
from ketenbus.contracts.values import ReminderPurpose
from ketenbus.notifications.domain import Audience, Reminder, ReminderStatus
from ketenbus.notifications.policies import OrganisationPolicy


def appointment_reminders(
    scheduled: AppointmentScheduled, policy: OrganisationPolicy, now: datetime
) -> list[Reminder]:
    """One reminder per offset of the organisation's policy (24 h and 2 h by default),
    except those whose moment has already passed."""
    return [
        _appointment_reminder(scheduled, offset, now)
        for offset in policy.appointment_reminders
        if scheduled.starts_at - offset > now
    ]


def _appointment_reminder(
    appointment: AppointmentScheduled | AppointmentRescheduled, offset: timedelta, now: datetime
) -> Reminder:
    return Reminder.schedule(
        client_ref=appointment.client_ref,
        organisation_id=appointment.organisation_id,
        purpose=ReminderPurpose.APPOINTMENT_REMINDER,
        due_at=appointment.starts_at - offset,
        at=now,
        appointment_id=appointment.appointment_id,
        trajectory_id=appointment.trajectory_id,
        appointment_starts_at=appointment.starts_at,
        modality=appointment.modality,
        offset=offset,
    )


def follow_appointment(
    moved: AppointmentRescheduled,
    existing: Iterable[Reminder],
    policy: OrganisationPolicy,
    now: datetime,
) -> list[Reminder]:
    """The appointment moved: waiting reminders move with it, reminders whose new moment has
    passed are cancelled, and an offset whose reminder already went out (for the old time)
    gets a new one. Returns the reminders that are new; the others change in place."""
    waiting = {r.offset: r for r in existing if r.status is ReminderStatus.SCHEDULED}
    offsets = sorted({*policy.appointment_reminders, *(o for o in waiting if o)}, reverse=True)
    new = []
    for offset in offsets:
        due = moved.starts_at - offset
        reminder = waiting.get(offset)
        if reminder is None:
            if due > now and offset in policy.appointment_reminders:
                new.append(_appointment_reminder(moved, offset, now))
        elif due > now:
            reminder.move(due_at=due, starts_at=moved.starts_at, modality=moved.modality, at=now)
        else:
            reminder.cancel("the appointment moved closer than this reminder", now)
    return new


def cancel_waiting(reminders: Iterable[Reminder], reason: str, now: datetime) -> None:
    for reminder in reminders:
        if reminder.status is ReminderStatus.SCHEDULED:
            reminder.cancel(reason, now)


def missed_follow_up(missed: AppointmentMissed, delay: timedelta, now: datetime) -> Reminder:
    """We missed you, how can we help: some time after the worker registered it."""
    return Reminder.schedule(
        client_ref=missed.client_ref,
        organisation_id=missed.organisation_id,
        purpose=ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP,
        due_at=max(missed.registered_at + delay, now),
        at=now,
        appointment_id=missed.appointment_id,
        trajectory_id=missed.trajectory_id,
        appointment_starts_at=missed.starts_at,
        worker_id=missed.worker_id,
    )


def note_for_team(
    *,
    client_ref: str,
    organisation_id: str,
    note: WorkerNote,
    now: datetime,
    about: Reminder,
) -> Reminder:
    """The same note the worker's task list gets, by e-mail to the team mailbox."""
    return Reminder.schedule(
        client_ref=client_ref,
        organisation_id=organisation_id,
        purpose=ReminderPurpose.WORKER_NOTE,
        due_at=now,
        at=now,
        audience=Audience.WORKER,
        worker_note=note,
        appointment_id=about.appointment_id,
        trajectory_id=about.trajectory_id,
        appointment_starts_at=about.appointment_starts_at,
        worker_id=about.worker_id,
        about_reminder_id=about.id,
        about_purpose=about.purpose,
        about_due_at=about.due_at,
        about_reason=about.closed_reason,
    )


@dataclass
class ModuleWatch:
    """Notifications' view of one enrolment: when the client last moved forward."""

    enrolment_id: str
    client_ref: str
    organisation_id: str
    last_progress_at: datetime
    finished: bool = False

    def progressed(self, at: datetime) -> bool:
        """True when this moves the last progress on (so the nudges must be planned anew)."""
        if self.finished or at <= self.last_progress_at:
            return False
        self.last_progress_at = at
        return True

    def nudges(
        self, policy: OrganisationPolicy, already_sent: int, now: datetime
    ) -> list[Reminder]:
        """The friendly nudges still allowed, one idle period apart, all in the future."""
        if self.finished:
            return []
        left = max(policy.module_nudges_max - already_sent, 0)
        moments = [
            self.last_progress_at + policy.module_nudge_after * n for n in range(1, left + 1)
        ]
        return [
            Reminder.schedule(
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                purpose=ReminderPurpose.MODULE_NUDGE,
                due_at=moment,
                at=now,
                enrolment_id=self.enrolment_id,
            )
            for moment in moments
            if moment > now
        ]
