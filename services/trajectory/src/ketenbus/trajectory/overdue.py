"""Reminding workers of appointments nobody registered. The store, not a timer, is the
source of truth: after a restart the same check finds the same appointments.

With several replicas one checks at a time, the one holding the "overdue-check" lease
(ketenbus.kit.lease); another takes over when it dies. A reminder is recorded on the
trajectory in a transaction that saves it only at the version it read (ConcurrentChange
otherwise), so checks that overlap (a lease run out mid-pass) remind a worker once."""

from __future__ import annotations

from ketenbus.kit.lease import Lease
from ketenbus.kit.sweep import each_apart, every
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction


async def remind_unregistered_appointments(deps: TrajectoryDependencies) -> None:
    lease = deps.overdue_lease
    await every(
        deps.settings.overdue_check_seconds,
        lambda: remind_once(deps.uow, deps.settings, lease),
        lease,
    )


async def remind_once(
    uow: UnitOfWork[TrajectoryTransaction],
    settings: TrajectorySettings,
    lease: Lease | None = None,
) -> int:
    """One pass over the store; returns how many workers were reminded. A trajectory the
    worker changed meanwhile is left to the next pass."""
    grace = settings.registration_grace
    async with uow.reading() as tx:
        due = await tx.trajectories.with_unregistered_appointments(tx.clock.now() - grace)

    async def remind(tx: TrajectoryTransaction, trajectory_id: str) -> int:
        trajectory = await tx.trajectories.get(trajectory_id)
        if trajectory is None:
            return 0
        reminded = len(trajectory.remind_overdue(tx.clock.now(), grace))
        await tx.trajectories.save(trajectory)
        return reminded

    return await each_apart(uow, due, remind, what="trajectory", lease=lease)
