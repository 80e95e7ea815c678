"""Analytics sees every event; for now it counts them by type (the steering figures follow)."""

from __future__ import annotations

from typing import Any

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import ALL_EVENTS
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import UnitOfWork

handlers = EventHandlers("analytics")


@handlers.on(*ALL_EVENTS)
async def count_event(event: Envelope[Any], uow: UnitOfWork[Any], seen: dict[str, int]) -> None:
    async with uow.handling(event) as tx:
        await tx.db.event_counts.update_one(
            {"_id": event.type}, {"$inc": {"count": 1}}, upsert=True, session=tx.session
        )
    seen[event.type] = seen.get(event.type, 0) + 1
