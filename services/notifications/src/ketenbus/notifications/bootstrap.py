"""What notifications' handlers, routes, dispatcher and gauges are given, built once from
its settings at start-up (`Runtime.start` says when)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel
from ketenbus.kit.clock import Clock
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications import contact, opt_out_links, store
from ketenbus.notifications.channels import Adapter, Mailer, sms_adapter
from ketenbus.notifications.dispatch import Dispatcher
from ketenbus.notifications.domain import SendingRules
from ketenbus.notifications.gauges import ReminderGauges
from ketenbus.notifications.policies import Policies
from ketenbus.notifications.settings import NotificationSettings
from ketenbus.notifications.store import NotificationTransaction


@dataclass(frozen=True)
class NotificationDependencies:
    settings: NotificationSettings
    clock: Clock
    uow: UnitOfWork[NotificationTransaction]
    # Opens the contact details intake sealed for us.
    contact_key: bytes
    # Finds a client by phone number (an SMS STOP) without keeping the number readable.
    phone_key: bytes
    # Signs the opt-out links in messages.
    link_key: bytes
    policies: Policies
    dispatcher: Dispatcher
    reminder_gauges: ReminderGauges

    @classmethod
    def from_settings(
        cls,
        settings: NotificationSettings,
        *,
        uow: UnitOfWork[NotificationTransaction],
        clock: Clock,
        registry: CollectorRegistry,
    ) -> NotificationDependencies:
        """No I/O: the tests build it too, around an in-memory unit of work."""
        contact_key = sealing.key_from_text(settings.contact_sharing_key.get_secret_value())
        link_key = opt_out_links.link_key(contact_key)
        policies = Policies.load(settings.notification_policies_file)
        rules = SendingRules(
            claim_seconds=settings.send_claim_seconds,
            max_attempts=settings.send_max_attempts,
            retry_base_seconds=settings.send_retry_base_seconds,
            retry_max_seconds=settings.send_retry_max_seconds,
        )
        return cls(
            settings=settings,
            clock=clock,
            uow=uow,
            contact_key=contact_key,
            phone_key=contact.index_key(contact_key),
            link_key=link_key,
            policies=policies,
            dispatcher=Dispatcher(
                uow=uow,
                clock=clock,
                adapters=channels(settings),
                policies=policies,
                rules=rules,
                contact_key=contact_key,
                link_key=link_key,
                public_url=settings.link_base,
            ),
            reminder_gauges=ReminderGauges(registry),
        )


async def bootstrap(runtime: Runtime) -> NotificationDependencies:
    settings = runtime.settings_as(NotificationSettings)
    await store.ensure_indexes(runtime.db)
    return NotificationDependencies.from_settings(
        settings,
        uow=runtime.unit_of_work(NotificationTransaction),
        clock=runtime.clock,
        registry=runtime.registry,
    )


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
