"""What analytics' handler, routes and gauges are given, built once from its settings at
start-up (`Runtime.start` says when)."""

from __future__ import annotations

from dataclasses import dataclass

from ketenbus.analytics.gauges import BusinessGauges, EventsSeen
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import AnalyticsTransaction, FactStore
from ketenbus.kit.clock import Clock
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork


@dataclass(frozen=True)
class AnalyticsDependencies:
    settings: AnalyticsSettings
    clock: Clock
    uow: UnitOfWork[AnalyticsTransaction]
    # Events counted per type, as stored: the handler adds to it, /metrics reads it.
    seen: dict[str, int]
    gauges: BusinessGauges


async def bootstrap(runtime: Runtime) -> AnalyticsDependencies:
    settings = runtime.settings_as(AnalyticsSettings)
    store = FactStore(runtime.db)
    await store.ensure_indexes()
    seen = await store.event_counts()
    gauges = BusinessGauges()
    runtime.registry.register(EventsSeen(seen))
    runtime.registry.register(gauges)
    return AnalyticsDependencies(
        settings=settings,
        clock=runtime.clock,
        uow=runtime.unit_of_work(AnalyticsTransaction),
        seen=seen,
        gauges=gauges,
    )
