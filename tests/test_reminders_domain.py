"""The reminder's rules without any server: planning, quiet hours, opt-outs, the daily cap,
retries and the settling of a hand-over that may have succeeded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ketenbus.contracts.events import (
    AppointmentRescheduled,
    AppointmentScheduled,
    ReminderCancelled,
    ReminderFailed,
    ReminderRescheduled,
    ReminderScheduled,
    ReminderSent,
)
from ketenbus.contracts.values import (
    AppointmentKind,
    Channel,
    Modality,
    ReminderPurpose,
    new_id,
)
from ketenbus.kit.errors import DomainError
from ketenbus.notifications import planning
from ketenbus.notifications.domain import (
    Audience,
    ConsentState,
    Delivered,
    Lookup,
    PermanentFailure,
    Reach,
    Reminder,
    ReminderStatus,
    SendingRules,
    TransientFailure,
)
from ketenbus.notifications.policies import OrganisationPolicy, Policies
from ketenbus.notifications.timing import end_of_quiet_hours, in_quiet_hours

POLICY = OrganisationPolicy()
RULES = SendingRules(retry_base_seconds=2, retry_max_seconds=60, max_attempts=3)
CLIENT = "cl_" + "a" * 32
ORG = "welzijn-utrecht"
REAL = datetime(2030, 1, 1, tzinfo=UTC)  # the machine's clock: leases and retries


def local(text: str) -> datetime:
    """A moment in Amsterdam time, e.g. "2026-03-02 23:00" (winter: UTC+1)."""
    return datetime.fromisoformat(text + "+01:00")


EMAIL_ONLY = Reach(known=True, channels=frozenset({Channel.EMAIL}))
SMS_ONLY = Reach(known=True, channels=frozenset({Channel.SMS}), preferred=Channel.SMS)
BOTH_SMS_FIRST = Reach(
    known=True, channels=frozenset({Channel.SMS, Channel.EMAIL}), preferred=Channel.SMS
)


def scheduled(starts_at: datetime) -> AppointmentScheduled:
    return AppointmentScheduled(
        trajectory_id=new_id("trj"),
        client_ref=CLIENT,
        organisation_id=ORG,
        appointment_id=new_id("apt"),
        kind=AppointmentKind.INTAKE,
        starts_at=starts_at,
        duration_minutes=45,
        modality=Modality.FACE_TO_FACE,
        worker_id="mw.utrecht",
        scheduled_at=starts_at - timedelta(days=3),
    )


def simple(due_at: datetime, **about: object) -> Reminder:
    purpose = (
        ReminderPurpose.APPOINTMENT_REMINDER
        if "appointment_id" in about
        else ReminderPurpose.WAITLIST_INVITATION
    )
    return Reminder.schedule(
        client_ref=CLIENT,
        organisation_id=ORG,
        purpose=purpose,
        due_at=due_at,
        at=due_at,
        **about,
    )


def claim(reminder: Reminder, now: datetime, reach: Reach, real_now: datetime = REAL):
    return reminder.claim(
        now=now, real_now=real_now, reach=reach, policy=POLICY, rules=RULES, owner="test"
    )


def kinds(reminder: Reminder) -> list[type]:
    return [type(e) for e in reminder.events]


# ---------------------------------------------------------------- planning


def test_an_appointment_26_hours_ahead_gets_reminders_24_and_2_hours_before():
    now = local("2026-03-02 09:00")
    appointment = scheduled(now + timedelta(hours=26))
    reminders = planning.appointment_reminders(appointment, POLICY, now)
    assert [r.due_at for r in reminders] == [
        local("2026-03-02 11:00"),
        local("2026-03-03 09:00"),
    ]
    assert all(kinds(r) == [ReminderScheduled] for r in reminders)
    assert {r.appointment_id for r in reminders} == {appointment.appointment_id}


def test_a_reminder_whose_moment_has_passed_is_not_planned():
    now = local("2026-03-02 09:00")
    reminders = planning.appointment_reminders(scheduled(now + timedelta(hours=5)), POLICY, now)
    assert [r.offset for r in reminders] == [timedelta(hours=2)]


def test_an_organisation_can_remind_at_other_moments():
    policies = Policies.parse(
        {"default": {}, "organisations": {ORG: {"appointment_reminders": ["PT10H", "P2D"]}}}
    )
    now = local("2026-03-02 09:00")
    reminders = planning.appointment_reminders(
        scheduled(now + timedelta(days=3)), policies.of(ORG), now
    )
    assert [r.offset for r in reminders] == [timedelta(days=2), timedelta(hours=10)]
    assert policies.of("welzijn-elders").appointment_reminders == (
        timedelta(hours=24),
        timedelta(hours=2),
    )


def test_rescheduling_moves_waiting_reminders_and_replaces_one_already_sent():
    now = local("2026-03-02 09:00")
    appointment = scheduled(now + timedelta(hours=26))
    day_before, two_hours = planning.appointment_reminders(appointment, POLICY, now)
    day_before.status = ReminderStatus.SENT  # it went out for the old time
    later = local("2026-03-02 12:00")
    moved = AppointmentRescheduled(
        **appointment.model_dump(include={"trajectory_id", "client_ref", "organisation_id"}),
        appointment_id=appointment.appointment_id,
        kind=appointment.kind,
        starts_at=appointment.starts_at + timedelta(days=2),
        previous_starts_at=appointment.starts_at,
        modality=Modality.VIDEO,
        rescheduled_at=later,
    )
    new = planning.follow_appointment(moved, [day_before, two_hours], POLICY, later)

    assert two_hours.due_at == moved.starts_at - timedelta(hours=2)
    assert two_hours.modality is Modality.VIDEO
    assert kinds(two_hours)[-1] is ReminderRescheduled
    [fresh] = new
    assert fresh.offset == timedelta(hours=24)
    assert fresh.due_at == moved.starts_at - timedelta(hours=24)
    assert fresh.id != day_before.id  # a new reminder: the old one's Message-ID is used up


def test_an_appointment_moved_closer_cancels_the_reminder_that_would_be_too_late():
    now = local("2026-03-02 09:00")
    appointment = scheduled(now + timedelta(hours=30))
    reminders = planning.appointment_reminders(appointment, POLICY, now)
    moved = AppointmentRescheduled(
        trajectory_id=appointment.trajectory_id,
        client_ref=CLIENT,
        organisation_id=ORG,
        appointment_id=appointment.appointment_id,
        kind=appointment.kind,
        starts_at=now + timedelta(hours=5),
        previous_starts_at=appointment.starts_at,
        modality=Modality.FACE_TO_FACE,
        rescheduled_at=now,
    )
    assert planning.follow_appointment(moved, reminders, POLICY, now) == []
    assert [r.status for r in reminders] == [ReminderStatus.CANCELLED, ReminderStatus.SCHEDULED]
    assert kinds(reminders[0])[-1] is ReminderCancelled


def test_a_sent_reminder_cannot_be_cancelled_or_moved():
    reminder = simple(local("2026-03-02 10:00"))
    reminder.status = ReminderStatus.SENT
    with pytest.raises(DomainError):
        reminder.cancel("too late", local("2026-03-02 11:00"))
    planning.cancel_waiting([reminder], "too late", local("2026-03-02 11:00"))  # no error
    assert reminder.status is ReminderStatus.SENT


def test_module_nudges_come_one_idle_period_apart_up_to_the_maximum():
    start = local("2026-03-02 10:00")
    watch = planning.ModuleWatch(new_id("enr"), CLIENT, ORG, last_progress_at=start)
    nudges = watch.nudges(POLICY, already_sent=0, now=start)
    assert [n.due_at for n in nudges] == [start + timedelta(days=5), start + timedelta(days=10)]
    assert watch.nudges(POLICY, already_sent=2, now=start) == []
    assert watch.progressed(start + timedelta(days=1)) is True
    assert watch.progressed(start) is False  # an older event moves nothing
    watch.finished = True
    assert watch.nudges(POLICY, already_sent=0, now=start) == []


# ---------------------------------------------------------------- quiet hours and the cap


def test_quiet_hours_run_from_nine_at_night_to_eight_in_the_morning_local_time():
    zone, start, end = POLICY.zone, POLICY.quiet_hours_start, POLICY.quiet_hours_end
    assert in_quiet_hours(local("2026-03-02 23:00"), zone, start, end)
    assert in_quiet_hours(local("2026-03-02 07:59"), zone, start, end)
    assert not in_quiet_hours(local("2026-03-02 08:00"), zone, start, end)
    assert not in_quiet_hours(local("2026-03-02 20:59"), zone, start, end)
    # Summer time: 08:00 in Amsterdam is 06:00 UTC.
    summer = datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    assert end_of_quiet_hours(summer, zone, start, end) == datetime(2026, 7, 2, 6, tzinfo=UTC)


def test_an_sms_due_at_eleven_at_night_waits_until_eight_in_the_morning():
    reminder = simple(local("2026-03-02 23:00"))
    assert claim(reminder, local("2026-03-02 23:00"), SMS_ONLY) is None
    assert reminder.status is ReminderStatus.SCHEDULED
    assert reminder.send_at == local("2026-03-03 08:00")
    assert reminder.deferred_because == "quiet hours"
    assert not reminder.claimable(local("2026-03-03 07:59"), REAL)
    assert claim(reminder, local("2026-03-03 08:00"), SMS_ONLY) is Channel.SMS


def test_an_email_goes_out_at_night_when_the_client_prefers_email():
    reminder = simple(local("2026-03-02 23:00"))
    assert claim(reminder, local("2026-03-02 23:00"), EMAIL_ONLY) is Channel.EMAIL


def test_when_quiet_hours_outlast_the_appointment_the_email_goes_now_instead():
    starts = local("2026-03-03 07:30")
    reminder = simple(
        local("2026-03-03 05:30"), appointment_id=new_id("apt"), appointment_starts_at=starts
    )
    assert claim(reminder, local("2026-03-03 05:30"), BOTH_SMS_FIRST) is Channel.EMAIL
    sms_only = simple(
        local("2026-03-03 05:30"), appointment_id=new_id("apt"), appointment_starts_at=starts
    )
    assert claim(sms_only, local("2026-03-03 05:30"), SMS_ONLY) is None
    assert sms_only.status is ReminderStatus.CANCELLED


def test_a_client_who_stopped_sms_gets_email_and_one_who_stopped_both_gets_nothing():
    stopped_sms = Reach(
        known=True,
        channels=frozenset({Channel.SMS, Channel.EMAIL}),
        preferred=Channel.SMS,
        opted_out=frozenset({Channel.SMS}),
    )
    reminder = simple(local("2026-03-02 12:00"))
    assert claim(reminder, local("2026-03-02 12:00"), stopped_sms) is Channel.EMAIL
    stopped_all = Reach(
        known=True,
        channels=frozenset({Channel.SMS, Channel.EMAIL}),
        opted_out=frozenset({Channel.SMS, Channel.EMAIL}),
    )
    other = simple(local("2026-03-02 12:00"))
    assert claim(other, local("2026-03-02 12:00"), stopped_all) is None
    assert other.status is ReminderStatus.CANCELLED
    assert kinds(other)[-1] is ReminderCancelled  # their choice, not a failure


def test_the_daily_cap_holds_further_messages_until_the_next_morning():
    full = Reach(known=True, channels=frozenset({Channel.EMAIL}), sent_today=3)
    reminder = simple(local("2026-03-02 15:00"))
    assert claim(reminder, local("2026-03-02 15:00"), full) is None
    assert reminder.send_at == local("2026-03-03 08:00")
    assert reminder.deferred_because == "daily limit of messages reached"
    fresh = Reach(known=True, channels=frozenset({Channel.EMAIL}), sent_today=0)
    assert claim(reminder, local("2026-03-03 08:00"), fresh) is Channel.EMAIL
    assert reminder.counted_day == "2026-03-03"


def test_a_reminder_for_an_appointment_that_has_begun_is_cancelled_not_sent():
    starts = local("2026-03-02 10:00")
    reminder = simple(
        starts - timedelta(hours=2), appointment_id=new_id("apt"), appointment_starts_at=starts
    )
    assert claim(reminder, starts + timedelta(minutes=1), EMAIL_ONLY) is None
    assert reminder.status is ReminderStatus.CANCELLED


def test_the_follow_up_of_a_missed_appointment_goes_out_though_the_appointment_is_past():
    starts = local("2026-03-02 10:00")
    follow_up = Reminder.schedule(
        client_ref=CLIENT,
        organisation_id=ORG,
        purpose=ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP,
        due_at=starts + timedelta(hours=2),
        at=starts + timedelta(minutes=30),
        appointment_id=new_id("apt"),
        appointment_starts_at=starts,
    )
    assert claim(follow_up, starts + timedelta(hours=2), EMAIL_ONLY) is Channel.EMAIL


def test_without_contact_details_it_waits_a_while_then_fails():
    due = local("2026-03-02 10:00")
    reminder = simple(due)
    assert claim(reminder, due, Reach(known=False)) is None
    assert reminder.status is ReminderStatus.SCHEDULED
    assert reminder.deferred_because == "waiting for contact details"
    assert claim(reminder, due + timedelta(hours=2), Reach(known=False)) is None
    assert reminder.status is ReminderStatus.FAILED
    assert kinds(reminder)[-1] is ReminderFailed


def test_without_consent_to_reminders_nothing_goes_to_the_client():
    due = local("2026-03-02 10:00")
    withdrawn = Reach(
        known=True, channels=frozenset({Channel.EMAIL}), consent=ConsentState.WITHDRAWN
    )
    reminder = simple(due)
    assert claim(reminder, due, withdrawn) is None
    assert reminder.status is ReminderStatus.CANCELLED
    assert reminder.closed_reason == "the client has not consented to reminders"
    assert kinds(reminder)[-1] is ReminderCancelled


def test_a_consent_not_heard_of_yet_is_waited_for_a_while_then_the_reminder_closes_unsent():
    due = local("2026-03-02 10:00")
    unknown = Reach(known=True, channels=frozenset({Channel.EMAIL}), consent=ConsentState.UNKNOWN)
    reminder = simple(due)
    assert claim(reminder, due, unknown) is None
    assert reminder.status is ReminderStatus.SCHEDULED
    assert reminder.deferred_because == "waiting for the client's consent"
    assert claim(reminder, due + timedelta(minutes=10), EMAIL_ONLY) is Channel.EMAIL
    late = simple(due)
    assert claim(late, due + timedelta(hours=2), unknown) is None
    assert late.status is ReminderStatus.CANCELLED  # closed, not failed: no worker alarm


def test_a_note_to_the_team_needs_no_consent_of_the_client():
    due = local("2026-03-02 10:00")
    note = simple(due)
    note.audience = Audience.WORKER
    withdrawn = Reach(
        known=True, channels=frozenset({Channel.EMAIL}), consent=ConsentState.WITHDRAWN
    )
    assert claim(note, due, withdrawn) is Channel.EMAIL


# ---------------------------------------------------------------- delivery


def test_a_transient_failure_is_retried_with_exponential_backoff():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    waits = []
    for attempt in range(1, 3):
        real = REAL + timedelta(minutes=attempt)
        assert claim(reminder, now, SMS_ONLY, real_now=real) is Channel.SMS
        reminder.hand_over()
        reminder.record(TransientFailure("HTTP 500"), now=now, real_now=real, rules=RULES)
        assert reminder.status is ReminderStatus.SCHEDULED
        assert not reminder.claimable(now, real)
        assert reminder.retry_at is not None
        waits.append((reminder.retry_at - real).total_seconds())
    assert waits == [2.0, 4.0]
    real = REAL + timedelta(hours=1)
    assert claim(reminder, now, SMS_ONLY, real_now=real) is Channel.SMS
    reminder.hand_over()
    reminder.record(Delivered("sms-1"), now=now, real_now=real, rules=RULES)
    assert reminder.status is ReminderStatus.SENT
    assert kinds(reminder) == [ReminderScheduled, ReminderSent]
    assert reminder.attempts == 3


def test_a_refused_sms_falls_back_to_email_or_fails_with_the_providers_reason():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    assert claim(reminder, now, BOTH_SMS_FIRST) is Channel.SMS
    reminder.hand_over()
    reminder.record(PermanentFailure("HTTP 400"), now=now, real_now=REAL, rules=RULES)
    assert claim(reminder, now, BOTH_SMS_FIRST) is Channel.EMAIL

    only_sms = simple(now)
    assert claim(only_sms, now, SMS_ONLY) is Channel.SMS
    only_sms.hand_over()
    only_sms.record(PermanentFailure("HTTP 400"), now=now, real_now=REAL, rules=RULES)
    assert claim(only_sms, now, SMS_ONLY) is None
    assert only_sms.status is ReminderStatus.FAILED
    failed = only_sms.events[-1]
    assert isinstance(failed, ReminderFailed) and failed.reason == "HTTP 400"


def test_too_many_transient_failures_count_as_a_failed_channel():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    for attempt in range(RULES.max_attempts):
        real = REAL + timedelta(hours=attempt)
        assert claim(reminder, now, SMS_ONLY, real_now=real) is Channel.SMS
        reminder.hand_over()
        reminder.record(TransientFailure("HTTP 503"), now=now, real_now=real, rules=RULES)
    assert claim(reminder, now, SMS_ONLY, real_now=REAL + timedelta(days=1)) is None
    assert reminder.status is ReminderStatus.FAILED


def test_a_live_claim_is_not_taken_but_an_expired_one_is():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    assert claim(reminder, now, EMAIL_ONLY) is Channel.EMAIL
    assert claim(reminder, now, EMAIL_ONLY, real_now=REAL + timedelta(seconds=10)) is None
    later = REAL + timedelta(seconds=RULES.claim_seconds + 1)
    assert reminder.claimable(now, later)
    assert claim(reminder, now, EMAIL_ONLY, real_now=later) is Channel.EMAIL


def test_a_hand_over_that_may_have_succeeded_is_never_sent_blindly_again():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    claim(reminder, now, SMS_ONLY)
    reminder.hand_over()  # ... and the process dies here
    later = REAL + timedelta(minutes=5)
    assert reminder.claimable(now, later)
    with pytest.raises(DomainError, match="resolve it first"):
        claim(reminder, now, SMS_ONLY, real_now=later)

    reminder.resolve(Lookup.FOUND, now=now, provider_id="sms-9")
    assert reminder.status is ReminderStatus.SENT and reminder.confirmed is True
    assert kinds(reminder)[-1] is ReminderSent


def test_when_the_channel_cannot_tell_it_counts_as_sent_and_when_not_found_it_is_resent():
    now = local("2026-03-02 12:00")
    unknown = simple(now)
    claim(unknown, now, EMAIL_ONLY)
    unknown.hand_over()
    unknown.resolve(Lookup.UNKNOWN, now=now)
    assert unknown.status is ReminderStatus.SENT and unknown.confirmed is False

    lost = simple(now)
    claim(lost, now, SMS_ONLY)
    lost.hand_over()
    lost.resolve(Lookup.NOT_FOUND, now=now)
    assert lost.claimable(now, REAL + timedelta(minutes=5))
    assert claim(lost, now, SMS_ONLY, real_now=REAL + timedelta(minutes=5)) is Channel.SMS


def test_a_timeout_after_sending_makes_the_next_attempt_look_first():
    now = local("2026-03-02 12:00")
    reminder = simple(now)
    claim(reminder, now, SMS_ONLY)
    reminder.hand_over()
    reminder.record(
        TransientFailure("no answer", maybe_delivered=True), now=now, real_now=REAL, rules=RULES
    )
    assert reminder.handed_over is True
    # The next claim must settle it first.
    with pytest.raises(DomainError):
        claim(reminder, now, SMS_ONLY, real_now=REAL + timedelta(minutes=1))
