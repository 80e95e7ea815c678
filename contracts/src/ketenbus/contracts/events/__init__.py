"""The event catalogue: every event the chain knows, by its versioned type."""

from __future__ import annotations

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events.analytics import (
    BenchmarkCell,
    KpiCell,
    KpiSnapshotPublished,
    KpiSnapshotPublishedV2,
)
from ketenbus.contracts.events.intake import (
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
    Urgency,
    WaitlistExited,
)
from ketenbus.contracts.events.learning import (
    HomeworkSubmitted,
    LifeDomainScores,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
    QuestionnaireMoment,
)
from ketenbus.contracts.events.notifications import (
    ClientOptedOut,
    OptOutRoute,
    ReminderCancelled,
    ReminderFailed,
    ReminderRescheduled,
    ReminderScheduled,
    ReminderSent,
    WorkerNote,
    WorkerNotified,
)
from ketenbus.contracts.events.partners import (
    ConsentStatement,
    PartnerCompleted,
    PartnerOutcome,
    PartnerReferralAccepted,
    PartnerReferralDeclined,
    PartnerStatus,
    PartnerStatusChanged,
    ReferralSubmitted,
)
from ketenbus.contracts.events.signals import (
    SignalDataDeleted,
    SignalDeletionReason,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
)
from ketenbus.contracts.events.trajectory import (
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
    WithdrawalReason,
)

ALL_EVENTS: tuple[type[Event], ...] = (
    # intake
    ReferralReceived,
    ReferralAccepted,
    ReferralDeclined,
    ClientWaitlisted,
    WaitlistExited,
    ConsentGranted,
    ConsentWithdrawn,
    ClientContactShared,
    PartnerContactSealed,
    ClientErasureRequested,
    ReferralStatusChanged,
    ReferralRejected,
    # intake: early-warning signals
    SignalReceived,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalDataDeleted,
    # partners
    ReferralSubmitted,
    PartnerReferralAccepted,
    PartnerReferralDeclined,
    PartnerStatusChanged,
    PartnerCompleted,
    # trajectory
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
    PartnerReferralWithdrawn,
    PartnerReferralRecorded,
    PartnerOutcomeRecorded,
    AftercareStarted,
    TrajectoryClosed,
    # learning
    ModuleStarted,
    ModuleStepCompleted,
    HomeworkSubmitted,
    ModuleCompleted,
    ModuleAbandoned,
    QuestionnaireCompleted,
    # notifications
    ReminderScheduled,
    ReminderRescheduled,
    ReminderSent,
    ReminderFailed,
    ReminderCancelled,
    ClientOptedOut,
    WorkerNotified,
    # analytics
    KpiSnapshotPublished,
    KpiSnapshotPublishedV2,
)

REGISTRY: dict[str, type[Event]] = {cls.event_type(): cls for cls in ALL_EVENTS}

__all__ = [cls.__name__ for cls in ALL_EVENTS] + [
    "ALL_EVENTS",
    "REGISTRY",
    "BenchmarkCell",
    "ConsentStatement",
    "KpiCell",
    "LifeDomainScores",
    "OptOutRoute",
    "PartnerOutcome",
    "PartnerStatus",
    "QuestionnaireMoment",
    "SignalDeletionReason",
    "Urgency",
    "WithdrawalReason",
    "WorkerNote",
]
