"""What notifications does when other services' events arrive."""

from __future__ import annotations

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import AppointmentMissed, ClientContactShared, ClientErasureRequested
from ketenbus.contracts.values import Language, ReminderPurpose
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications.domain import Reminder
from ketenbus.notifications.settings import NotificationSettings
from ketenbus.notifications.store import NotificationTransaction

handlers = EventHandlers("notifications")


@handlers.on(ClientContactShared)
async def keep_contact(
    event: Envelope[ClientContactShared], uow: UnitOfWork[NotificationTransaction]
) -> None:
    async with uow.handling(event) as tx:
        shared = event.data
        await tx.contacts.keep(
            shared.client_ref,
            shared.organisation_id,
            shared.contact,
            shared.language,
            shared.preferred_channel,
        )


@handlers.on(AppointmentMissed)
async def follow_up_missed_appointment(
    event: Envelope[AppointmentMissed],
    uow: UnitOfWork[NotificationTransaction],
    settings: NotificationSettings,
) -> None:
    """A calm word to the client: we missed you, how can we help."""
    async with uow.handling(event) as tx:
        missed = event.data
        contact = await tx.contacts.find(missed.client_ref)
        language = Language(contact["language"]) if contact else Language.NL
        reminder = Reminder.schedule(
            client_ref=missed.client_ref,
            organisation_id=missed.organisation_id,
            purpose=ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP,
            due_at=missed.registered_at + settings.missed_follow_up_delay,
            language=language,
            appointment_id=missed.appointment_id,
            appointment_starts_at=missed.starts_at,
            at=tx.clock.now(),
        )
        await tx.reminders.add(reminder)


@handlers.on(ClientErasureRequested)
async def forget_client(
    event: Envelope[ClientErasureRequested], uow: UnitOfWork[NotificationTransaction]
) -> None:
    async with uow.handling(event) as tx:
        await tx.contacts.forget(event.data.client_ref)
