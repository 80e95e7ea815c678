"""Analytics wired: every event projected into facts, the figures served and exported."""

from __future__ import annotations

from ketenbus.analytics.api import router
from ketenbus.analytics.background import refresh_gauges
from ketenbus.analytics.bootstrap import AnalyticsDependencies, bootstrap
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.contracts.events import KpiSnapshotPublishedV2
from ketenbus.kit.runtime import Service

__all__ = ["AnalyticsSettings", "service"]


service: Service[AnalyticsDependencies] = Service(
    name="analytics",
    description="Steering figures, the sector benchmark and the business case, "
    "computed from events alone.",
    handlers=handlers,
    routers=[router],
    publishes=[KpiSnapshotPublishedV2],
    settings_class=AnalyticsSettings,
    bootstrap=bootstrap,
    background=[refresh_gauges],
)
