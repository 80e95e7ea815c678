"""Intake wired: the front door, the partners' topics, the region and capacity tables, the keys."""

from __future__ import annotations

from datetime import timedelta

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    ClientContactShared,
    ClientErasureRequested,
    ClientWaitlisted,
    ConsentGranted,
    ConsentWithdrawn,
    PartnerContactSealed,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    ReferralRejected,
    ReferralStatusChanged,
    ReferralSubmitted,
    SignalDataDeleted,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
    WaitlistExited,
)
from ketenbus.contracts.topics import partner_inbound
from ketenbus.intake import api, signal_api, signal_store, store
from ketenbus.intake.handlers import handlers
from ketenbus.intake.partners import tell_partner
from ketenbus.intake.personal import IntakeKeys
from ketenbus.intake.regions import CapacityTable, RegionTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.signal_sweep import watch_signal_deadlines
from ketenbus.kit.ratelimit import RateLimit
from ketenbus.kit.runtime import Runtime, Service


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, IntakeSettings)
    await store.ensure_indexes(runtime.db)
    await signal_store.ensure_indexes(runtime.db)
    runtime.uow.resources["keys"] = IntakeKeys(
        master=sealing.key_from_text(settings.ketenbus_master_key.get_secret_value()),
        contact_sharing=sealing.key_from_text(settings.contact_sharing_key.get_secret_value()),
        pseudonym=sealing.key_from_text(settings.pseudonym_key.get_secret_value()),
        partners={
            org: sealing.key_from_text(key.get_secret_value())
            for org, key in settings.partner_sharing_keys.items()
        },
    )
    capacities = CapacityTable.load(settings.capacity_file)
    runtime.uow.resources["capacities"] = capacities
    caseloads = store.Caseloads(runtime.db, capacities.of, runtime.clock)
    runtime.uow.resources["caseloads"] = caseloads
    # A process killed between claiming a place and committing its referral left a hold:
    # given back here, unless so recent that another replica's transaction may still commit.
    await caseloads.reconcile(capacities.capacities, older_than=timedelta(minutes=5))
    runtime.uow.resources["kafka_partners"] = frozenset(settings.partner_organisations)
    runtime.dependencies["regions"] = RegionTable.load(settings.regions_file)
    runtime.dependencies[api.REFERRAL_LIMIT] = RateLimit(
        settings.referral_rate_per_minute, settings.referral_burst
    )
    runtime.dependencies[api.STATUS_LIMIT] = RateLimit(
        settings.referral_status_rate_per_minute, settings.referral_status_burst
    )
    # Referrals come in on every partner's inbound topic; which partners exist is deployment.
    handlers.extra_topics[ReferralSubmitted] = tuple(
        partner_inbound(org).name for org in settings.partner_organisations
    )


service = Service(
    name="intake",
    description="Referrals in from GPs, municipalities and residents; consent, region routing, "
    "triage and the waiting list, and the closed loop back to the referrer. Early-warning "
    "signals from creditors, their outreach, and the answer that may make them a referral. "
    "Partners refer over HTTP (see /docs) or on their inbound topic.",
    handlers=handlers,
    routers=[api.router, signal_api.router],
    publishes=[
        ReferralReceived,
        ReferralAccepted,
        ReferralDeclined,
        ClientWaitlisted,
        WaitlistExited,
        ReferralStatusChanged,
        ReferralRejected,
        ConsentGranted,
        ConsentWithdrawn,
        ClientContactShared,
        PartnerContactSealed,
        ClientErasureRequested,
        SignalReceived,
        SignalOutreachAttempted,
        SignalOutreachOverdue,
        SignalHelpAccepted,
        SignalHelpDeclined,
        SignalDataDeleted,
    ],
    transaction_class=store.IntakeTransaction,
    settings_class=IntakeSettings,
    prepare=prepare,
    dead_letters=tell_partner,
    background=[watch_signal_deadlines],
)
