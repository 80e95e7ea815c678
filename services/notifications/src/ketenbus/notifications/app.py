"""Notifications wired: contact details kept sealed, reminders scheduled and dispatched."""

from __future__ import annotations

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    ClientOptedOut,
    ReminderCancelled,
    ReminderFailed,
    ReminderRescheduled,
    ReminderScheduled,
    ReminderSent,
    WorkerNotified,
)
from ketenbus.contracts.values import Channel
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.notifications import api, contact, opt_out_links, store
from ketenbus.notifications.channels import Adapter, Mailer, sms_adapter
from ketenbus.notifications.dispatch import Dispatcher, dispatch_reminders
from ketenbus.notifications.domain import SendingRules
from ketenbus.notifications.gauges import ReminderGauges, measure_reminders
from ketenbus.notifications.handlers import handlers
from ketenbus.notifications.policies import Policies
from ketenbus.notifications.settings import NotificationSettings


def channels(settings: NotificationSettings) -> dict[Channel, Adapter]:
    adapters: dict[Channel, Adapter] = {
        Channel.EMAIL: Mailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            timeout=settings.smtp_timeout_seconds,
            message_domain=settings.message_id_domain,
            security=settings.mail_security,
            ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    }
    if settings.sms_provider_url:
        token = settings.sms_provider_token
        adapters[Channel.SMS] = sms_adapter(
            settings.sms_provider_kind,
            settings.sms_provider_url,
            timeout=settings.sms_timeout_seconds,
            token=token.get_secret_value() if token else None,
        )
    return adapters


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, NotificationSettings)
    await store.ensure_indexes(runtime.db)
    contact_key = sealing.key_from_text(settings.contact_sharing_key.get_secret_value())
    link_key = opt_out_links.link_key(contact_key)
    policies = Policies.load(settings.notification_policies_file)
    rules = SendingRules(
        claim_seconds=settings.send_claim_seconds,
        max_attempts=settings.send_max_attempts,
        retry_base_seconds=settings.send_retry_base_seconds,
        retry_max_seconds=settings.send_retry_max_seconds,
    )
    runtime.dependencies.update(
        contact_key=contact_key,
        phone_key=contact.index_key(contact_key),
        link_key=link_key,
        policies=policies,
        dispatch_poll_seconds=settings.dispatch_poll_seconds,
        reminder_gauges=ReminderGauges(runtime.registry),
        dispatcher=Dispatcher(
            uow=runtime.uow,
            clock=runtime.clock,
            adapters=channels(settings),
            policies=policies,
            rules=rules,
            contact_key=contact_key,
            link_key=link_key,
            public_url=settings.link_base,
        ),
    )


service = Service(
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
    transaction_class=store.NotificationTransaction,
    settings_class=NotificationSettings,
    prepare=prepare,
    background=[dispatch_reminders, measure_reminders],
)
