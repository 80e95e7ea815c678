"""Events notifications owns: what was scheduled, sent, failed or cancelled. Never the text."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import DELIVERIES, Topic
from ketenbus.contracts.values import (
    Channel,
    ClientRef,
    OrganisationId,
    ReminderId,
    ReminderPurpose,
)


class _DeliveryEvent(Event):
    owner: ClassVar[str] = "notifications"
    stream: ClassVar[Topic | None] = DELIVERIES

    client_ref: ClientRef
    organisation_id: OrganisationId


class _ReminderEvent(_DeliveryEvent):
    reminder_id: ReminderId
    purpose: ReminderPurpose


class ReminderScheduled(_ReminderEvent):
    due_at: AwareDatetime
    scheduled_at: AwareDatetime


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


class ClientOptedOut(_DeliveryEvent):
    channel: Channel
    opted_out_at: AwareDatetime
