"""Notifications wired: contact details kept sealed, reminders scheduled and dispatched."""

from __future__ import annotations

from ketenbus.contracts.events import (
    ClientOptedOut,
    ReminderCancelled,
    ReminderFailed,
    ReminderRescheduled,
    ReminderScheduled,
    ReminderSent,
    WorkerNotified,
)
from ketenbus.kit.runtime import Service
from ketenbus.notifications import api
from ketenbus.notifications.background import dispatch_reminders, measure_reminders
from ketenbus.notifications.bootstrap import NotificationDependencies, bootstrap
from ketenbus.notifications.handlers import handlers
from ketenbus.notifications.settings import NotificationSettings

service: Service[NotificationDependencies] = Service(
    name="notifications",
    description="SMS and e-mail reminders and supportive follow-ups, scheduled durably, "
    "in plain Dutch and English.",
    handlers=handlers,
    routers=[api.router],
    publishes=[
        ReminderScheduled,
        ReminderRescheduled,
        ReminderSent,
        ReminderFailed,
        ReminderCancelled,
        ClientOptedOut,
        WorkerNotified,
    ],
    settings_class=NotificationSettings,
    bootstrap=bootstrap,
    background=[dispatch_reminders, measure_reminders],
)
