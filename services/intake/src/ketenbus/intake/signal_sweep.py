"""The signals' two deadlines, checked periodically: outreach within the window (else the
signal is flagged), and deletion six months after the signal arrived."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ketenbus.contracts.events import SignalDeletionReason
from ketenbus.intake.signals import months_after
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.failures import is_transient
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork

log = get_logger(__name__)
Uow = UnitOfWork[IntakeTransaction]


async def flag_overdue(uow: Uow) -> int:
    async with uow.reading() as tx:
        candidates = await tx.signals.due_without_outreach(tx.clock.now())

    async def flag(tx: IntakeTransaction, signal_id: str) -> bool:
        signal = await tx.signals.get(signal_id)
        if signal is None or not signal.flag_if_overdue(tx.clock.now()):
            return False  # deleted, or reached out to, since the list was read
        await tx.signals.save(signal)
        return True

    return await _each(uow, candidates, flag)


async def delete_expired(uow: Uow, retention_months: int) -> int:
    async with uow.reading() as tx:
        candidates = await tx.signals.received_before(
            months_after(tx.clock.now(), -retention_months)
        )

    async def delete(tx: IntakeTransaction, signal_id: str) -> bool:
        signal = await tx.signals.get(signal_id)
        if signal is None:
            return False
        signal.delete_data(SignalDeletionReason.RETENTION_EXPIRED, tx.clock.now())
        await tx.signals.delete(signal)
        return True

    return await _each(uow, candidates, delete)


async def _each(
    uow: Uow, signal_ids: list[str], change: Callable[[IntakeTransaction, str], Awaitable[bool]]
) -> int:
    """One transaction per signal: one that fails is tried again at the next round."""
    changed = 0
    for signal_id in signal_ids:
        try:
            async with uow.command() as tx:
                changed += await change(tx, signal_id)
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("signal not checked this round", signal_id=signal_id)
    return changed


async def watch_signal_deadlines(runtime: Runtime) -> None:
    settings = runtime.dependencies["settings"]
    while True:
        await flag_overdue(runtime.uow)
        await delete_expired(runtime.uow, settings.signal_retention_months)
        await asyncio.sleep(settings.signal_check_seconds)
