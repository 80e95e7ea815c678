"""Notifications' reminders and module watches on the real database (SecantusDB): a unit of
work reads each once, every handler of a consumed batch sees what the handlers before it
planned or changed, and what it wrote goes to the database in one bulk write at its end."""

from __future__ import annotations

import json
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import DuplicateKeyError, OperationFailure

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Envelope, Event, wrap
from ketenbus.contracts.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    AppointmentScheduled,
    ClientErasureRequested,
    ClientWaitlisted,
    ConsentGranted,
    ConsentWithdrawn,
    ModuleAssigned,
    ModuleStarted,
    ReminderCancelled,
    ReminderRescheduled,
    ReminderScheduled,
    WaitlistExited,
)
from ketenbus.contracts.samples import contact_card_shared
from ketenbus.contracts.values import (
    AppointmentKind,
    Channel,
    ConsentGiver,
    ConsentPurpose,
    Language,
    Modality,
    ReferralTopic,
    ReferrerType,
    ReminderPurpose,
    WorkType,
    new_id,
)
from ketenbus.kit.clock import FixedClock
from ketenbus.kit.consumer import BoundHandlers
from ketenbus.kit.failures import is_transient
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications import store
from ketenbus.notifications.bootstrap import NotificationDependencies
from ketenbus.notifications.dispatch import Dispatcher
from ketenbus.notifications.domain import Reminder, ReminderStatus
from ketenbus.notifications.handlers import handlers
from ketenbus.notifications.settings import NotificationSettings
from ketenbus.notifications.store import NotificationTransaction

pytestmark = pytest.mark.stack

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Amsterdam
ORG = "welzijn-utrecht"
GATHERED = ("reminders", "module_watches", "reminder_consents", "contacts")


@dataclass
class Service:
    uow: UnitOfWork[NotificationTransaction]
    deps: NotificationDependencies
    handle: BoundHandlers
    commands: SentCommands
    settings: NotificationSettings

    @property
    def reminders(self) -> Any:
        return self.uow.db.reminders

    async def stored(self, **query: Any) -> list[dict[str, Any]]:
        return await self.reminders.find(query).sort("due_at", 1).to_list()

    async def in_batch(self, envelopes: list[Envelope[Any]]) -> list[type[Event]]:
        """The events handled as the consumer hands them a batch; what it published."""
        async with self.uow.batch(envelopes) as batch:
            await self.handle.read_ahead(batch, envelopes)
            for envelope in envelopes:
                await self.handle(envelope, uow=batch)
        return [type(outgoing.data) for outgoing in batch.outgoing]

    def another_dispatcher(self) -> Dispatcher:
        """A second replica's dispatcher: the same settings, an owner of its own."""
        return NotificationDependencies.from_settings(
            self.settings, uow=self.uow, clock=self.uow.clock, registry=CollectorRegistry()
        ).dispatcher


@pytest.fixture
async def service(mongo_url: str) -> AsyncIterator[Service]:
    commands = SentCommands(GATHERED)
    async with watched_database(mongo_url, "notifications_store", commands) as db:
        await store.ensure_indexes(db)
        commands.clear()
        uow = UnitOfWork(
            db.client,
            db,
            service="notifications",
            clock=FixedClock(NOW),
            transaction_class=NotificationTransaction,
        )
        settings = NotificationSettings(contact_sharing_key=sealing.key_to_text(sealing.new_key()))
        deps = NotificationDependencies.from_settings(
            settings, uow=uow, clock=uow.clock, registry=CollectorRegistry()
        )
        yield Service(uow, deps, handlers.bind(deps), commands, settings)


def event(data: Event) -> Envelope[Any]:
    return wrap(data, source="test", time=NOW)


@dataclass(frozen=True)
class Appointment:
    client_ref: str = field(default_factory=lambda: new_id("cl"))
    appointment_id: str = field(default_factory=lambda: new_id("apt"))
    trajectory_id: str = field(default_factory=lambda: new_id("trj"))

    def about(self) -> dict[str, Any]:
        return {
            "client_ref": self.client_ref,
            "organisation_id": ORG,
            "appointment_id": self.appointment_id,
            "trajectory_id": self.trajectory_id,
            "kind": AppointmentKind.FOLLOW_UP,
        }

    def scheduled(self, starts_at: datetime) -> Envelope[Any]:
        return event(
            AppointmentScheduled(
                **self.about(),
                starts_at=starts_at,
                duration_minutes=45,
                modality=Modality.FACE_TO_FACE,
                worker_id="wrk_" + "1" * 32,
                scheduled_at=NOW,
            )
        )

    def moved(self, starts_at: datetime, previous: datetime) -> Envelope[Any]:
        return event(
            AppointmentRescheduled(
                **self.about(),
                starts_at=starts_at,
                previous_starts_at=previous,
                modality=Modality.VIDEO,
                rescheduled_at=NOW,
            )
        )

    def cancelled(self, starts_at: datetime) -> Envelope[Any]:
        return event(AppointmentCancelled(**self.about(), starts_at=starts_at, cancelled_at=NOW))


def module_assigned(client_ref: str, enrolment_id: str) -> Envelope[Any]:
    return event(
        ModuleAssigned(
            trajectory_id=new_id("trj"),
            client_ref=client_ref,
            organisation_id=ORG,
            enrolment_id=enrolment_id,
            module_id="budget-basics",
            language=Language.NL,
            assigned_at=NOW,
        )
    )


def module_started(client_ref: str, enrolment_id: str, at: datetime) -> Envelope[Any]:
    return event(
        ModuleStarted(
            enrolment_id=enrolment_id,
            client_ref=client_ref,
            organisation_id=ORG,
            module_id="budget-basics",
            started_at=at,
        )
    )


def erasure(client_ref: str) -> Envelope[Any]:
    return event(
        ClientErasureRequested(client_ref=client_ref, organisation_id=ORG, requested_at=NOW)
    )


def waitlisted(client_ref: str) -> Envelope[Any]:
    return event(
        ClientWaitlisted(
            referral_id=new_id("ref"),
            client_ref=client_ref,
            organisation_id=ORG,
            position=3,
            waitlisted_at=NOW,
        )
    )


def waitlist_exited(client_ref: str) -> Envelope[Any]:
    return event(
        WaitlistExited(
            referral_id=new_id("ref"),
            client_ref=client_ref,
            organisation_id=ORG,
            funder="utrecht",
            work_type=WorkType.GENERAL,
            referrer_type=ReferrerType.GP,
            topic=ReferralTopic.DEBTS_MATERIAL,
            postcode_area="3511",
            consent_id=new_id("cns"),
            received_at=NOW,
            exited_at=NOW,
        )
    )


def card_shared(client_ref: str, contact_key: bytes, at: datetime = NOW) -> Envelope[Any]:
    """Intake's card for notifications, sealed for them."""
    return event(contact_card_shared(client_ref, ORG, contact_key, at, phone="+31612345678"))


def consent(client_ref: str, consent_id: str, *, withdrawn: bool = False) -> Envelope[Any]:
    about = {
        "consent_id": consent_id,
        "client_ref": client_ref,
        "organisation_id": ORG,
        "partner_organisation_id": ORG,
        "purpose": ConsentPurpose.REMINDERS,
    }
    if withdrawn:
        return event(ConsentWithdrawn(**about, withdrawn_at=NOW))
    return event(ConsentGranted(**about, given_by=ConsentGiver.CLIENT, granted_at=NOW))


async def test_a_batch_of_appointments_writes_its_reminders_in_one_insert(service: Service):
    appointments = [Appointment() for _ in range(20)]
    starts = NOW + timedelta(days=3)

    published = await service.in_batch([a.scheduled(starts) for a in appointments])

    # Nothing read, one insert of every reminder, where one insert per event was.
    assert [c["name"] for c in service.commands.sent] == ["insert"]
    [inserted] = service.commands.to("reminders", "insert")
    assert len(inserted["documents"]) == 40
    assert published == [ReminderScheduled] * 40
    stored = await service.stored()
    assert {d["appointment_id"] for d in stored} == {a.appointment_id for a in appointments}
    assert {d["due_at"] for d in stored} == {
        starts - timedelta(hours=24),
        starts - timedelta(hours=2),
    }


async def test_a_later_handler_in_the_batch_sees_the_reminders_planned_before_it(
    service: Service,
):
    kept, moved = Appointment(), Appointment()
    first, later = NOW + timedelta(days=3), NOW + timedelta(days=4)

    published = await service.in_batch(
        [
            kept.scheduled(first),
            moved.scheduled(first),
            kept.moved(later, previous=first),
            moved.moved(later, previous=first),
            kept.cancelled(later),
        ]
    )

    # Each move and cancel asked the database (it may hold reminders of earlier batches),
    # and found the ones planned in this batch among the kept: one insert, in their final
    # state, and nothing replaced.
    assert len(service.commands.to("reminders", "find")) == 3
    assert len(service.commands.inserted("reminders")) == 4
    assert service.commands.updated("reminders") == []
    assert len(service.commands.to("reminders", "bulkWrite")) == 1
    cancelled = await service.stored(appointment_id=kept.appointment_id)
    assert [d["status"] for d in cancelled] == ["cancelled", "cancelled"]
    assert {d["closed_reason"] for d in cancelled} == {"the appointment was cancelled"}
    waiting = await service.stored(appointment_id=moved.appointment_id)
    assert [d["status"] for d in waiting] == ["scheduled", "scheduled"]
    assert [d["due_at"] for d in waiting] == [
        later - timedelta(hours=24),
        later - timedelta(hours=2),
    ]
    assert {d["modality"] for d in waiting} == {Modality.VIDEO.value}
    # Published as each handler saved, in the handlers' order.
    assert published == [
        *[ReminderScheduled] * 4,
        *[ReminderRescheduled] * 4,
        *[ReminderCancelled] * 2,
    ]

    # A later batch reads them back and replaces them, both in one write.
    service.commands.clear()
    await service.in_batch([moved.cancelled(later), Appointment().scheduled(first)])
    replaced = service.commands.updated("reminders")
    assert [u["q"] for u in replaced] == [{"_id": d["_id"]} for d in waiting]
    assert len(service.commands.inserted("reminders")) == 2  # the new appointment's
    assert len(service.commands.to("reminders", "bulkWrite")) == 1
    assert [d["status"] for d in await service.stored(appointment_id=moved.appointment_id)] == [
        "cancelled",
        "cancelled",
    ]


async def test_a_module_watch_is_read_once_and_written_once_per_batch(service: Service):
    client_ref, enrolment = new_id("cl"), new_id("enr")

    await service.in_batch(
        [
            module_assigned(client_ref, enrolment),
            module_started(client_ref, enrolment, NOW + timedelta(hours=1)),
            module_started(client_ref, enrolment, NOW + timedelta(hours=2)),
        ]
    )

    assert len(service.commands.to("module_watches", "find")) == 1
    written = service.commands.updated("module_watches")
    assert [u["q"] for u in written] == [{"_id": enrolment}]
    [watch] = await service.uow.db.module_watches.find().to_list()
    assert watch["last_progress_at"] == NOW + timedelta(hours=2)
    # The nudges of the earlier progress were cancelled before they were ever stored.
    nudges = await service.stored(enrolment_id=enrolment)
    assert [d["status"] for d in nudges].count("scheduled") == 2
    assert {d["due_at"] for d in nudges if d["status"] == "scheduled"} == {
        NOW + timedelta(hours=2, days=5),
        NOW + timedelta(hours=2, days=10),
    }
    assert len(service.commands.to("reminders", "bulkWrite")) == 1  # with the watch

    # A later batch finds it stored: the same upsert replaces it, no second watch.
    service.commands.clear()
    await service.in_batch([module_started(client_ref, enrolment, NOW + timedelta(hours=3))])
    written = service.commands.updated("module_watches")
    assert [u["upsert"] for u in written] == [True]
    [watch] = await service.uow.db.module_watches.find().to_list()
    assert watch["last_progress_at"] == NOW + timedelta(hours=3)


async def test_an_erasure_reaches_what_its_own_batch_planned(service: Service):
    earlier = Appointment()
    client_ref = earlier.client_ref
    await service.in_batch([earlier.scheduled(NOW + timedelta(days=2))])
    enrolment = new_id("enr")
    planned = Appointment(client_ref=client_ref)

    await service.in_batch(
        [
            planned.scheduled(NOW + timedelta(days=3)),
            module_assigned(client_ref, enrolment),
            waitlisted(client_ref),
            erasure(client_ref),
        ]
    )

    # Nothing leads to the client any more: not the reminders stored before, not those
    # planned in the erasure's own batch, and no module watch.
    assert await service.stored(client_ref=client_ref) == []
    assert await service.uow.db.module_watches.count_documents({}) == 0
    anonymous = await service.stored(
        appointment_id={"$in": [earlier.appointment_id, planned.appointment_id]}
    ) + await service.stored(enrolment_id=enrolment)
    assert len(anonymous) == 2 + 2 + 2
    assert len({d["client_ref"] for d in anonymous}) == 1
    assert anonymous[0]["client_ref"].startswith("anon_")
    assert {d["status"] for d in anonymous} == {"cancelled"}
    assert await service.reminders.count_documents({}) == 2 + 2 + 2 + 1


async def test_a_consent_withdrawn_in_the_batch_that_planned_reminders_cancels_them(
    service: Service,
):
    appointment = Appointment()
    client_ref, consent_id = appointment.client_ref, new_id("cns")

    await service.in_batch(
        [
            consent(client_ref, consent_id),
            appointment.scheduled(NOW + timedelta(days=3)),
            waitlisted(client_ref),
            consent(client_ref, consent_id, withdrawn=True),
        ]
    )

    # The consent is written at once (the withdrawal reads what is left in force); the
    # reminders planned before the withdrawal were kept, and it cancelled them.
    [consents] = await service.uow.db.reminder_consents.find({"_id": client_ref}).to_list()
    assert consents["active"] == []
    stored = await service.stored(client_ref=client_ref)
    assert len(stored) == 3
    assert {d["closed_reason"] for d in stored} == {"the client withdrew consent to reminders"}


def consent_of(client_ref: str) -> str:
    """The id of a test's one consent for the client."""
    return "cns_" + client_ref.removeprefix("cl_")


async def test_a_batch_of_new_clients_reads_their_consents_once_and_writes_once(
    service: Service,
):
    """Intake's consent to reminders and contact card for each new client: one query for
    every client's consents (read ahead), one write of the consents, one of the cards. A
    card shared before its client withdrew (stored, or earlier in the batch) is not kept."""
    contact_key = service.deps.contact_key
    clients = [new_id("cl") for _ in range(10)]
    withdrew, withdrawing = new_id("cl"), clients[0]
    await service.uow.db.reminder_consents.insert_one(
        {"_id": withdrew, "active": [], "withdrawn": True, "changed_at": NOW}
    )
    service.commands.clear()
    batch = [e for c in clients for e in (consent(c, consent_of(c)), card_shared(c, contact_key))]
    batch += [
        consent(withdrawing, consent_of(withdrawing), withdrawn=True),
        card_shared(withdrawing, contact_key, at=NOW - timedelta(minutes=5)),
        card_shared(withdrew, contact_key, at=NOW - timedelta(days=1)),
    ]

    await service.in_batch(batch)

    assert service.commands.names() == [
        ("find", "reminder_consents"),
        ("delete", "contacts"),  # the withdrawal's: the card stored before it, if any
        ("find", "reminders"),  # and its client's waiting reminders, to cancel them
        # More than TOGETHER_AT_MOST writes with the inbox and outbox: a write per collection.
        ("update", "reminder_consents"),
        ("update", "contacts"),
    ]
    [consents_read] = service.commands.to("reminder_consents", "find")
    assert sorted(consents_read["filter"]["_id"]["$in"]) == sorted([*clients, withdrew])
    in_force = {d["_id"]: d["active"] async for d in service.uow.db.reminder_consents.find()}
    assert in_force == {c: [consent_of(c)] for c in clients[1:]} | {withdrawing: [], withdrew: []}
    cards = {d["_id"] async for d in service.uow.db.contacts.find()}
    assert cards == set(clients[1:])


async def test_a_reminder_comes_back_from_the_database_as_it_was_written(service: Service):
    appointment = Appointment()
    await service.in_batch([appointment.scheduled(NOW + timedelta(days=3))])
    async with service.uow.command() as tx:
        [first, _] = await tx.reminders.of_appointment(appointment.appointment_id)
        first.failed_channels.append(Channel.SMS)
        first.move(
            due_at=NOW + timedelta(days=1),
            starts_at=NOW + timedelta(days=2),
            modality=Modality.PHONE,
            at=NOW,
        )
        await tx.reminders.save(first)

    async with service.uow.reading() as tx:
        again = await tx.reminders.get(first.id)

    assert again == first
    assert again is not None and again.offset == timedelta(hours=24)


async def test_a_reminder_written_twice_is_one_clean_duplicate_key_error(service: Service):
    reminder = Reminder.schedule(
        client_ref=new_id("cl"),
        organisation_id=ORG,
        purpose=ReminderPurpose.WAITLIST_INVITATION,
        due_at=NOW,
        at=NOW,
    )
    async with service.uow.command() as tx:
        await tx.reminders.add(reminder)

    with pytest.raises(DuplicateKeyError) as raised:
        async with service.uow.command() as tx:
            await tx.reminders.add(replace(reminder, due_at=NOW + timedelta(days=1), events=[]))

    assert [d["due_at"] for d in await service.stored()] == [NOW]
    # As a log would show it: the key, not the document that would have been written.
    logged = "".join(traceback.format_exception(raised.value))
    assert reminder.id in logged
    assert reminder.client_ref not in logged
    assert ORG not in logged


async def due_for_mail(service: Service) -> Reminder:
    """A waiting-list invitation due now, to a client who consented and shared an address."""
    client_ref = new_id("cl")
    card = json.dumps({"name": "Noor", "phone": None, "email": "noor@example.org"}).encode()
    reminder = Reminder.schedule(
        client_ref=client_ref,
        organisation_id=ORG,
        purpose=ReminderPurpose.WAITLIST_INVITATION,
        due_at=NOW - timedelta(minutes=1),
        at=NOW,
    )
    async with service.uow.command() as tx:
        await tx.reminder_consents.grant(client_ref, new_id("cns"), NOW)
        await tx.contacts.keep(
            client_ref=client_ref,
            organisation_id=ORG,
            sealed=sealing.seal(
                card,
                data_key=sealing.new_key(),
                key_id=client_ref,
                recipient_key=service.deps.contact_key,
            ),
            language=Language.NL,
            preferred_channel=Channel.EMAIL,
            phone_index=None,
            shared_at=NOW,
        )
        await tx.reminders.add(reminder)
    return reminder


def invitation(due_at: datetime, **state: Any) -> Reminder:
    """A waiting-list invitation due then, in the state given (status, retry_at, ...)."""
    reminder = Reminder.schedule(
        client_ref=new_id("cl"),
        organisation_id=ORG,
        purpose=ReminderPurpose.WAITLIST_INVITATION,
        due_at=due_at,
        at=NOW,
    )
    for name, value in state.items():
        setattr(reminder, name, value)
    return reminder


async def test_the_dispatcher_is_given_what_is_due_retried_or_abandoned_earliest_first(
    service: Service,
):
    real_now = datetime.now(UTC)  # retries and claims run on real time
    due = invitation(NOW - timedelta(hours=1))
    retried = invitation(NOW - timedelta(hours=3), retry_at=real_now - timedelta(seconds=1))
    abandoned = invitation(
        NOW - timedelta(hours=2),
        status=ReminderStatus.SENDING,
        claimed_until=real_now - timedelta(seconds=1),
    )
    not_now = [
        invitation(NOW + timedelta(minutes=1)),
        invitation(NOW - timedelta(hours=4), retry_at=real_now + timedelta(minutes=1)),
        invitation(
            NOW - timedelta(hours=5),
            status=ReminderStatus.SENDING,
            claimed_until=real_now + timedelta(minutes=1),
        ),
        invitation(NOW - timedelta(hours=6), status=ReminderStatus.SENT),
    ]
    async with service.uow.command() as tx:
        await tx.reminders.add_all([due, retried, abandoned, *not_now])

    async with service.uow.reading() as tx:
        everything = await tx.reminders.claimable_ids(NOW, real_now, limit=10)
        first_two = await tx.reminders.claimable_ids(NOW, real_now, limit=2)

    assert everything == [retried.id, abandoned.id, due.id]
    assert first_two == [retried.id, abandoned.id]


async def test_the_dispatcher_waits_for_the_next_reminder_and_not_at_all_for_a_retry(
    service: Service,
):
    real_now = datetime.now(UTC)
    waiting = invitation(NOW - timedelta(hours=1), retry_at=real_now + timedelta(minutes=5))
    next_one, later = invitation(NOW + timedelta(hours=2)), invitation(NOW + timedelta(days=2))
    async with service.uow.command() as tx:
        await tx.reminders.add_all([waiting, next_one, later])

    async with service.uow.reading() as tx:
        assert await tx.reminders.next_send_at(before=NOW + timedelta(days=1)) == next_one.due_at
        assert await tx.reminders.next_send_at(before=NOW + timedelta(hours=1)) is None
    # The retry's moment is real time, found by the next poll. Counted as due (an hour
    # ago), it made the pause nothing: the dispatcher asked again at once, all the while.
    assert await service.deps.dispatcher._pause(0.5) == 0.5


async def test_a_claim_is_stored_when_its_step_ends_and_no_other_dispatcher_takes_it(
    service: Service,
):
    reminder = await due_for_mail(service)
    dispatcher, other = service.deps.dispatcher, service.another_dispatcher()

    claimed = await dispatcher._claim(reminder.id, None)

    assert claimed is not None and claimed.channel is Channel.EMAIL
    [stored] = await service.stored(_id=reminder.id)
    assert (stored["status"], stored["claimed_by"]) == ("sending", dispatcher.owner)
    assert await service.uow.db.daily_sends.count_documents({}) == 1
    assert await other._claim(reminder.id, None) is None
    assert await other._hand_over(reminder.id) is False
    assert await dispatcher._hand_over(reminder.id) is True
    [stored] = await service.stored(_id=reminder.id)
    assert (stored["status"], stored["handed_over"]) == ("sending", True)


async def test_a_claim_made_while_a_batch_held_the_reminder_undoes_the_batch(
    service: Service,
):
    reminder = await due_for_mail(service)
    # The client leaves the waiting list: the waiting invitation is to be cancelled.
    left = waitlist_exited(reminder.client_ref)

    # The engine sees the conflict (WriteConflict: the batch's snapshot is older than the
    # claim's commit) when the batch writes the cancelled invitation at its end.
    with pytest.raises(OperationFailure) as raised:
        async with service.uow.batch([left]) as batch:
            await service.handle(left, uow=batch)
            # Meanwhile the dispatcher claims it, committed before the batch ends.
            assert await service.deps.dispatcher._claim(reminder.id, None) is not None
    assert is_transient(raised.value)

    [stored] = await service.stored(_id=reminder.id)
    assert (stored["status"], stored["claimed_by"]) == ("sending", service.deps.dispatcher.owner)
    # As the consumer does after a failed batch: the event on its own. A claimed reminder is
    # not waiting any more: the send goes on, nothing is cancelled under it.
    await service.handle(left)
    [stored] = await service.stored(_id=reminder.id)
    assert stored["status"] == "sending"
