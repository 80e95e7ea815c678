"""Reminders: scheduled durably, sent at most once, and always kind.

Plain Python, no I/O. A reminder is stored long before it is due, so a restart loses
nothing; the dispatcher *claims* it before handing it to a provider, and a reminder whose
hand-over may have succeeded is looked up at the provider before it is ever sent again.

Two clocks meet here. `now` is the chain's (simulated or real) time: when a reminder is
due, quiet hours, the client's day. `real_now` is the machine's wall clock: how long a
claim lasts and when to try a failing provider again, which depend on real processes and
networks, not on the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    ReminderCancelled,
    ReminderFailed,
    ReminderRescheduled,
    ReminderScheduled,
    ReminderSent,
    WorkerNote,
)
from ketenbus.contracts.values import Channel, Language, Modality, ReminderPurpose, new_id
from ketenbus.kit.errors import DomainError
from ketenbus.notifications.policies import OrganisationPolicy
from ketenbus.notifications.timing import (
    end_of_quiet_hours,
    in_quiet_hours,
    local_day,
    next_day_at,
)


class ReminderStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (or for its next attempt)
    SENDING = "sending"  # claimed by a dispatcher, which is handing it over now
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


PENDING = (ReminderStatus.SCHEDULED, ReminderStatus.SENDING)


class Audience(StrEnum):
    CLIENT = "client"
    WORKER = "worker"  # the organisation's team mailbox


class Lookup(StrEnum):
    """What the provider says about an earlier hand-over of this reminder."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"  # the channel cannot tell (SMTP has no such question)


@dataclass(frozen=True)
class Delivered:
    provider_id: str | None = None


@dataclass(frozen=True)
class TransientFailure:
    reason: str
    # The request may have reached the provider (a timeout after sending): look it up
    # before trying again.
    maybe_delivered: bool = False


@dataclass(frozen=True)
class PermanentFailure:
    reason: str


Outcome = Delivered | TransientFailure | PermanentFailure


class ConsentState(StrEnum):
    """The client's `reminders` consent, as intake announced it."""

    GIVEN = "given"
    WITHDRAWN = "withdrawn"  # withdrawn, and no other consent to reminders in force
    UNKNOWN = "unknown"  # never heard of (yet: the consent travels on another topic)


@dataclass(frozen=True)
class Reach:
    """What the dispatcher knows, at the moment of sending, about reaching the recipient."""

    known: bool  # contact details (or a team mailbox) are known
    channels: frozenset[Channel] = frozenset()  # channels with an address
    preferred: Channel = Channel.EMAIL
    language: Language = Language.NL
    opted_out: frozenset[Channel] = frozenset()
    forgotten: bool = False  # the client asked to be forgotten
    # The dispatcher always says; the default serves the domain's own tests.
    consent: ConsentState = ConsentState.GIVEN
    sent_today: int = 0  # messages to this client on this local day so far


@dataclass(frozen=True)
class SendingRules:
    """The service-wide rules of delivery (the organisation's own are in its policy)."""

    claim_seconds: float = 60.0
    max_attempts: int = 6
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    # How long past its due time a reminder waits for the client's contact details.
    contact_wait: timedelta = timedelta(hours=1)
    contact_retry: timedelta = timedelta(minutes=5)

    def backoff(self, attempt: int) -> timedelta:
        """Exponential: base, 2 x base, 4 x base, ... up to the ceiling."""
        seconds = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(attempt - 1, 0))
        return timedelta(seconds=seconds)


@dataclass
class Reminder:
    id: str
    client_ref: str
    organisation_id: str
    purpose: ReminderPurpose
    due_at: datetime
    audience: Audience = Audience.CLIENT
    status: ReminderStatus = ReminderStatus.SCHEDULED
    # The earliest moment it may go out: the due time, moved on by quiet hours or the cap.
    send_at: datetime | None = None
    # What the reminder is about.
    appointment_id: str | None = None
    trajectory_id: str | None = None
    appointment_starts_at: datetime | None = None
    modality: Modality | None = None
    offset: timedelta | None = None  # the policy's "this long before the appointment"
    enrolment_id: str | None = None
    worker_id: str | None = None
    worker_note: WorkerNote | None = None
    # A note to the team is about another reminder: which, what kind, and what happened.
    about_reminder_id: str | None = None
    about_purpose: ReminderPurpose | None = None
    about_due_at: datetime | None = None
    about_reason: str | None = None
    # Delivery.
    channel: Channel | None = None
    attempts: int = 0
    channel_attempts: int = 0
    failed_channels: list[Channel] = field(default_factory=list)
    handed_over: bool = False
    claimed_by: str | None = None
    claimed_until: datetime | None = None  # real time
    retry_at: datetime | None = None  # real time
    counted_day: str | None = None
    deferred_because: str | None = None
    last_failure: str | None = None
    provider_id: str | None = None
    confirmed: bool | None = None
    sent_at: datetime | None = None
    closed_reason: str | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ planning

    @classmethod
    def schedule(
        cls,
        *,
        client_ref: str,
        organisation_id: str,
        purpose: ReminderPurpose,
        due_at: datetime,
        at: datetime,
        **about: object,
    ) -> Reminder:
        reminder = cls(
            id=new_id("rem"),
            client_ref=client_ref,
            organisation_id=organisation_id,
            purpose=purpose,
            due_at=due_at,
            send_at=due_at,
            **about,  # type: ignore[arg-type]
        )
        reminder._record(ReminderScheduled(**reminder._about(), due_at=due_at, scheduled_at=at))
        return reminder

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    @property
    def deadline(self) -> datetime | None:
        """After this a reminder of an appointment is pointless: the appointment has begun.
        (A follow-up after a missed appointment is about one in the past, and has none.)"""
        if self.purpose is ReminderPurpose.APPOINTMENT_REMINDER:
            return self.appointment_starts_at
        return None

    def move(
        self, *, due_at: datetime, starts_at: datetime, modality: Modality, at: datetime
    ) -> None:
        """The appointment moved: the reminder moves with it (and speaks of the new time)."""
        self._ensure(ReminderStatus.SCHEDULED, "moved")
        previous = self.due_at
        self.due_at = self.send_at = due_at
        self.appointment_starts_at, self.modality = starts_at, modality
        self.deferred_because = None
        self._record(
            ReminderRescheduled(
                **self._about(), due_at=due_at, previous_due_at=previous, rescheduled_at=at
            )
        )

    def cancel(self, reason: str, at: datetime) -> None:
        self._ensure(ReminderStatus.SCHEDULED, "cancelled")
        self.status, self.closed_reason = ReminderStatus.CANCELLED, reason
        self._record(ReminderCancelled(**self._about(), reason=reason, cancelled_at=at))

    # ------------------------------------------------------------------ sending

    def claimable(self, now: datetime, real_now: datetime) -> bool:
        if self.status is ReminderStatus.SENDING:
            # A claim that outlived its lease belongs to a dispatcher that died or hung.
            return self.claimed_until is None or self.claimed_until <= real_now
        return (
            self.status is ReminderStatus.SCHEDULED
            and (self.send_at or self.due_at) <= now
            and (self.retry_at is None or self.retry_at <= real_now)
        )

    def resolve(self, lookup: Lookup, *, now: datetime, provider_id: str | None = None) -> None:
        """An earlier hand-over may have reached the provider: settle that first.

        Found: it was delivered, record it. Unknown: the channel cannot tell, so it counts as
        sent (unconfirmed) rather than risk the client getting it twice. Not found: it never
        arrived, and may be sent again.
        """
        if not self.handed_over:
            return
        if lookup is Lookup.NOT_FOUND:
            self.handed_over = False
            return
        self._sent(now, provider_id, confirmed=lookup is Lookup.FOUND)

    def claim(
        self,
        *,
        now: datetime,
        real_now: datetime,
        reach: Reach,
        policy: OrganisationPolicy,
        rules: SendingRules,
        owner: str,
    ) -> Channel | None:
        """Decide what happens now: returns the channel to send on, having claimed the
        reminder, or None when it was deferred, cancelled or failed instead."""
        if not self.claimable(now, real_now):
            return None
        if self.handed_over:
            raise DomainError(f"reminder {self.id} may have been delivered: resolve it first")
        self.status, self.claimed_by, self.claimed_until = ReminderStatus.SCHEDULED, None, None
        deadline = self.deadline
        if deadline is not None and deadline <= now:
            self._close_unsent("the appointment has already begun", now)
            return None
        if reach.forgotten:
            self._close_unsent("the client asked to be forgotten", now)
            return None
        if self.audience is Audience.CLIENT and reach.consent is not ConsentState.GIVEN:
            # The consent may still be on its way (it travels on the clients topic, the
            # waiting list on the referrals topic): wait as long as for contact details.
            if reach.consent is ConsentState.UNKNOWN and now < self.due_at + rules.contact_wait:
                self._defer(now + rules.contact_retry, "waiting for the client's consent")
                return None
            self._close_unsent("the client has not consented to reminders", now)
            return None
        if not reach.known:
            if now < self.due_at + rules.contact_wait:
                self._defer(now + rules.contact_retry, "waiting for contact details")
                return None
            self._fail("no contact details for the client", now)
            return None
        usable = [
            channel
            for channel in _in_order(reach.preferred)
            if channel in reach.channels
            and channel not in reach.opted_out
            and channel not in self.failed_channels
        ]
        if not usable:
            if reach.channels and reach.channels <= reach.opted_out:
                self._close_unsent("the client opted out of every channel we have", now)
            else:
                self._fail(self.last_failure or "no channel left to reach the client", now)
            return None
        channel = usable[0]
        if self.audience is Audience.CLIENT:
            zone = policy.zone
            quiet = (policy.quiet_hours_start, policy.quiet_hours_end)
            if channel is Channel.SMS and in_quiet_hours(now, zone, *quiet):
                morning = end_of_quiet_hours(now, zone, *quiet)
                if deadline is None or morning < deadline:
                    self._defer(morning, "quiet hours")
                    return None
                if Channel.EMAIL not in usable:
                    self._close_unsent("quiet hours last until the appointment", now)
                    return None
                channel = Channel.EMAIL
            if self.counted_day is None and reach.sent_today >= policy.daily_cap:
                tomorrow = next_day_at(now, zone, policy.quiet_hours_end)
                if deadline is None or tomorrow < deadline:
                    self._defer(tomorrow, "daily limit of messages reached")
                    return None
                self._close_unsent("daily limit of messages reached", now)
                return None
            self.counted_day = self.counted_day or local_day(now, zone).isoformat()
        if channel is not self.channel:
            self.channel_attempts = 0
        self.status, self.channel = ReminderStatus.SENDING, channel
        self.attempts += 1
        self.channel_attempts += 1
        self.claimed_by = owner
        self.claimed_until = real_now + timedelta(seconds=rules.claim_seconds)
        self.deferred_because = None
        return channel

    def hand_over(self) -> None:
        """From here on the provider may have it: never send again without looking."""
        self._ensure(ReminderStatus.SENDING, "handed over")
        self.handed_over = True

    def record(
        self, outcome: Outcome, *, now: datetime, real_now: datetime, rules: SendingRules
    ) -> None:
        self._ensure(ReminderStatus.SENDING, "recorded")
        self.claimed_by = self.claimed_until = None
        if isinstance(outcome, Delivered):
            self._sent(now, outcome.provider_id, confirmed=True)
            return
        self.status = ReminderStatus.SCHEDULED
        self.last_failure = outcome.reason
        if isinstance(outcome, TransientFailure) and self.channel_attempts < rules.max_attempts:
            self.handed_over = outcome.maybe_delivered
            self.retry_at = real_now + rules.backoff(self.channel_attempts)
            return
        # This channel will not work: the next claim tries the other one, or gives up.
        assert self.channel is not None
        self.handed_over = False
        self.failed_channels.append(self.channel)
        self.retry_at = None

    # ------------------------------------------------------------------ helpers

    @property
    def failed_for_good(self) -> bool:
        return self.status is ReminderStatus.FAILED

    def _sent(self, now: datetime, provider_id: str | None, *, confirmed: bool) -> None:
        assert self.channel is not None
        self.status, self.sent_at = ReminderStatus.SENT, now
        self.provider_id, self.confirmed = provider_id, confirmed
        self.handed_over, self.claimed_by, self.claimed_until = False, None, None
        self._record(
            ReminderSent(**self._about(), channel=self.channel, due_at=self.due_at, sent_at=now)
        )

    def _defer(self, until: datetime, because: str) -> None:
        self.send_at, self.deferred_because = until, because
        self.retry_at = None

    def _close_unsent(self, reason: str, at: datetime) -> None:
        self.status, self.closed_reason = ReminderStatus.CANCELLED, reason
        self._record(ReminderCancelled(**self._about(), reason=reason, cancelled_at=at))

    def _fail(self, reason: str, at: datetime) -> None:
        self.status, self.closed_reason = ReminderStatus.FAILED, reason
        self._record(
            ReminderFailed(**self._about(), channel=self.channel, reason=reason, failed_at=at)
        )

    def _ensure(self, status: ReminderStatus, action: str) -> None:
        if self.status is not status:
            raise DomainError(f"reminder {self.id} is {self.status}; it cannot be {action}")

    def _about(self) -> dict[str, object]:
        return {
            "reminder_id": self.id,
            "client_ref": self.client_ref,
            "organisation_id": self.organisation_id,
            "purpose": self.purpose,
            "appointment_id": self.appointment_id,
            "enrolment_id": self.enrolment_id,
        }

    def _record(self, event: Event) -> None:
        self.events.append(event)


def _in_order(preferred: Channel) -> list[Channel]:
    """The client's preferred channel first, the other as the fallback."""
    return [preferred, *(channel for channel in Channel if channel is not preferred)]
