"""The trajectory's handlers decide against an in-memory unit of work: no servers."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

import pytest

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import TrajectoryOpened, WaitlistExited
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.testing import InMemoryAggregates, InMemoryTransaction, InMemoryUnitOfWork
from ketenbus.trajectory.domain import Trajectory
from ketenbus.trajectory.handlers import open_trajectory

from .test_trajectory_domain import NOW, accepted


class Trajectories(InMemoryAggregates[Trajectory]):
    async def by_referral(self, referral_id: str) -> Trajectory | None:
        return self.first(lambda t: t.referral_id == referral_id)


class Tx(InMemoryTransaction):
    @cached_property
    def trajectories(self) -> Trajectories:
        return Trajectories(self, "trajectories")


async def test_a_referral_announced_twice_opens_one_trajectory():
    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    referral = accepted()
    first = wrap(referral, source="intake", time=NOW)
    await open_trajectory(first, uow=uow)
    assert uow.published_types() == [TrajectoryOpened]
    assert uow.published[0].causationid == first.id

    # The same referral out of the waiting list later, under another event id: no second one.
    exited = WaitlistExited(
        **referral.model_dump(exclude={"accepted_at"}), exited_at=NOW + timedelta(days=1)
    )
    await open_trajectory(wrap(exited, source="intake", time=NOW), uow=uow)
    assert len(uow.tables["trajectories"]) == 1
    assert uow.published_types() == [TrajectoryOpened]

    with pytest.raises(AlreadyHandled):
        await open_trajectory(first, uow=uow)
