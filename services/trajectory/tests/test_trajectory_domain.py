"""The trajectory's rules, without a server: appointments, first contact, reminders to the
worker, the debt-counselling hand-off, homework, closure, aftercare and forgetting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    AftercareStarted,
    AppointmentCancelled,
    AppointmentRegistrationOverdue,
    AppointmentRescheduled,
    FirstContactMade,
    HomeworkFeedbackGiven,
    PartnerOutcomeRecorded,
    PartnerReferralRecorded,
    PartnerReferralRequested,
    PartnerReferralWithdrawn,
    ReferralAccepted,
    TrajectoryClosed,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
    WaitlistExited,
    WithdrawalReason,
)
from ketenbus.contracts.topics import partner_outbound
from ketenbus.contracts.values import (
    AppointmentKind,
    ClosureReason,
    ContactChannel,
    ContactDirection,
    Modality,
    Phase,
    ReferralTopic,
    ReferrerType,
    WorkType,
    new_id,
)
from ketenbus.kit.clock import FixedClock
from ketenbus.kit.errors import DomainError
from ketenbus.trajectory.domain import (
    AppointmentStatus,
    HandOffConsent,
    HandOffStatus,
    NotFound,
    Trajectory,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GRACE = timedelta(hours=24)
DEBT = "schuldhulp-midden"


def accepted(crisis: bool = False) -> ReferralAccepted:
    return ReferralAccepted(
        referral_id=new_id("ref"),
        client_ref=new_id("cl"),
        organisation_id="welzijn-utrecht",
        funder="Utrecht",
        work_type=WorkType.MATERIAL,
        referrer_type=ReferrerType.GP,
        topic=ReferralTopic.DEBTS_MATERIAL,
        postcode_area="3512",
        crisis=crisis,
        consent_id=new_id("cns"),
        received_at=NOW - timedelta(days=2),
        accepted_at=NOW - timedelta(days=1),
    )


def opened() -> Trajectory:
    trajectory = Trajectory.open(accepted(), at=NOW)
    trajectory.events.clear()
    return trajectory


def plan(trajectory: Trajectory, starts_at: datetime, minutes: int = 45) -> str:
    return trajectory.schedule(
        kind=AppointmentKind.FOLLOW_UP,
        starts_at=starts_at,
        duration_minutes=minutes,
        modality=Modality.FACE_TO_FACE,
        worker_id="mw.utrecht",
        goal="Post en rekeningen ordenen",
        at=NOW,
    ).id


def of_type(trajectory: Trajectory, kind: type) -> list:
    return [e for e in trajectory.events if isinstance(e, kind)]


def consent() -> HandOffConsent:
    contact = sealing.seal(
        b'{"name": "x"}', data_key=sealing.new_key(), key_id="k", recipient_key=sealing.new_key()
    )
    return HandOffConsent(new_id("cns"), DEBT, contact)


def test_a_trajectory_opens_on_acceptance_or_on_leaving_the_waiting_list():
    from_referral = Trajectory.open(accepted(crisis=True), at=NOW)
    waited = WaitlistExited(
        **accepted().model_dump(exclude={"accepted_at", "crisis"}),
        exited_at=NOW,
        crisis=True,
    )
    from_waitlist = Trajectory.open(waited, at=NOW)

    assert [type(e) for e in from_referral.events] == [TrajectoryOpened]
    assert from_referral.crisis and from_waitlist.crisis
    assert from_waitlist.referral_id == waited.referral_id
    assert from_waitlist.events[0].referred_at == waited.received_at


def test_the_first_attended_appointment_is_the_first_contact_and_a_miss_is_not():
    trajectory = opened()
    missed, attended, later = (plan(trajectory, NOW + timedelta(days=d)) for d in (1, 8, 15))

    trajectory.miss(missed, "mw.utrecht", NOW + timedelta(days=1))
    assert of_type(trajectory, FirstContactMade) == []
    trajectory.attend(attended, NOW + timedelta(days=8))
    trajectory.attend(later, NOW + timedelta(days=15))

    [first] = of_type(trajectory, FirstContactMade)
    assert first.occurred_at == NOW + timedelta(days=8)
    assert first.referral_id == trajectory.referral_id
    with pytest.raises(DomainError):
        trajectory.attend(missed, NOW)


def test_a_message_only_from_the_worker_is_no_contact_yet():
    trajectory = opened()
    trajectory.register_contact(
        channel=ContactChannel.DOSSIER_MESSAGE,
        direction=ContactDirection.WORKER_TO_CLIENT,
        minutes=5,
        default_duration=True,
        online_dossier=True,
        replaces_face_to_face=False,
        occurred_at=NOW,
        worker_id="mw.utrecht",
    )
    assert of_type(trajectory, FirstContactMade) == []

    trajectory.register_contact(
        channel=ContactChannel.PHONE,
        direction=ContactDirection.BOTH,
        minutes=15,
        default_duration=False,
        online_dossier=False,
        replaces_face_to_face=True,
        occurred_at=NOW + timedelta(hours=2),
        worker_id="mw.utrecht",
    )
    assert len(of_type(trajectory, FirstContactMade)) == 1


def test_an_unregistered_appointment_reminds_the_worker_once_and_is_never_marked_missed():
    clock = FixedClock(NOW)
    trajectory = opened()
    appointment_id = plan(trajectory, NOW + timedelta(hours=1), minutes=60)

    clock.advance(timedelta(hours=2) + GRACE - timedelta(seconds=1))
    assert trajectory.remind_overdue(clock.now(), GRACE) == []
    clock.advance(timedelta(seconds=1))
    [overdue] = trajectory.remind_overdue(clock.now(), GRACE)
    clock.advance(timedelta(days=3))
    assert trajectory.remind_overdue(clock.now(), GRACE) == []

    [event] = of_type(trajectory, AppointmentRegistrationOverdue)
    assert event.appointment_id == appointment_id and event.worker_id == "mw.utrecht"
    assert event.overdue_since == NOW + timedelta(hours=2) + GRACE
    assert overdue.status is AppointmentStatus.SCHEDULED
    trajectory.attend(appointment_id, clock.now())  # still the worker's to register


def test_rescheduling_moves_the_appointment_and_its_reminder():
    trajectory = opened()
    appointment_id = plan(trajectory, NOW + timedelta(days=1))
    later = NOW + timedelta(days=4)

    trajectory.reschedule(appointment_id, later, Modality.VIDEO, at=NOW)

    [moved] = of_type(trajectory, AppointmentRescheduled)
    assert moved.previous_starts_at == NOW + timedelta(days=1) and moved.starts_at == later
    assert moved.modality is Modality.VIDEO
    assert trajectory.remind_overdue(NOW + timedelta(days=2) + GRACE, GRACE) == []


def test_the_hand_off_goes_to_the_partner_with_the_sealed_contact_and_runs_alongside():
    trajectory = opened()
    given = consent()

    hand_off = trajectory.request_partner_referral(given, at=NOW)

    [request] = of_type(trajectory, PartnerReferralRequested)
    assert request.destination() == partner_outbound(DEBT)
    assert request.client_contact == given.contact and request.postcode_area == "3512"
    assert len(of_type(trajectory, PartnerReferralRecorded)) == 1
    with pytest.raises(DomainError):
        trajectory.request_partner_referral(given, at=NOW)  # one at a time per partner
    with pytest.raises(DomainError):
        trajectory.record_partner_answer(hand_off.id, "someone-else", None, "accepted", NOW)

    trajectory.record_partner_answer(hand_off.id, DEBT, HandOffStatus.ACCEPTED, "accepted", NOW)
    trajectory.record_partner_answer(hand_off.id, DEBT, None, "arrangement_running", NOW)
    assert not trajectory.aftercare_suggested
    trajectory.record_partner_answer(
        hand_off.id, DEBT, HandOffStatus.COMPLETED, "arrangement_completed", NOW
    )

    assert trajectory.aftercare_suggested
    assert [e.status for e in of_type(trajectory, PartnerOutcomeRecorded)] == [
        "accepted",
        "arrangement_running",
        "arrangement_completed",
    ]
    assert trajectory.is_open  # the partner finishing closes nothing
    with pytest.raises(NotFound):
        trajectory.record_partner_answer(new_id("prf"), DEBT, None, "x", NOW)


def test_withdrawn_consent_withdraws_the_hand_off_and_later_news_is_not_recorded():
    trajectory = opened()
    hand_off = trajectory.request_partner_referral(consent(), at=NOW)
    trajectory.events.clear()

    trajectory.withdraw_partner_referrals(DEBT, WithdrawalReason.CONSENT_WITHDRAWN, NOW)
    trajectory.record_partner_answer(hand_off.id, DEBT, None, "stabilising", NOW)

    [withdrawn] = trajectory.events
    assert isinstance(withdrawn, PartnerReferralWithdrawn)
    assert withdrawn.destination() == partner_outbound(DEBT)
    assert hand_off.status is HandOffStatus.WITHDRAWN and hand_off.progress is None


def test_homework_is_shown_to_the_worker_and_feedback_goes_back_sealed():
    trajectory = opened()
    assignment = trajectory.assign_module("grip-op-je-geld", language="nl", at=NOW)
    submission = new_id("hws")
    feedback_key = sealing.new_key()
    sealed = sealing.seal(
        b"Goed gedaan!", data_key=sealing.new_key(), key_id=submission, recipient_key=feedback_key
    )

    trajectory.record_homework(submission, assignment.enrolment_id, "stap-3", NOW)
    trajectory.record_homework(submission, assignment.enrolment_id, "stap-3", NOW)
    trajectory.give_feedback(submission, sealed, "mw.utrecht", NOW + timedelta(hours=1))

    [homework] = trajectory.homework
    assert homework.module_id == "grip-op-je-geld" and homework.feedback_by == "mw.utrecht"
    [given] = of_type(trajectory, HomeworkFeedbackGiven)
    assert sealing.open_sealed(given.feedback, feedback_key) == b"Goed gedaan!"
    with pytest.raises(NotFound):
        trajectory.give_feedback(new_id("hws"), sealed, "mw.utrecht", NOW)


def test_aftercare_then_closure_cancels_what_was_planned_and_ends_all_actions():
    trajectory = opened()
    trajectory.change_phase(Phase.GUIDANCE, 3, NOW)
    planned = plan(trajectory, NOW + timedelta(days=30))
    trajectory.register_contact(
        channel=ContactChannel.CHAT,
        direction=ContactDirection.BOTH,
        minutes=10,
        default_duration=False,
        online_dossier=True,
        replaces_face_to_face=False,
        occurred_at=NOW,
        worker_id="mw.utrecht",
    )

    trajectory.start_aftercare(NOW + timedelta(days=1))
    trajectory.close(ClosureReason.GOAL_REACHED, NOW + timedelta(days=2))

    assert len(of_type(trajectory, AftercareStarted)) == 1
    phases = [(e.phase, e.debt_journey_phase) for e in of_type(trajectory, TrajectoryPhaseChanged)]
    assert phases == [(Phase.GUIDANCE, 3), (Phase.AFTERCARE, 5)]
    [cancelled] = of_type(trajectory, AppointmentCancelled)
    assert cancelled.appointment_id == planned
    [closed] = of_type(trajectory, TrajectoryClosed)
    assert closed.online_dossier_used and closed.reason is ClosureReason.GOAL_REACHED
    with pytest.raises(DomainError):
        plan(trajectory, NOW + timedelta(days=40))
    with pytest.raises(DomainError):
        trajectory.close(ClosureReason.NO_CONTACT, NOW)


def test_forgetting_the_client_drops_the_workers_words_and_stops_the_partners():
    trajectory = opened()
    plan(trajectory, NOW + timedelta(days=1))
    trajectory.request_partner_referral(consent(), at=NOW)
    trajectory.events.clear()

    trajectory.forget(NOW)

    assert all(a.goal is None for a in trajectory.appointments)
    [withdrawn] = trajectory.events
    assert withdrawn.reason is WithdrawalReason.CLIENT_ERASED
    assert trajectory.forgotten_at == NOW
