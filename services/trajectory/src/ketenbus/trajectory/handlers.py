"""What trajectory does when other services' events arrive."""

from __future__ import annotations

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import ModuleCompleted, ReferralAccepted
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory.domain import Trajectory
from ketenbus.trajectory.store import TrajectoryTransaction

handlers = EventHandlers("trajectory")


@handlers.on(ReferralAccepted)
async def open_trajectory(
    event: Envelope[ReferralAccepted], uow: UnitOfWork[TrajectoryTransaction]
) -> None:
    async with uow.handling(event) as tx:
        trajectory = Trajectory.open(event.data, at=tx.clock.now())
        await tx.trajectories.add(trajectory)


@handlers.on(ModuleCompleted)
async def record_module_completed(
    event: Envelope[ModuleCompleted], uow: UnitOfWork[TrajectoryTransaction]
) -> None:
    async with uow.handling(event) as tx:
        trajectory = await tx.trajectories.by_enrolment(event.data.enrolment_id)
        if trajectory is None:
            return  # a self-help module the client chose while waiting: not in a trajectory
        trajectory.record_module_completed(event.data.enrolment_id, at=event.data.completed_at)
        await tx.trajectories.save(trajectory)
