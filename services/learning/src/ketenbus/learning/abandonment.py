"""Modules left idle count as abandoned after a while: a figure for the funder, not a
verdict on the client (who may pick the module up again)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ketenbus.kit.failures import is_transient
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning.bootstrap import LearningDependencies
from ketenbus.learning.store import LearningTransaction

log = get_logger(__name__)


async def abandon_idle(uow: UnitOfWork[LearningTransaction], idle_for: timedelta) -> int:
    async with uow.reading() as tx:
        candidates = await tx.enrolments.idle_since_before(tx.clock.now() - idle_for)
    abandoned = 0
    for enrolment_id in candidates:
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


async def watch_idle_enrolments(deps: LearningDependencies) -> None:
    while True:
        await abandon_idle(deps.uow, deps.settings.abandon_after)
        await asyncio.sleep(deps.settings.abandon_check_seconds)
