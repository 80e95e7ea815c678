"""The trajectory's handlers decide against an in-memory unit of work: no servers. The
service's own dependencies are built around it, as its bootstrap builds them, and bound to
the handlers as the consumer binds them."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

import pytest

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import TrajectoryOpened, WaitlistExited
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.testing import InMemoryAggregates, InMemoryTransaction, InMemoryUnitOfWork
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.domain import Trajectory
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.settings import TrajectorySettings

from .test_trajectory_domain import NOW, accepted


class Trajectories(InMemoryAggregates[Trajectory]):
    async def by_referral(self, referral_id: str) -> Trajectory | None:
        return self.first(lambda t: t.referral_id == referral_id)


class Tx(InMemoryTransaction):
    @cached_property
    def trajectories(self) -> Trajectories:
        return Trajectories(self, "trajectories")


def dependencies(uow: InMemoryUnitOfWork[Tx]) -> TrajectoryDependencies:
    return TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)


async def test_a_referral_announced_twice_opens_one_trajectory():
    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    handle = handlers.bind(dependencies(uow))
    referral = accepted()
    first = wrap(referral, source="intake", time=NOW)
    await handle(first)
    assert uow.published_types() == [TrajectoryOpened]
    assert uow.published[0].causationid == first.id

    # The same referral out of the waiting list later, under another event id: no second one.
    exited = WaitlistExited(
        **referral.model_dump(exclude={"accepted_at"}), exited_at=NOW + timedelta(days=1)
    )
    await handle(wrap(exited, source="intake", time=NOW))
    assert len(uow.tables["trajectories"]) == 1
    assert uow.published_types() == [TrajectoryOpened]

    with pytest.raises(AlreadyHandled):
        await handle(first)


def test_partners_answers_are_read_on_the_inbound_topics_of_the_partners_deployed():
    settings = TrajectorySettings(partner_organisations="schuldhulp-utrecht,gemeente-utrecht")
    subscription = handlers.subscription(settings)
    inbound = {
        "ketenbus.partners.gemeente-utrecht.inbound.v1",
        "ketenbus.partners.schuldhulp-utrecht.inbound.v1",
    }
    assert subscription.closed == inbound
    assert "ketenbus.intake.referrals.v1" in subscription.topics
    assert inbound < set(subscription.topics)
    assert handlers.subscription(TrajectorySettings()).closed == frozenset()
