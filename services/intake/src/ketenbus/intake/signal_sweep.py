"""The signals' two deadlines, checked periodically: outreach within the window (else the
signal is flagged), and deletion six months after the signal arrived.

With several replicas one checks at a time, the one holding the "signal-deadlines" lease
(ketenbus.kit.lease). Each signal is looked at again in a transaction of its own, so checks
that overlap (a lease run out mid-pass) flag or delete a signal once."""

from __future__ import annotations

from typing import TypeAlias

from ketenbus.contracts.events import SignalDeletionReason
from ketenbus.intake.bootstrap import IntakeDependencies
from ketenbus.intake.signals import months_after
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.lease import Lease
from ketenbus.kit.sweep import each_apart, every
from ketenbus.kit.uow import UnitOfWork

Uow: TypeAlias = UnitOfWork[IntakeTransaction]


async def flag_overdue(uow: Uow, lease: Lease | None = None) -> int:
    async with uow.reading() as tx:
        candidates = await tx.signals.due_without_outreach(tx.clock.now())

    async def flag(tx: IntakeTransaction, signal_id: str) -> int:
        signal = await tx.signals.get(signal_id)
        if signal is None or not signal.flag_if_overdue(tx.clock.now()):
            return 0  # deleted, or reached out to, since the list was read
        await tx.signals.save(signal)
        return 1

    return await each_apart(uow, candidates, flag, what="signal", lease=lease)


async def delete_expired(uow: Uow, retention_months: int, lease: Lease | None = None) -> int:
    async with uow.reading() as tx:
        candidates = await tx.signals.received_before(
            months_after(tx.clock.now(), -retention_months)
        )

    async def delete(tx: IntakeTransaction, signal_id: str) -> int:
        signal = await tx.signals.get(signal_id)
        if signal is None:
            return 0
        signal.delete_data(SignalDeletionReason.RETENTION_EXPIRED, tx.clock.now())
        await tx.signals.delete(signal)
        return 1

    return await each_apart(uow, candidates, delete, what="signal", lease=lease)


async def watch_signal_deadlines(deps: IntakeDependencies) -> None:
    settings, lease = deps.settings, deps.signal_lease

    async def check() -> None:
        await flag_overdue(deps.uow, lease)
        await delete_expired(deps.uow, settings.signal_retention_months, lease)

    await every(settings.signal_check_seconds, check, lease)
