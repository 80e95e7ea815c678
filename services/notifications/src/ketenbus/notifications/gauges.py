"""What operators watch: reminders still to send, and those that are late.

`ketenbus_reminders_due{organisation}`: reminders scheduled and not yet sent (waiting for
their time, or being sent now). `ketenbus_reminders_overdue{organisation}`: those among them
whose send time passed more than OVERDUE_AFTER ago: a mail relay or SMS provider failing, or
no dispatcher running. A reminder held back by quiet hours or the daily cap is not overdue:
its send time moved. The deploy dashboards and alerts use exactly these names.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, Gauge

from ketenbus.kit.clock import Clock
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications.store import NotificationTransaction


class ReminderGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.due = Gauge(
            "ketenbus_reminders_due",
            "Reminders scheduled and not yet sent.",
            ["organisation"],
            registry=registry,
        )
        self.overdue = Gauge(
            "ketenbus_reminders_overdue",
            "Reminders past their send time and still not sent.",
            ["organisation"],
            registry=registry,
        )
        self.seen: set[str] = set()

    async def measure(
        self, uow: UnitOfWork[NotificationTransaction], clock: Clock, overdue_after: timedelta
    ) -> None:
        async with uow.reading() as tx:
            counts = await tx.reminders.pending_by_organisation(clock.now() - overdue_after)
        # An organisation with nothing pending any more reads 0, not its last value.
        for organisation in self.seen | counts.keys():
            due, overdue = counts.get(organisation, (0, 0))
            self.due.labels(organisation).set(due)
            self.overdue.labels(organisation).set(overdue)
        self.seen |= counts.keys()
