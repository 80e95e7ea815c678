"""Analytics wired: every event projected into facts, the figures served and exported."""

from __future__ import annotations

from ketenbus.analytics.api import router
from ketenbus.analytics.gauges import BusinessGauges, EventsSeen, refresh_gauges
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import EVENT_COUNTS, AnalyticsTransaction, FactStore
from ketenbus.contracts.events import KpiSnapshotPublishedV2
from ketenbus.kit.runtime import Runtime, Service

__all__ = ["AnalyticsSettings", "service"]


async def prepare(runtime: Runtime) -> None:
    await FactStore(runtime.db).ensure_indexes()
    seen = {d["_id"]: d["count"] async for d in runtime.db[EVENT_COUNTS].find()}
    runtime.dependencies["seen"] = seen
    runtime.registry.register(EventsSeen(seen))
    gauges = BusinessGauges()
    runtime.dependencies["gauges"] = gauges
    runtime.registry.register(gauges)


service = Service(
    name="analytics",
    description="Steering figures, the sector benchmark and the business case, "
    "computed from events alone.",
    handlers=handlers,
    routers=[router],
    publishes=[KpiSnapshotPublishedV2],
    transaction_class=AnalyticsTransaction,
    settings_class=AnalyticsSettings,
    prepare=prepare,
    background=[refresh_gauges],
)
