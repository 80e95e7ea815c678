"""Reminding workers of appointments nobody registered. The store, not a timer, is the
source of truth: after a restart the same check finds the same appointments.

With several replicas one checks at a time, the one holding the "overdue-check" lease
(ketenbus.kit.lease); another takes over when it dies. A reminder is recorded on the
trajectory in a transaction that saves it only at the version it read (ConcurrentChange
otherwise), so checks that overlap (a lease run out mid-pass) remind a worker once."""

from __future__ import annotations

import asyncio

from ketenbus.kit.failures import is_transient
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction

log = get_logger(__name__)


async def remind_unregistered_appointments(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, TrajectorySettings)
    uow: UnitOfWork[TrajectoryTransaction] = runtime.uow
    lease = Lease(runtime.db, "overdue-check")
    while True:
        if await lease.held():
            await remind_once(uow, settings, lease)
        await asyncio.sleep(settings.overdue_check_seconds)


async def remind_once(
    uow: UnitOfWork[TrajectoryTransaction],
    settings: TrajectorySettings,
    lease: Lease | None = None,
) -> int:
    """One pass over the store; returns how many workers were reminded."""
    grace = settings.registration_grace
    async with uow.reading() as tx:
        due = await tx.trajectories.with_unregistered_appointments(tx.clock.now() - grace)
    reminded = 0
    for trajectory_id in due:
        if lease is not None and not await lease.held():
            break  # another replica checks now
        try:
            async with uow.command() as tx:
                trajectory = await tx.trajectories.get(trajectory_id)
                if trajectory is None:
                    continue
                reminded += len(trajectory.remind_overdue(tx.clock.now(), grace))
                await tx.trajectories.save(trajectory)
        except Exception as error:
            if not is_transient(error):
                raise
            # The worker changed the trajectory meanwhile: the next pass looks again.
            log.info("overdue check met a concurrent change", trajectory_id=trajectory_id)
    return reminded
