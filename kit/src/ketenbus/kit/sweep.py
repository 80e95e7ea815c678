"""The services' periodic checks (signals past their window, idle enrolments, appointments
nobody registered): every so often, a pass over what the store lists as due.

A pass changes each item in a transaction of its own, so one that fails for a passing reason
(a concurrent change, a lost connection) is left to the next pass instead of stopping the
rest. With a lease (ketenbus.kit.lease), only the replica holding it checks, and a pass stops
as soon as another replica has taken it over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from ketenbus.kit.failures import is_transient
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import TxT, UnitOfWork

log = get_logger(__name__)


async def each_apart(
    uow: UnitOfWork[TxT],
    item_ids: Iterable[str],
    change: Callable[[TxT, str], Awaitable[int]],
    *,
    what: str,
    lease: Lease | None = None,
) -> int:
    """`change` each item in its own transaction; returns the sum of what it counted."""
    changed = 0
    for item_id in item_ids:
        if lease is not None and not await lease.held():
            break  # another replica checks now
        try:
            async with uow.command() as tx:
                changed += await change(tx, item_id)
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("not checked this round", what=what, item_id=item_id)
    return changed


async def every(
    seconds: float, check: Callable[[], Awaitable[object]], lease: Lease | None
) -> None:
    """Runs `check` every `seconds` until cancelled, while this replica holds the lease (None:
    this process is the only one)."""
    while True:
        if lease is None or await lease.held():
            await check()
        await asyncio.sleep(seconds)
