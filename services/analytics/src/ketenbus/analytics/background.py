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
        deps.gauges.latest = pulse(facts, now, NO_SHOW_WINDOW)
        await asyncio.sleep(every_seconds)
