"""What a worker's action costs the database: the round trips of one POST, on the real
engine. Every action is the same unit of work (`desk.Change`): the trajectory read, the
trajectory written at the version it was read at, its events into the outbox, the commit.
Nothing else goes to the database on the way (issue 9: each round trip is CPU on both sides),
and actions carried out together (`desk.carry_out_together`) pay those once per group."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.values import AppointmentKind, Modality
from ketenbus.kit.auth import Caller
from ketenbus.kit.errors import DomainError
from ketenbus.kit.sent_commands import SentCommands
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import api, desk
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.domain import Appointment, Trajectory
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction

from .test_trajectory_domain import NOW, accepted, opened

pytestmark = pytest.mark.stack


async def test_an_appointment_is_a_read_one_write_and_the_commit(
    uow: UnitOfWork[TrajectoryTransaction], commands: SentCommands
):
    trajectory = opened()
    async with uow.command() as tx:
        await tx.trajectories.add(trajectory)
    worker = Caller("key-1", trajectory.organisation_id, frozenset(), "wrk-1")
    body = api.AppointmentIn(
        kind=AppointmentKind.FOLLOW_UP, starts_at=NOW + timedelta(days=2), modality=Modality.PHONE
    )
    deps = TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)
    for _ in range(2):  # the second on a trajectory with history: no more round trips
        commands.clear()
        answer = await api.schedule_appointment(trajectory.id, body, worker, deps)
        assert commands.names() == [
            ("find", "trajectories"),
            ("bulkWrite", ("trajectories", "outbox")),
            ("commitTransaction", 1),
        ]
    stored = await uow.db.trajectories.find_one({"_id": trajectory.id})
    assert [a["id"] for a in stored["appointments"]][-1] == answer.appointment_id
    assert stored["version"] == 2  # added at 0, saved twice
    staged = [r["headers"]["event_type"] async for r in uow.db.outbox.find().sort("position", 1)]
    assert staged.count(staged[-1]) == 2  # AppointmentScheduled, once per POST


async def test_a_batch_of_accepted_referrals_looks_for_their_trajectories_in_one_query(
    uow: UnitOfWork[TrajectoryTransaction], commands: SentCommands
):
    """As the consumer handles a batch: the read-ahead, then each event's handler, which
    finds its trajectory (or that there is none) without a query of its own."""
    referrals = [accepted() for _ in range(4)]
    async with uow.command() as tx:
        await tx.trajectories.add(Trajectory.open(referrals[0], at=NOW))  # announced before
    events = [wrap(referral, source="intake", time=NOW) for referral in referrals]
    commands.clear()

    handle = handlers.bind(
        TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)
    )
    async with uow.batch(events) as batch:
        await handle.read_ahead(batch, events)
        for event in events:
            await handle(event, uow=batch)

    assert commands.names() == [
        ("find", "trajectories"),
        ("bulkWrite", ("trajectories", "inbox", "outbox")),
        ("commitTransaction", 1),
    ]
    opened_for = {t["referral_id"] async for t in uow.db.trajectories.find()}
    assert opened_for == {r.referral_id for r in referrals}


def _schedule(trajectory: Trajectory, worker: Caller, days: int) -> desk.Change[Any]:
    return desk.Change(
        trajectory.id,
        worker,
        lambda t, tx: t.schedule(
            kind=AppointmentKind.FOLLOW_UP,
            starts_at=NOW + timedelta(days=days),
            duration_minutes=45,
            modality=Modality.PHONE,
            worker_id="wrk-1",
            goal=None,
            at=tx.clock.now(),
        ),
        _answer,
        correlation_id=f"corr-{days}",
    )


async def test_actions_together_read_their_trajectories_once_and_answer_as_each_left_them(
    uow: UnitOfWork[TrajectoryTransaction], commands: SentCommands
):
    """A group of the desk: three trajectories read in one query, written with every event
    in one command, one commit. The scheduling answers with the time it
    set, although the reschedule after it in the same group moved that appointment; an
    action on another organisation's trajectory is left to its own path (None: a 404)."""
    first, second, elsewhere = opened(), opened(), opened()
    elsewhere.organisation_id = "org-elders"
    async with uow.command() as tx:
        for trajectory in (first, second, elsewhere):
            await tx.trajectories.add(trajectory)
    worker = Caller("key-1", first.organisation_id, frozenset(), "wrk-1")
    scheduled = _schedule(first, worker, days=2)
    commands.clear()

    async def reschedule(t: Trajectory, tx: TrajectoryTransaction) -> Any:
        return t.reschedule(t.appointments[-1].id, NOW + timedelta(days=9), None, at=NOW)

    answers = await desk.carry_out_together(
        uow,
        [
            scheduled,
            _schedule(second, worker, days=3),
            desk.Change(first.id, worker, reschedule, _answer, "corr-r"),
            _schedule(elsewhere, worker, days=4),
        ],
    )

    assert commands.names() == [
        ("find", "trajectories"),
        ("bulkWrite", ("trajectories", "outbox")),
        ("commitTransaction", 1),
    ]
    assert answers[3] is None
    assert answers[0].starts_at == NOW + timedelta(days=2)
    assert answers[2].starts_at == NOW + timedelta(days=9)
    assert answers[0].appointment_id == answers[2].appointment_id
    stored = await uow.db.trajectories.find_one({"_id": first.id})
    assert [a["starts_at"] for a in stored["appointments"]] == [NOW + timedelta(days=9)]
    assert await uow.db.trajectories.count_documents({"_id": elsewhere.id, "version": 0}) == 1
    staged = {r["headers"]["correlation_id"] async for r in uow.db.outbox.find()}
    assert staged == {"corr-2", "corr-3", "corr-r"}  # each action's events under its own id


async def test_a_group_that_fails_leaves_nothing_and_each_action_goes_alone(
    uow: UnitOfWork[TrajectoryTransaction],
):
    """One action of the group refused (an appointment that does not exist): nothing of the
    group is written, and the desk carries out each alone, the refused one with its error."""
    first, second = opened(), opened()
    async with uow.command() as tx:
        for trajectory in (first, second):
            await tx.trajectories.add(trajectory)
    worker = Caller("key-1", first.organisation_id, frozenset(), "wrk-1")

    async def cancel_unknown(t: Trajectory, tx: TrajectoryTransaction) -> Any:
        return t.cancel("apt_" + "0" * 32, at=NOW)

    refused = desk.Change(second.id, worker, cancel_unknown, _whole, "corr-x")
    with pytest.raises(DomainError):
        await desk.carry_out_together(uow, [_schedule(first, worker, days=2), refused])
    assert await uow.db.trajectories.count_documents({"version": {"$gt": 0}}) == 0
    assert await uow.db.outbox.count_documents({}) == 0

    deps = TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)
    busy = asyncio.Event()

    async def hold(t: Trajectory, tx: TrajectoryTransaction) -> Any:
        await busy.wait()  # under way while the two below arrive: they wait, then go together
        return None

    scheduling = _schedule(first, worker, days=5)
    under_way = asyncio.create_task(deps.desk.change(first.id, worker, hold, _whole))
    arriving = [
        asyncio.create_task(deps.desk.change(first.id, worker, scheduling.action, _answer)),
        asyncio.create_task(deps.desk.change(second.id, worker, cancel_unknown, _whole)),
    ]
    while deps.desk.together.waiting < 2:
        await asyncio.sleep(0)
    busy.set()
    await under_way
    appointment, cancelled = await asyncio.gather(*arriving, return_exceptions=True)
    assert appointment.starts_at == NOW + timedelta(days=5)
    assert isinstance(cancelled, DomainError)
    stored = await uow.db.trajectories.find_one({"_id": first.id})
    assert [a["starts_at"] for a in stored["appointments"]] == [NOW + timedelta(days=5)]


def _answer(_: Trajectory, appointment: Appointment) -> api.AppointmentOut:
    return api.AppointmentOut.of(appointment)


def _whole(trajectory: Trajectory, _: object) -> api.TrajectoryOut:
    return api.TrajectoryOut.of(trajectory)
