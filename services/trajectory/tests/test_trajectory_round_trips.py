"""What a worker's action costs the database: the round trips of one POST, on the real
engine. Every action is the same unit of work (`api._change`): the trajectory read, the
trajectory written at the version it was read at, its events into the outbox, the commit.
Nothing else goes to the database on the way (issue 9: each round trip is CPU on both sides)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from ketenbus.contracts.values import AppointmentKind, Modality
from ketenbus.kit.auth import Caller
from ketenbus.kit.clock import FixedClock
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import api, store
from ketenbus.trajectory.store import TrajectoryTransaction

from .test_trajectory_domain import NOW, opened

pytestmark = pytest.mark.stack


@dataclass
class Commands(monitoring.CommandListener):
    """Every command sent, by name and collection (`commitTransaction`: its own name)."""

    sent: list[tuple[str, Any]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[tuple[UnitOfWork[Any], Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[commands]
    )
    db = client[f"trajectory_trips_{uuid.uuid4().hex[:10]}"]
    await store.ensure_indexes(db)
    uow = UnitOfWork(
        client,
        db,
        service="trajectory",
        clock=FixedClock(NOW),
        transaction_class=TrajectoryTransaction,
    )
    yield uow, commands
    await client.drop_database(db.name)
    await client.close()


async def test_an_appointment_is_a_read_a_write_an_outbox_insert_and_the_commit(database):
    uow, commands = database
    trajectory = opened()
    async with uow.command() as tx:
        await tx.trajectories.add(trajectory)
    worker = Caller("key-1", trajectory.organisation_id, frozenset(), "wrk-1")
    body = api.AppointmentIn(
        kind=AppointmentKind.FOLLOW_UP, starts_at=NOW + timedelta(days=2), modality=Modality.PHONE
    )
    for _ in range(2):  # the second on a trajectory with history: no more round trips
        commands.sent.clear()
        answer = await api.schedule_appointment(trajectory.id, body, worker, uow)
        assert commands.sent == [
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
