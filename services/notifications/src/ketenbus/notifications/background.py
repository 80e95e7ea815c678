"""What notifications does unprompted, as long as it runs: send the reminders that are due,
and keep the gauges of what waits up to date."""

from __future__ import annotations

import asyncio

from ketenbus.notifications.bootstrap import NotificationDependencies


async def dispatch_reminders(deps: NotificationDependencies) -> None:
    await deps.dispatcher.run(deps.settings.dispatch_poll_seconds)


async def measure_reminders(deps: NotificationDependencies) -> None:
    while True:
        await deps.reminder_gauges.measure(deps.uow, deps.clock, deps.settings.overdue_after)
        await asyncio.sleep(deps.settings.gauge_seconds)
