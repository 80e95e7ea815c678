"""Trajectory's repository on the real database (SecantusDB): a unit of work reads each
trajectory once, every handler of a batch sees what the handlers before it changed, and each
trajectory is written once when the unit of work ends, only at the version it was read at."""

from __future__ import annotations

import traceback
import warnings
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.events import (
    ClientErasureRequested,
    HomeworkSubmitted,
    ModuleCompleted,
    ModuleProgressRecorded,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
    WaitlistExited,
)
from ketenbus.contracts.values import (
    AppointmentKind,
    ClosureReason,
    ContactChannel,
    ContactDirection,
    Language,
    Modality,
    Phase,
    new_id,
)
from ketenbus.kit.consumer import BoundHandlers
from ketenbus.kit.failures import is_transient
from ketenbus.kit.last_write import ConcurrentChange
from ketenbus.kit.sent_commands import SentCommands
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import store
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.domain import (
    Appointment,
    AppointmentStatus,
    Contact,
    HandOffStatus,
    Homework,
    ModuleAssignment,
    PartnerReferral,
    Trajectory,
)
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction

from .test_trajectory_domain import NOW, accepted, opened

pytestmark = pytest.mark.stack


@dataclass
class Service:
    uow: UnitOfWork[TrajectoryTransaction]
    handle: BoundHandlers
    commands: SentCommands

    @property
    def trajectories(self) -> Any:
        return self.uow.db.trajectories

    async def stored(self, trajectory_id: str) -> dict[str, Any]:
        found = await self.trajectories.find_one({"_id": trajectory_id})
        assert found is not None
        return found

    async def staged(self) -> list[str]:
        """The types of the events staged in the outbox, in their order."""
        records = self.uow.db.outbox.find().sort("position", 1)
        return [r["headers"]["event_type"] async for r in records]

    async def in_batch(self, envelopes: list[Envelope[Any]]) -> list[Any]:
        """The events handled as the consumer hands them a batch; what it published."""
        async with self.uow.batch(envelopes) as batch:
            for envelope in envelopes:
                await self.handle(envelope, uow=batch)
        return [type(outgoing.data) for outgoing in batch.outgoing]


@pytest.fixture
def service(uow: UnitOfWork[TrajectoryTransaction], commands: SentCommands) -> Service:
    deps = TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)
    return Service(uow, handlers.bind(deps), commands)


def event(data: Any) -> Envelope[Any]:
    return wrap(data, source="test", time=NOW)


async def with_a_module(service: Service) -> tuple[Trajectory, str]:
    """A trajectory opened on a referral, then a module assigned by the worker: stored at
    version 1, and the module's enrolment."""
    await service.handle(event(accepted()))
    async with service.uow.command() as tx:
        [trajectory] = await tx.trajectories.find("welzijn-utrecht")
        enrolment = trajectory.assign_module("budget-basics", Language.NL, NOW).enrolment_id
        await tx.trajectories.save(trajectory)
    assert trajectory.version == 1
    return trajectory, enrolment


def homework(trajectory: Trajectory, enrolment_id: str) -> Envelope[HomeworkSubmitted]:
    return event(
        HomeworkSubmitted(
            enrolment_id=enrolment_id,
            client_ref=trajectory.client_ref,
            organisation_id=trajectory.organisation_id,
            module_id="budget-basics",
            submission_id=new_id("hws"),
            step_id="step-1",
            submitted_at=NOW,
        )
    )


def completed(trajectory: Trajectory, enrolment_id: str) -> Envelope[ModuleCompleted]:
    return event(
        ModuleCompleted(
            enrolment_id=enrolment_id,
            client_ref=trajectory.client_ref,
            organisation_id=trajectory.organisation_id,
            module_id="budget-basics",
            completed_at=NOW + timedelta(days=3),
        )
    )


async def test_a_batch_reads_each_trajectory_once_and_writes_it_once(service: Service):
    trajectory, enrolment = await with_a_module(service)
    referral = accepted()
    exited = WaitlistExited(**referral.model_dump(exclude={"accepted_at"}), exited_at=NOW)
    service.commands.clear()

    published = await service.in_batch(
        [
            homework(trajectory, enrolment),
            event(referral),
            homework(trajectory, enrolment),
            event(exited),  # the same referral again: the one just opened is found
            completed(trajectory, enrolment),
        ]
    )

    # One look for the enrolment, one for the new referral; every later read was kept.
    assert len(service.commands.to("trajectories", "find")) == 2
    inserted = service.commands.inserted("trajectories")
    assert [d["referral_id"] for d in inserted] == [referral.referral_id]
    replaced = service.commands.updated("trajectories")
    assert [u["q"] for u in replaced] == [{"_id": trajectory.id, "version": 1}]
    # Both in the one write that ends the unit of work.
    assert len(service.commands.to("trajectories", "bulkWrite")) == 1
    # The final state, one version further for the whole unit of work.
    stored = await service.stored(trajectory.id)
    assert stored["version"] == 2
    assert len(stored["homework"]) == 2
    assert stored["modules"][0]["completed_at"] is not None
    assert await service.trajectories.count_documents({"referral_id": referral.referral_id}) == 1
    # Published as each handler saved, in the handlers' order.
    assert published == [TrajectoryOpened, ModuleProgressRecorded]


async def test_an_erasure_reaches_a_trajectory_opened_earlier_in_its_batch(service: Service):
    referral = accepted()
    erased = ClientErasureRequested(
        client_ref=referral.client_ref, organisation_id=referral.organisation_id, requested_at=NOW
    )

    await service.in_batch([event(referral), event(erased)])

    [stored] = await service.trajectories.find({"referral_id": referral.referral_id}).to_list()
    assert stored["forgotten_at"] is not None
    assert stored["version"] == 0  # inserted once, already forgotten


async def test_a_change_between_read_and_write_undoes_the_batch_and_one_by_one_redoes_it(
    service: Service,
):
    trajectory, enrolment = await with_a_module(service)
    events = [homework(trajectory, enrolment), completed(trajectory, enrolment)]
    claims_before = await service.uow.db.inbox.count_documents({})

    # The engine sees the conflict first, as MongoDB does (WriteConflict, the write's snapshot
    # is older than the worker's commit); one that did not would leave it to the version
    # in the write's filter (ConcurrentChange). Either is transient: the batch is undone.
    with pytest.raises((ConcurrentChange, OperationFailure)) as raised:
        async with service.uow.batch(events) as batch:
            for envelope in events:
                await service.handle(envelope, uow=batch)
            # Meanwhile the worker moves the trajectory on, committed before the batch ends.
            async with service.uow.command() as tx:
                worker_copy = await tx.trajectories.get(trajectory.id)
                assert worker_copy is not None
                worker_copy.change_phase(Phase.GUIDANCE, None, NOW)
                await tx.trajectories.save(worker_copy)
    assert is_transient(raised.value)

    stored = await service.stored(trajectory.id)
    assert (stored["version"], stored["homework"]) == (2, [])  # the worker's, nothing of the batch
    assert await service.uow.db.inbox.count_documents({}) == claims_before
    staged_before = await service.staged()
    assert ModuleProgressRecorded.event_type() not in staged_before

    # As the consumer does after a failed batch: each event in a transaction of its own.
    for envelope in events:
        await service.handle(envelope)

    stored = await service.stored(trajectory.id)
    assert stored["phase"] == Phase.GUIDANCE
    assert len(stored["homework"]) == 1
    assert stored["modules"][0]["completed_at"] is not None
    assert stored["version"] == 4  # the worker's 2, then one per event's unit of work
    assert await service.staged() == [*staged_before, ModuleProgressRecorded.event_type()]
    assert TrajectoryPhaseChanged.event_type() in staged_before


async def test_a_trajectory_changed_since_it_was_read_is_not_overwritten(service: Service):
    trajectory, _ = await with_a_module(service)
    async with service.uow.reading() as tx:
        stale = await tx.trajectories.get(trajectory.id)
    assert stale is not None
    async with service.uow.command() as tx:
        fresh = await tx.trajectories.get(trajectory.id)
        assert fresh is not None
        fresh.change_phase(Phase.GUIDANCE, None, NOW)
        await tx.trajectories.save(fresh)

    # Saved in a later unit of work than it was read in: only the version guards it.
    with pytest.raises(ConcurrentChange):
        async with service.uow.command() as tx:
            stale.change_phase(Phase.PLAN, None, NOW)
            await tx.trajectories.save(stale)

    stored = await service.stored(trajectory.id)
    assert (stored["phase"], stored["version"]) == (Phase.GUIDANCE, 2)


async def test_a_second_trajectory_for_a_referral_is_refused_as_before(service: Service):
    referral = accepted()
    await service.handle(event(referral))

    with pytest.raises(DuplicateKeyError) as raised:
        async with service.uow.command() as tx:
            await tx.trajectories.add(Trajectory.open(referral, at=NOW))

    assert await service.trajectories.count_documents({"referral_id": referral.referral_id}) == 1
    # As a log would show it: the key, not the document that would have been written.
    logged = "".join(traceback.format_exception(raised.value))
    assert referral.referral_id in logged
    assert referral.client_ref not in logged


def every_field_set() -> Trajectory:
    """A trajectory with something in every field and every list, nested ones included."""
    later = NOW + timedelta(days=1)
    trajectory = Trajectory.open(accepted(), at=NOW)
    trajectory.phase, trajectory.debt_journey_phase = Phase.GUIDANCE, 3
    trajectory.appointments.append(
        Appointment(
            id=new_id("apt"),
            kind=AppointmentKind.FOLLOW_UP,
            starts_at=later,
            duration_minutes=45,
            modality=Modality.VIDEO,
            worker_id="wrk_1",
            goal="the budget",
            ends_at=later + timedelta(minutes=45),
            status=AppointmentStatus.MISSED,
            overdue_reported_at=later,
        )
    )
    trajectory.contacts.append(
        Contact(
            id=new_id("con"),
            channel=ContactChannel.PHONE,
            direction=ContactDirection.CLIENT_TO_WORKER,
            minutes=10,
            default_duration=True,
            online_dossier=False,
            replaces_face_to_face=True,
            occurred_at=later,
            worker_id="wrk_1",
        )
    )
    trajectory.modules.append(ModuleAssignment(new_id("enr"), "budget-basics", NOW, later))
    trajectory.homework.append(
        Homework(new_id("hws"), new_id("enr"), "budget-basics", "step-1", NOW, later, "wrk_1")
    )
    trajectory.partner_referrals.append(
        PartnerReferral(
            id=new_id("prf"),
            partner_organisation_id="schuldhulp-midden",
            consent_id=new_id("cns"),
            requested_at=NOW,
            status=HandOffStatus.DECLINED,
            progress="declined",
            reason="no capacity",
            updated_at=later,
        )
    )
    trajectory.first_contact_at = trajectory.aftercare_started_at = later
    trajectory.aftercare_suggested = True
    trajectory.closed_at = trajectory.forgotten_at = later
    trajectory.closure_reason = ClosureReason.GOAL_REACHED
    trajectory.version = 7
    return trajectory


def typed(value: Any) -> Any:
    """The value with the type of everything in it, dicts in their order."""
    if isinstance(value, dict):
        return [(key, typed(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value), value)


@pytest.mark.parametrize("trajectory", [every_field_set(), opened()], ids=["full", "new"])
async def test_a_trajectory_is_stored_as_dataclasses_asdict_stored_it(trajectory: Trajectory):
    as_before = asdict(trajectory)
    as_before["_id"] = as_before.pop("id")
    del as_before["events"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic's warning of a value it did not expect
        document = await store.STORED.to_document(trajectory)

    assert typed(document) == typed(as_before)
