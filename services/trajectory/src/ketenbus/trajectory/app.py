"""Trajectory wired: worker actions over HTTP, reactions to referrals, consents, modules,
homework and partners' answers, and the check for appointments nobody registered."""

from __future__ import annotations

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    AftercareStarted,
    AppointmentAttended,
    AppointmentCancelled,
    AppointmentMissed,
    AppointmentRegistrationOverdue,
    AppointmentRescheduled,
    AppointmentScheduled,
    ContactRegistered,
    FirstContactMade,
    HomeworkFeedbackGiven,
    ModuleAssigned,
    ModuleProgressRecorded,
    PartnerOutcomeRecorded,
    PartnerReferralRecorded,
    PartnerReferralRequested,
    PartnerReferralWithdrawn,
    TrajectoryClosed,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
)
from ketenbus.contracts.topics import partner_inbound
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.trajectory import api, store
from ketenbus.trajectory.handlers import PARTNER_ANSWERS, handlers
from ketenbus.trajectory.overdue import remind_unregistered_appointments
from ketenbus.trajectory.settings import TrajectorySettings


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, TrajectorySettings)
    await store.ensure_indexes(runtime.db)
    if settings.feedback_sharing_key is not None:
        runtime.dependencies["feedback_key"] = sealing.key_from_text(
            settings.feedback_sharing_key.get_secret_value()
        )
    # Partners answer hand-offs on their own inbound topics; which partners exist is deployment.
    inbound = tuple(partner_inbound(org).name for org in settings.partner_organisations)
    for answer in PARTNER_ANSWERS:
        handlers.extra_topics[answer] = inbound


service = Service(
    name="trajectory",
    description="The help trajectory: phases, appointments, contacts, modules as homework, "
    "hand-off to debt counselling, closure and aftercare.",
    handlers=handlers,
    routers=[api.router],
    publishes=[
        TrajectoryOpened,
        TrajectoryPhaseChanged,
        AppointmentScheduled,
        AppointmentRescheduled,
        AppointmentCancelled,
        AppointmentAttended,
        AppointmentMissed,
        AppointmentRegistrationOverdue,
        FirstContactMade,
        ContactRegistered,
        ModuleAssigned,
        ModuleProgressRecorded,
        HomeworkFeedbackGiven,
        PartnerReferralRequested,
        PartnerReferralRecorded,
        PartnerReferralWithdrawn,
        PartnerOutcomeRecorded,
        AftercareStarted,
        TrajectoryClosed,
    ],
    transaction_class=store.TrajectoryTransaction,
    settings_class=TrajectorySettings,
    prepare=prepare,
    background=[remind_unregistered_appointments],
)
