"""What a worker's action costs the database: the round trips of one POST, on the real
engine. Every action is the same unit of work (`api._change`): the trajectory read, the
trajectory written at the version it was read at, its events into the outbox, the commit.
Nothing else goes to the database on the way (issue 9: each round trip is CPU on both sides)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.values import AppointmentKind, Modality
from ketenbus.kit.auth import Caller
from ketenbus.kit.sent_commands import SentCommands
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import api
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.domain import Trajectory
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction

from .test_trajectory_domain import NOW, accepted, opened

pytestmark = pytest.mark.stack


async def test_an_appointment_is_a_read_a_write_an_outbox_insert_and_the_commit(
    uow: UnitOfWork[TrajectoryTransaction], commands: SentCommands
):
    trajectory = opened()
    async with uow.command() as tx:
        await tx.trajectories.add(trajectory)
    worker = Caller("key-1", trajectory.organisation_id, frozenset(), "wrk-1")
    body = api.AppointmentIn(
        kind=AppointmentKind.FOLLOW_UP, starts_at=NOW + timedelta(days=2), modality=Modality.PHONE
    )
    for _ in range(2):  # the second on a trajectory with history: no more round trips
        commands.clear()
        answer = await api.schedule_appointment(trajectory.id, body, worker, uow)
        assert commands.names() == [
            ("find", "trajectories"),
            ("update", "trajectories"),
            ("insert", "outbox"),
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
        ("insert", "trajectories"),
        ("insert", "inbox"),
        ("insert", "outbox"),
        ("commitTransaction", 1),
    ]
    opened_for = {t["referral_id"] async for t in uow.db.trajectories.find()}
    assert opened_for == {r.referral_id for r in referrals}
