"""What analytics does unprompted, as long as it runs: keep the business gauges up to date."""

from __future__ import annotations

import asyncio
import time

from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import NO_SHOW_WINDOW
from ketenbus.analytics.measures import pulse


async def refresh_gauges(
    deps: AnalyticsDependencies, every_seconds: float = 2.0, at_least_every_seconds: float = 60.0
) -> None:
    """Every `every_seconds` the event counts (a document per event type) are read; the facts
    behind the gauges (every open case, everyone waiting) only when those counts moved, or
    after `at_least_every_seconds` (the no-show window slides with the clock). Read rather
    than kept: a replica's handlers count only their own partitions, the database all."""
    counted: dict[str, int] | None = None
    pulse_due = 0.0
    while True:
        now = deps.clock.now()
        async with deps.uow.reading() as tx:
            counts = await tx.facts.event_counts()
            if counts != counted or time.monotonic() >= pulse_due:
                facts = await tx.facts.pulse_facts(since=now - NO_SHOW_WINDOW)
                deps.gauges.latest = pulse(facts, now, NO_SHOW_WINDOW)
                counted, pulse_due = counts, time.monotonic() + at_least_every_seconds
        deps.seen.update(counts)
        await asyncio.sleep(every_seconds)
