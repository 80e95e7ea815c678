"""What analytics does unprompted, as long as it runs: keep the business gauges up to date."""

from __future__ import annotations

import asyncio

from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import NO_SHOW_WINDOW
from ketenbus.analytics.measures import pulse


async def refresh_gauges(deps: AnalyticsDependencies, every_seconds: float = 2.0) -> None:
    while True:
        now = deps.clock.now()
        async with deps.uow.reading() as tx:
            facts = await tx.facts.pulse_facts(since=now - NO_SHOW_WINDOW)
            # Read again rather than kept: a replica's handler counts only its own partitions.
            counts = await tx.facts.event_counts()
        deps.gauges.latest = pulse(facts, now, NO_SHOW_WINDOW)
        deps.seen.update(counts)
        await asyncio.sleep(every_seconds)
