"""Modules left idle count as abandoned after a while: a figure for the funder, not a
verdict on the client (who may pick the module up again).

With several replicas one sweeps at a time, the one holding the "abandonment" lease
(ketenbus.kit.lease); another takes over when it dies. Each enrolment is abandoned in a
transaction of its own that looks at it again first, so even sweeps that overlap (a lease
run out mid-sweep) abandon a module once and announce it once."""

from __future__ import annotations

from datetime import timedelta

from ketenbus.kit.lease import Lease
from ketenbus.kit.sweep import each_apart, every
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning.bootstrap import LearningDependencies
from ketenbus.learning.store import LearningTransaction


async def abandon_idle(
    uow: UnitOfWork[LearningTransaction], idle_for: timedelta, lease: Lease | None = None
) -> int:
    async with uow.reading() as tx:
        candidates = await tx.enrolments.idle_since_before(tx.clock.now() - idle_for)

    async def abandon(tx: LearningTransaction, enrolment_id: str) -> int:
        enrolment = await tx.enrolments.get(enrolment_id)
        if enrolment is None or not enrolment.abandon_if_idle(tx.clock.now(), idle_for):
            return 0
        await tx.enrolments.save(enrolment)
        return 1

    return await each_apart(uow, candidates, abandon, what="enrolment", lease=lease)


async def watch_idle_enrolments(deps: LearningDependencies) -> None:
    settings, lease = deps.settings, deps.abandonment_lease
    await every(
        settings.abandon_check_seconds,
        lambda: abandon_idle(deps.uow, settings.abandon_after, lease),
        lease,
    )
