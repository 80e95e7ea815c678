"""The waiting list: while a place is free, the first one waiting takes it. Looked at when a
place is given back (a close, a referral that did not commit) and after a front door
waitlisted a referral."""

from __future__ import annotations

from datetime import datetime

from ketenbus.intake.domain import ReferralState
from ketenbus.intake.store import ConcurrentChange, IntakeTransaction
from ketenbus.kit.failures import is_transient, retrying
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import UnitOfWork

log = get_logger(__name__)


async def let_in_from_waitlist(tx: IntakeTransaction, organisation_id: str, at: datetime) -> None:
    """While a place is free, the first one waiting (crisis first) takes it.

    The list is read as committed now, not in this transaction's snapshot: a referral that
    joined the list after the snapshot was taken, and found every place held, must still be
    let in by the place given back here. One the snapshot cannot see is a concurrent change:
    the transaction is retried with a fresh snapshot (a consumer redelivers; nobody waits)."""
    async for referral_id in tx.referrals.waiting_as_committed(organisation_id):
        waiting = await tx.referrals.get(referral_id)
        if waiting is None:
            raise ConcurrentChange(referral_id)
        if waiting.state is not ReferralState.WAITLISTED:
            continue  # let in already, earlier in this transaction's batch
        if not (await tx.caseloads.claim(organisation_id, waiting.id)).has_room:
            return
        waiting.admit(at)
        await tx.referrals.save(waiting)


async def recheck_waiting_list(uow: UnitOfWork[IntakeTransaction], organisation_id: str) -> None:
    """After a front door waitlisted a referral: every place was held when it looked; one may
    have been given back since, by a close whose transaction could not yet see this referral
    waiting. Looking once more after the commit leaves no one waiting beside a free place.
    The referral is made whatever happens here, so a failure is left to the next close."""

    async def let_in() -> None:
        async with uow.command() as tx:
            await let_in_from_waitlist(tx, organisation_id, tx.clock.now())

    try:
        await retrying(let_in)
    except Exception as error:
        if not is_transient(error):
            raise
        log.warning("waiting_list_not_rechecked", organisation_id=organisation_id)
