"""Intake wired: the front door, the partners' topics, the region and capacity tables, the keys."""

from __future__ import annotations

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
    SignalDataDeleted,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
    WaitlistExited,
)
from ketenbus.intake import api, fhir_api, signal_api
from ketenbus.intake.bootstrap import IntakeDependencies, bootstrap
from ketenbus.intake.handlers import handlers
from ketenbus.intake.partners import tell_partner
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.signal_sweep import watch_signal_deadlines
from ketenbus.kit.runtime import Service

service: Service[IntakeDependencies] = Service(
    name="intake",
    description="Referrals in from GPs, municipalities and residents; consent, region routing, "
    "triage and the waiting list, and the closed loop back to the referrer. Early-warning "
    "signals from creditors, their outreach, and the answer that may make them a referral. "
    "Partners refer over HTTP (see /docs) or on their inbound topic.",
    handlers=handlers,
    routers=[api.router, fhir_api.router, signal_api.router],
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
    settings_class=IntakeSettings,
    bootstrap=bootstrap,
    dead_letters=tell_partner,
    background=[watch_signal_deadlines],
)
