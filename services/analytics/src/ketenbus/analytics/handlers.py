"""Analytics reads every event of the chain and projects what it tells into facts."""

from __future__ import annotations

from typing import Any

from ketenbus.analytics.store import AnalyticsTransaction
from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import ALL_EVENTS
from ketenbus.contracts.topics import CONTACTS
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import EventUnitOfWork

handlers = EventHandlers("analytics")

# Every event but the sealed contact cards: they tell no figure, and the compacted contacts
# topic is read by notifications alone.
COUNTED = tuple(event for event in ALL_EVENTS if event.stream is not CONTACTS)


@handlers.on(*COUNTED)
async def project(
    event: Envelope[Any], uow: EventUnitOfWork[AnalyticsTransaction], seen: dict[str, int]
) -> None:
    async with uow.handling(event) as tx:
        # Projected and counted when the unit of work ends: for a batch, in bulk.
        tx.projection.add(event)
    seen[event.type] = seen.get(event.type, 0) + 1
