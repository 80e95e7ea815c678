"""Modules left idle count as abandoned after a while: a figure for the funder, not a
verdict on the client (who may pick the module up again).

With several replicas one sweeps at a time, the one holding the "abandonment" lease
(ketenbus.kit.lease); another takes over when it dies. Each enrolment is abandoned in a
transaction of its own that looks at it again first, so even sweeps that overlap (a lease
run out mid-sweep) abandon a module once and announce it once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ketenbus.kit.failures import is_transient
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning.store import LearningTransaction

log = get_logger(__name__)


async def abandon_idle(
    uow: UnitOfWork[LearningTransaction], idle_for: timedelta, lease: Lease | None = None
) -> int:
    async with uow.reading() as tx:
        candidates = await tx.enrolments.idle_since_before(tx.clock.now() - idle_for)
    abandoned = 0
    for enrolment_id in candidates:
        if lease is not None and not await lease.held():
            break  # another replica sweeps now
        try:
            async with uow.command() as tx:
                enrolment = await tx.enrolments.get(enrolment_id)
                if enrolment is not None and enrolment.abandon_if_idle(tx.clock.now(), idle_for):
                    await tx.enrolments.save(enrolment)
                    abandoned += 1
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("enrolment not checked this round", enrolment_id=enrolment_id)
    return abandoned


async def watch_idle_enrolments(runtime: Runtime) -> None:
    settings = runtime.dependencies["settings"]
    lease = Lease(runtime.db, "abandonment")
    while True:
        if await lease.held():
            await abandon_idle(runtime.uow, settings.abandon_after, lease)
        await asyncio.sleep(settings.abandon_check_seconds)
