"""What notifications does when other services' events arrive."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

from ketenbus.contracts.envelope import Envelope, Event
from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentCancelled,
    AppointmentMissed,
    AppointmentRescheduled,
    AppointmentScheduled,
    ClientContactShared,
    ClientErasureRequested,
    ClientWaitlisted,
    ConsentGranted,
    ConsentWithdrawn,
    HomeworkSubmitted,
    ModuleAbandoned,
    ModuleAssigned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
    WaitlistExited,
    WorkerNote,
    WorkerNotified,
)
from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD
from ketenbus.contracts.topics import CONTACTS, client_of_contact_card, contact_card_key
from ketenbus.contracts.values import ConsentPurpose, ReminderPurpose
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import EventUnitOfWork, UnitOfWork
from ketenbus.notifications import planning
from ketenbus.notifications.contact import open_card, phone_index
from ketenbus.notifications.domain import Audience, Reminder, ReminderStatus
from ketenbus.notifications.planning import ModuleWatch
from ketenbus.notifications.policies import Policies
from ketenbus.notifications.settings import NotificationSettings
from ketenbus.notifications.store import NotificationTransaction

handlers = EventHandlers("notifications")
log = get_logger(__name__)

Uow: TypeAlias = EventUnitOfWork[NotificationTransaction]


@handlers.on(ClientContactShared)
async def keep_contact(
    event: Envelope[ClientContactShared], uow: Uow, contact_key: bytes, phone_key: bytes
) -> None:
    """Kept sealed as it came; only the keyed hash of the phone number is made here. Intake
    shares a card only under a `reminders` consent, but on the contacts topic, so the card may
    come before that consent (on the clients topic): it is kept, and nothing is sent without
    the consent. A card shared before the consent was withdrawn is not kept: its tombstone
    follows it (data we may not use, we do not hold)."""
    shared = event.data
    card = open_card(shared.contact, contact_key)
    async with uow.handling(event) as tx:
        if await tx.reminder_consents.withdrawn_since(shared.client_ref, shared.shared_at):
            log.info("contact card of a withdrawn consent to reminders not kept")
            return
        await tx.contacts.keep(
            client_ref=shared.client_ref,
            organisation_id=shared.organisation_id,
            sealed=shared.contact,
            language=shared.language,
            preferred_channel=shared.preferred_channel,
            phone_index=phone_index(card.phone if card else None, phone_key),
            shared_at=shared.shared_at,
        )


@handlers.on_tombstone(CONTACTS)
async def forget_contact(key: str, uow: UnitOfWork[NotificationTransaction]) -> None:
    """Intake took the card back (an erasure, the last consent to reminders withdrawn). The
    tombstone follows the card on its partition, so a card read after the erasure or the
    withdrawal is forgotten here too. Forgetting twice is harmless: no inbox claim."""
    client_ref = client_of_contact_card(key)
    if key != contact_card_key(client_ref, NOTIFICATIONS_CARD):
        return  # another recipient's card: not ours to forget
    async with uow.command() as tx:
        await tx.contacts.forget(client_ref)


# ---------------------------------------------------------------- consent


@handlers.on(ConsentGranted)
async def note_consent(event: Envelope[ConsentGranted], uow: Uow) -> None:
    """Only the `reminders` purpose concerns notifications (the others are other services')."""
    granted = event.data
    if granted.purpose is not ConsentPurpose.REMINDERS:
        return
    async with uow.handling(event) as tx:
        await tx.reminder_consents.grant(granted.client_ref, granted.consent_id, granted.granted_at)


@handlers.read_ahead(ClientContactShared, ConsentGranted)
async def consents_of_clients(events: list[Envelope[Any]], tx: NotificationTransaction) -> None:
    """A shared card asks whether the client withdrew since, a consent to reminders adds to
    the client's: in a batch, one query for all their clients' consents."""
    await tx.reminder_consents.read_ahead(
        e.data.client_ref
        for e in events
        if not isinstance(e.data, ConsentGranted) or e.data.purpose is ConsentPurpose.REMINDERS
    )


@handlers.on(ConsentWithdrawn)
async def stop_reminding(event: Envelope[ConsentWithdrawn], uow: Uow) -> None:
    """Withdrawn consent to reminders: from this event on, nothing more goes to the client.
    Waiting messages are cancelled and the contact card is deleted; notes to the team about
    the client (no personal data, to the organisation's own mailbox) stay."""
    withdrawn = event.data
    if withdrawn.purpose is not ConsentPurpose.REMINDERS:
        return
    async with uow.handling(event) as tx:
        client_ref = withdrawn.client_ref
        if not await tx.reminder_consents.withdraw(
            client_ref, withdrawn.consent_id, withdrawn.withdrawn_at
        ):
            return  # another consent to reminders is still in force
        # A card shared after the withdrawal came with a consent given since (the card
        # travels on the contacts topic and may overtake this event): that one stays.
        await tx.contacts.forget(client_ref, shared_until=withdrawn.withdrawn_at)
        waiting = [
            r for r in await tx.reminders.of_client(client_ref) if r.audience is Audience.CLIENT
        ]
        planning.cancel_waiting(waiting, "the client withdrew consent to reminders", tx.clock.now())
        await tx.reminders.save_all(waiting)


@handlers.on(AppointmentScheduled)
async def plan_appointment_reminders(
    event: Envelope[AppointmentScheduled], uow: Uow, policies: Policies
) -> None:
    scheduled = event.data
    async with uow.handling(event) as tx:
        policy = policies.of(scheduled.organisation_id)
        await tx.reminders.add_all(
            planning.appointment_reminders(scheduled, policy, tx.clock.now())
        )


@handlers.on(AppointmentRescheduled)
async def move_appointment_reminders(
    event: Envelope[AppointmentRescheduled], uow: Uow, policies: Policies
) -> None:
    moved = event.data
    async with uow.handling(event) as tx:
        existing = await tx.reminders.of_appointment(moved.appointment_id)
        policy = policies.of(moved.organisation_id)
        new = planning.follow_appointment(moved, existing, policy, tx.clock.now())
        await tx.reminders.save_all(existing)
        await tx.reminders.add_all(new)


@handlers.on(AppointmentCancelled)
async def drop_appointment_reminders(event: Envelope[AppointmentCancelled], uow: Uow) -> None:
    await _cancel_for_appointment(event, uow, "the appointment was cancelled")


@handlers.on(AppointmentAttended)
async def close_appointment_reminders(event: Envelope[AppointmentAttended], uow: Uow) -> None:
    await _cancel_for_appointment(event, uow, "the appointment took place")


async def _cancel_for_appointment(
    event: Envelope[AppointmentCancelled] | Envelope[AppointmentAttended], uow: Uow, reason: str
) -> None:
    async with uow.handling(event) as tx:
        reminders = await tx.reminders.of_appointment(event.data.appointment_id)
        planning.cancel_waiting(reminders, reason, tx.clock.now())
        await tx.reminders.save_all(reminders)


@handlers.on(AppointmentMissed)
async def follow_up_missed_appointment(
    event: Envelope[AppointmentMissed],
    uow: Uow,
    settings: NotificationSettings,
    policies: Policies,
) -> None:
    """A calm word to the client (we missed you, how can we help) and a note to the worker."""
    missed = event.data
    async with uow.handling(event) as tx:
        now = tx.clock.now()
        policy = policies.of(missed.organisation_id)
        earlier = await tx.reminders.of_appointment(missed.appointment_id)
        planning.cancel_waiting(earlier, "the appointment was missed", now)
        await tx.reminders.save_all(earlier)
        delay = policy.missed_follow_up_delay
        follow_up = planning.missed_follow_up(
            missed, settings.missed_follow_up_delay if delay is None else delay, now
        )
        await tx.reminders.add(follow_up)
        await tell_worker(
            tx, WorkerNote.CLIENT_MISSED_APPOINTMENT, follow_up, policies, now, missed.worker_id
        )


async def tell_worker(
    tx: NotificationTransaction,
    note: WorkerNote,
    about: Reminder,
    policies: Policies,
    now: datetime,
    worker_id: str | None = None,
) -> None:
    """On the worker's task list (trajectory reads WorkerNotified), and by e-mail when the
    organisation has a team mailbox."""
    tx.publish(
        WorkerNotified(
            client_ref=about.client_ref,
            organisation_id=about.organisation_id,
            note=note,
            trajectory_id=about.trajectory_id,
            worker_id=worker_id or about.worker_id,
            appointment_id=about.appointment_id,
            reminder_id=about.id,
            follow_up_due_at=(
                about.due_at if note is WorkerNote.CLIENT_MISSED_APPOINTMENT else None
            ),
            notified_at=now,
        )
    )
    if policies.of(about.organisation_id).worker_mailbox:
        await tx.reminders.add(
            planning.note_for_team(
                client_ref=about.client_ref,
                organisation_id=about.organisation_id,
                note=note,
                now=now,
                about=about,
            )
        )


@handlers.on(ClientWaitlisted)
async def invite_while_waiting(
    event: Envelope[ClientWaitlisted], uow: Uow, policies: Policies
) -> None:
    """The moment that got 60-70 % response: a link to self-help while the client waits."""
    waitlisted = event.data
    async with uow.handling(event) as tx:
        now = tx.clock.now()
        policy = policies.of(waitlisted.organisation_id)
        await tx.reminders.add(
            Reminder.schedule(
                client_ref=waitlisted.client_ref,
                organisation_id=waitlisted.organisation_id,
                purpose=ReminderPurpose.WAITLIST_INVITATION,
                due_at=max(waitlisted.waitlisted_at + policy.waitlist_invitation_delay, now),
                at=now,
            )
        )


@handlers.on(WaitlistExited)
async def stop_inviting(event: Envelope[WaitlistExited], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        waiting = await tx.reminders.waiting(
            event.data.client_ref, ReminderPurpose.WAITLIST_INVITATION.value
        )
        planning.cancel_waiting(waiting, "the client is no longer waiting", tx.clock.now())
        await tx.reminders.save_all(waiting)


# ---------------------------------------------------------------- module nudges

_PROGRESS = (ModuleStarted, ModuleStepCompleted, HomeworkSubmitted, QuestionnaireCompleted)


def _progress_at(event: Event) -> datetime:
    for name in ("assigned_at", "started_at", "completed_at", "submitted_at"):
        value = getattr(event, name, None)
        if isinstance(value, datetime):
            return value
    raise ValueError(f"{event.name} carries no moment of progress")


@handlers.on(ModuleAssigned, *_PROGRESS)
async def watch_module_progress(
    event: Envelope[ModuleAssigned]
    | Envelope[ModuleStarted]
    | Envelope[ModuleStepCompleted]
    | Envelope[HomeworkSubmitted]
    | Envelope[QuestionnaireCompleted],
    uow: Uow,
    policies: Policies,
) -> None:
    """Progress (or a new assignment) starts the idle time anew: the nudges move on."""
    data = event.data
    at = _progress_at(data)
    async with uow.handling(event) as tx:
        now = tx.clock.now()
        watch = await tx.module_watches.get(data.enrolment_id)
        if watch is None:
            watch = ModuleWatch(
                data.enrolment_id, data.client_ref, data.organisation_id, last_progress_at=at
            )
        elif not watch.progressed(at):
            return
        await tx.module_watches.save(watch)
        nudges = await tx.reminders.of_enrolment(data.enrolment_id)
        planning.cancel_waiting(nudges, "the client made progress", now)
        await tx.reminders.save_all(nudges)
        sent = sum(1 for n in nudges if n.status is ReminderStatus.SENT)
        policy = policies.of(data.organisation_id)
        await tx.reminders.add_all(watch.nudges(policy, sent, now))


@handlers.on(ModuleCompleted, ModuleAbandoned)
async def stop_nudging(
    event: Envelope[ModuleCompleted] | Envelope[ModuleAbandoned], uow: Uow
) -> None:
    data = event.data
    if isinstance(data, ModuleCompleted):
        at, reason = data.completed_at, "the module is completed"
    else:
        at, reason = data.abandoned_at, "the module was left unfinished"
    async with uow.handling(event) as tx:
        watch = await tx.module_watches.get(data.enrolment_id) or ModuleWatch(
            data.enrolment_id, data.client_ref, data.organisation_id, last_progress_at=at
        )
        watch.finished = True
        await tx.module_watches.save(watch)
        nudges = await tx.reminders.of_enrolment(data.enrolment_id)
        planning.cancel_waiting(nudges, reason, tx.clock.now())
        await tx.reminders.save_all(nudges)


# ---------------------------------------------------------------- erasure


@handlers.on(ClientErasureRequested)
async def forget_client(event: Envelope[ClientErasureRequested], uow: Uow) -> None:
    """Contact details, consents, opt-outs and counters go; waiting reminders are cancelled
    (the cancellations published under the reference), then every reminder of the client
    keeps a random token in its place."""
    client_ref = event.data.client_ref
    async with uow.handling(event) as tx:
        await tx.contacts.forget(client_ref)
        await tx.reminder_consents.forget(client_ref)
        await tx.opt_outs.forget(client_ref)
        await tx.daily_sends.forget(client_ref)
        await tx.module_watches.forget(client_ref)
        reminders = await tx.reminders.of_client(client_ref)
        planning.cancel_waiting(reminders, "the client asked to be forgotten", tx.clock.now())
        await tx.reminders.save_all(reminders)
        await tx.reminders.forget_client(client_ref)
