"""Reminders: scheduled durably, sent once, and always kind.

Plain Python, no I/O. A reminder is stored before it is due, so a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import ReminderFailed, ReminderScheduled, ReminderSent
from ketenbus.contracts.values import Channel, Language, ReminderPurpose, new_id


class ReminderStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Reminder:
    id: str
    client_ref: str
    organisation_id: str
    purpose: ReminderPurpose
    due_at: datetime
    language: Language
    appointment_id: str | None = None
    appointment_starts_at: datetime | None = None
    status: ReminderStatus = ReminderStatus.SCHEDULED
    channel: Channel | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def schedule(
        cls,
        *,
        client_ref: str,
        organisation_id: str,
        purpose: ReminderPurpose,
        due_at: datetime,
        language: Language,
        at: datetime,
        appointment_id: str | None = None,
        appointment_starts_at: datetime | None = None,
    ) -> Reminder:
        reminder = cls(
            id=new_id("rem"),
            client_ref=client_ref,
            organisation_id=organisation_id,
            purpose=purpose,
            due_at=due_at,
            language=language,
            appointment_id=appointment_id,
            appointment_starts_at=appointment_starts_at,
        )
        reminder.events.append(
            ReminderScheduled(
                reminder_id=reminder.id,
                client_ref=client_ref,
                organisation_id=organisation_id,
                purpose=purpose,
                due_at=due_at,
                scheduled_at=at,
            )
        )
        return reminder

    def sent(self, channel: Channel, at: datetime) -> None:
        self.status, self.channel = ReminderStatus.SENT, channel
        self.events.append(
            ReminderSent(
                reminder_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                purpose=self.purpose,
                channel=channel,
                due_at=self.due_at,
                sent_at=at,
            )
        )

    def failed(self, reason: str, at: datetime, channel: Channel | None = None) -> None:
        self.status = ReminderStatus.FAILED
        self.events.append(
            ReminderFailed(
                reminder_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                purpose=self.purpose,
                channel=channel,
                reason=reason,
                failed_at=at,
            )
        )
