"""What each event tells analytics, as updates to fact documents: pure, no I/O.

Every update is keyed by the id of the thing it is about and only sets fields (or raises a
maximum), so applying an event twice, or events from different topics in another order,
leaves the same facts. That is what lets a replay of the topics rebuild exactly the figures
the live projection shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    AftercareStarted,
    AppointmentAttended,
    AppointmentCancelled,
    AppointmentMissed,
    AppointmentRescheduled,
    AppointmentScheduled,
    ClientWaitlisted,
    ContactRegistered,
    FirstContactMade,
    KpiSnapshotPublished,
    KpiSnapshotPublishedV2,
    ModuleAbandoned,
    ModuleAssigned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    PartnerOutcomeRecorded,
    PartnerReferralRecorded,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    SignalHelpAccepted,
    SignalHelpDeclined,
    SignalOutreachAttempted,
    SignalOutreachOverdue,
    SignalReceived,
    TrajectoryClosed,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
    WaitlistExited,
)

REFERRALS = "referrals"
CASES = "cases"
APPOINTMENTS = "appointments"
CONTACTS = "contacts"
ENROLMENTS = "enrolments"
HANDOFFS = "handoffs"
SIGNALS = "signals"
SNAPSHOTS = "snapshots"
REPLACED_BY = "replaced_by"  # on a snapshot another one replaced
FACT_COLLECTIONS = (
    REFERRALS,
    CASES,
    APPOINTMENTS,
    CONTACTS,
    ENROLMENTS,
    HANDOFFS,
    SIGNALS,
    SNAPSHOTS,
)


@dataclass(frozen=True)
class Update:
    collection: str
    key: str
    set: dict[str, Any]
    max: dict[str, Any] = field(default_factory=dict)
    # Lowers a value only: the first outreach stays the first whatever order attempts come in.
    min: dict[str, Any] = field(default_factory=dict)


def updates_for(event: Event) -> list[Update]:
    """The fact updates one event implies; an event analytics does not count gives none."""
    projector = _PROJECTORS.get(type(event))
    return projector(event) if projector else []


def _referral_received(e: ReferralReceived) -> list[Update]:
    return [
        Update(
            REFERRALS,
            e.referral_id,
            {
                "client_ref": e.client_ref,
                "organisation_id": e.organisation_id,
                "municipality": e.municipality,
                "postcode_area": e.postcode_area,
                "referrer_type": e.referrer_type.value,
                "topic": e.topic.value,
                "crisis": e.urgency.crisis,
                "duplicate": e.duplicate_of is not None,
                "received_at": e.received_at,
            },
        )
    ]


def _referral_accepted(e: ReferralAccepted) -> list[Update]:
    return [
        Update(
            REFERRALS,
            e.referral_id,
            {
                "client_ref": e.client_ref,
                "organisation_id": e.organisation_id,
                "funder": e.funder,
                "work_type": e.work_type.value,
                "accepted_at": e.accepted_at,
            },
        )
    ]


def _referral_declined(e: ReferralDeclined) -> list[Update]:
    return [
        Update(
            REFERRALS,
            e.referral_id,
            {"declined_at": e.declined_at, "decline_reason": e.reason.value},
        )
    ]


def _waitlisted(e: ClientWaitlisted) -> list[Update]:
    return [
        Update(
            REFERRALS,
            e.referral_id,
            {
                "client_ref": e.client_ref,
                "organisation_id": e.organisation_id,
                "waitlisted_at": e.waitlisted_at,
            },
        )
    ]


def _waitlist_exited(e: WaitlistExited) -> list[Update]:
    return [
        Update(
            REFERRALS,
            e.referral_id,
            {
                "funder": e.funder,
                "work_type": e.work_type.value,
                "waitlist_exited_at": e.exited_at,
            },
        )
    ]


def _opened(e: TrajectoryOpened) -> list[Update]:
    return [
        Update(
            CASES,
            e.trajectory_id,
            {
                "client_ref": e.client_ref,
                "referral_id": e.referral_id,
                "organisation_id": e.organisation_id,
                "funder": e.funder,
                "work_type": e.work_type.value,
                "referrer_type": e.referrer_type.value,
                "topic": e.topic.value,
                "postcode_area": e.postcode_area,
                "crisis": e.crisis,
                "referred_at": e.referred_at,
                "opened_at": e.opened_at,
            },
        )
    ]


def _phase(e: TrajectoryPhaseChanged) -> list[Update]:
    fields: dict[str, Any] = {"phase": e.phase.value}
    if e.debt_journey_phase is not None:
        fields["debt_journey_phase"] = e.debt_journey_phase
    return [Update(CASES, e.trajectory_id, fields)]


def _first_contact(e: FirstContactMade) -> list[Update]:
    return [Update(CASES, e.trajectory_id, {"first_contact_at": e.occurred_at})]


def _aftercare(e: AftercareStarted) -> list[Update]:
    return [Update(CASES, e.trajectory_id, {"aftercare_started_at": e.started_at})]


def _closed(e: TrajectoryClosed) -> list[Update]:
    return [
        Update(
            CASES,
            e.trajectory_id,
            {
                "closed_at": e.closed_at,
                "closure_reason": e.reason.value,
                "online_dossier_used": e.online_dossier_used,
            },
        )
    ]


def _appointment(e: Any, **fields: Any) -> Update:
    return Update(
        APPOINTMENTS,
        e.appointment_id,
        {
            "trajectory_id": e.trajectory_id,
            "organisation_id": e.organisation_id,
            "kind": e.kind.value,
            **fields,
        },
    )


def _scheduled(e: AppointmentScheduled) -> list[Update]:
    return [
        _appointment(
            e,
            scheduled_at=e.scheduled_at,
            starts_at=e.starts_at,
            duration_minutes=e.duration_minutes,
            modality=e.modality.value,
        )
    ]


def _rescheduled(e: AppointmentRescheduled) -> list[Update]:
    # Kept apart from the first start: a repeated AppointmentScheduled must not undo it.
    return [
        _appointment(
            e,
            modality=e.modality.value,
            rescheduled_starts_at=e.starts_at,
            rescheduled_at=e.rescheduled_at,
        )
    ]


def _cancelled(e: AppointmentCancelled) -> list[Update]:
    return [_appointment(e, cancelled_at=e.cancelled_at)]


def _attended(e: AppointmentAttended) -> list[Update]:
    return [_appointment(e, attended_at=e.registered_at, held_at=e.starts_at)]


def _missed(e: AppointmentMissed) -> list[Update]:
    return [_appointment(e, missed_at=e.registered_at, held_at=e.starts_at)]


def _contact(e: ContactRegistered) -> list[Update]:
    return [
        Update(
            CONTACTS,
            e.contact_id,
            {
                "trajectory_id": e.trajectory_id,
                "organisation_id": e.organisation_id,
                "channel": e.channel.value,
                "direction": e.direction.value,
                "minutes": e.minutes,
                "default_duration": e.default_duration,
                "online_dossier": e.online_dossier,
                "replaces_face_to_face": e.replaces_face_to_face,
                "occurred_at": e.occurred_at,
            },
        )
    ]


def _enrolment(e: Any, **fields: Any) -> Update:
    return Update(
        ENROLMENTS,
        e.enrolment_id,
        {
            "client_ref": e.client_ref,
            "organisation_id": e.organisation_id,
            "module_id": e.module_id,
            **fields,
        },
    )


def _assigned(e: ModuleAssigned) -> list[Update]:
    return [_enrolment(e, trajectory_id=e.trajectory_id, assigned_at=e.assigned_at)]


def _started(e: ModuleStarted) -> list[Update]:
    return [_enrolment(e, started_at=e.started_at, self_enrolled=e.self_enrolled)]


def _step(e: ModuleStepCompleted) -> list[Update]:
    return [
        Update(
            ENROLMENTS,
            e.enrolment_id,
            _enrolment(e, steps_total=e.steps_total).set,
            {"steps_completed": e.step_number},
        )
    ]


def _completed(e: ModuleCompleted) -> list[Update]:
    return [_enrolment(e, completed_at=e.completed_at)]


def _abandoned(e: ModuleAbandoned) -> list[Update]:
    return [
        Update(
            ENROLMENTS,
            e.enrolment_id,
            _enrolment(e, abandoned_at=e.abandoned_at).set,
            {"steps_completed": e.steps_completed},
        )
    ]


def _handoff(e: PartnerReferralRecorded) -> list[Update]:
    return [
        Update(
            HANDOFFS,
            e.partner_referral_id,
            {
                "trajectory_id": e.trajectory_id,
                "organisation_id": e.organisation_id,
                "partner_organisation_id": e.partner_organisation_id,
                "requested_at": e.requested_at,
            },
        )
    ]


def _handoff_outcome(e: PartnerOutcomeRecorded) -> list[Update]:
    return [
        Update(
            HANDOFFS,
            e.partner_referral_id,
            {
                "trajectory_id": e.trajectory_id,
                "organisation_id": e.organisation_id,
                "partner_organisation_id": e.partner_organisation_id,
            },
            {"last_outcome_at": e.recorded_at},
        )
    ]


def _signal_received(e: SignalReceived) -> list[Update]:
    return [
        Update(
            SIGNALS,
            e.signal_id,
            {
                "organisation_id": e.organisation_id,
                "municipality": e.municipality,
                "creditor_kind": e.creditor_kind.value,
                "end_of_supply": e.end_of_supply_on is not None,
                "received_at": e.received_at,
                "outreach_due_by": e.outreach_due_by,
            },
        )
    ]


def _signal_outreach(e: SignalOutreachAttempted) -> list[Update]:
    first = {"first_outreach_at": e.attempted_at}
    reached = {"reached_at": e.attempted_at} if e.reached else {}
    return [
        Update(
            SIGNALS,
            e.signal_id,
            {"organisation_id": e.organisation_id},
            max={"attempts": e.attempt},
            min={**first, **reached},
        )
    ]


def _signal_overdue(e: SignalOutreachOverdue) -> list[Update]:
    return [Update(SIGNALS, e.signal_id, {"overdue_flagged_at": e.flagged_at})]


def _signal_accepted(e: SignalHelpAccepted) -> list[Update]:
    return [
        Update(SIGNALS, e.signal_id, {"accepted_at": e.accepted_at, "referral_id": e.referral_id})
    ]


def _signal_declined(e: SignalHelpDeclined) -> list[Update]:
    return [Update(SIGNALS, e.signal_id, {"declined_at": e.declined_at})]


def _snapshot(e: KpiSnapshotPublished) -> list[Update]:
    return [Update(SNAPSHOTS, e.snapshot_id, e.model_dump(mode="json"))]


def _snapshot_v2(e: KpiSnapshotPublishedV2) -> list[Update]:
    """A replacement marks the snapshot it replaces: in whichever order the two arrive, the
    replaced one ends up marked, and readers skip it."""
    updates = [Update(SNAPSHOTS, e.snapshot_id, e.model_dump(mode="json"))]
    if e.replaces is not None:
        updates.append(Update(SNAPSHOTS, e.replaces, {REPLACED_BY: e.snapshot_id}))
    return updates


_PROJECTORS: dict[type[Event], Any] = {
    ReferralReceived: _referral_received,
    ReferralAccepted: _referral_accepted,
    ReferralDeclined: _referral_declined,
    ClientWaitlisted: _waitlisted,
    WaitlistExited: _waitlist_exited,
    TrajectoryOpened: _opened,
    TrajectoryPhaseChanged: _phase,
    FirstContactMade: _first_contact,
    AftercareStarted: _aftercare,
    TrajectoryClosed: _closed,
    AppointmentScheduled: _scheduled,
    AppointmentRescheduled: _rescheduled,
    AppointmentCancelled: _cancelled,
    AppointmentAttended: _attended,
    AppointmentMissed: _missed,
    ContactRegistered: _contact,
    ModuleAssigned: _assigned,
    ModuleStarted: _started,
    ModuleStepCompleted: _step,
    ModuleCompleted: _completed,
    ModuleAbandoned: _abandoned,
    PartnerReferralRecorded: _handoff,
    PartnerOutcomeRecorded: _handoff_outcome,
    SignalReceived: _signal_received,
    SignalOutreachAttempted: _signal_outreach,
    SignalOutreachOverdue: _signal_overdue,
    SignalHelpAccepted: _signal_accepted,
    SignalHelpDeclined: _signal_declined,
    KpiSnapshotPublished: _snapshot,
    KpiSnapshotPublishedV2: _snapshot_v2,
}


class FactBook:
    """The fact documents in memory, updated exactly as the Mongo store updates them."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in FACT_COLLECTIONS
        }

    def apply(self, update: Update) -> None:
        doc = self.collections[update.collection].setdefault(update.key, {"_id": update.key})
        doc.update(update.set)
        for name, value in update.max.items():
            if doc.get(name) is None or value > doc[name]:
                doc[name] = value
        for name, value in update.min.items():
            if doc.get(name) is None or value < doc[name]:
                doc[name] = value

    def record(self, event: Event) -> None:
        for update in updates_for(event):
            self.apply(update)

    def documents(self, collection: str) -> list[dict[str, Any]]:
        return list(self.collections[collection].values())
