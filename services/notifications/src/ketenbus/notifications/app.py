"""Notifications wired: contact details kept sealed, reminders scheduled and dispatched."""

from __future__ import annotations

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ReminderFailed, ReminderScheduled, ReminderSent
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.notifications import store
from ketenbus.notifications.channels import Mailer
from ketenbus.notifications.dispatch import dispatch_reminders
from ketenbus.notifications.handlers import handlers
from ketenbus.notifications.settings import NotificationSettings


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, NotificationSettings)
    await store.ensure_indexes(runtime.db)
    runtime.dependencies.update(
        mailer=Mailer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            settings.smtp_timeout_seconds,
        ),
        contact_key=sealing.key_from_text(settings.contact_sharing_key.get_secret_value()),
        dispatch_poll_seconds=settings.dispatch_poll_seconds,
    )


service = Service(
    name="notifications",
    description="SMS and e-mail reminders and supportive follow-ups, scheduled durably, "
    "in plain Dutch and English.",
    handlers=handlers,
    publishes=[ReminderScheduled, ReminderSent, ReminderFailed],
    transaction_class=store.NotificationTransaction,
    settings_class=NotificationSettings,
    prepare=prepare,
    background=[dispatch_reminders],
)
