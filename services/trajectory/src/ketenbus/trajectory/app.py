"""Trajectory wired: worker actions over HTTP, reactions to referrals, consents, modules,
homework and partners' answers, the check for appointments nobody registered, and the purge
of erased clients' dead letters."""

from __future__ import annotations

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
from ketenbus.kit.runtime import Service
from ketenbus.trajectory import api
from ketenbus.trajectory.bootstrap import TrajectoryDependencies, bootstrap
from ketenbus.trajectory.dead_letters import purge_erased_clients_dead_letters
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.overdue import remind_unregistered_appointments
from ketenbus.trajectory.settings import TrajectorySettings

service: Service[TrajectoryDependencies] = Service(
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
    settings_class=TrajectorySettings,
    bootstrap=bootstrap,
    background=[remind_unregistered_appointments, purge_erased_clients_dead_letters],
)
