"""Analytics wired: every event counted, the counts exported for Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ketenbus.analytics.handlers import handlers
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.kit.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    http_port: int = 8005


class EventsSeen(Collector):
    """Counts as stored, so a restart does not reset what operators see."""

    def __init__(self, seen: dict[str, int]) -> None:
        self.seen = seen

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ketenbus_analytics_events_seen",
            "Events analytics has counted, by type.",
            labels=["event_type"],
        )
        for event_type, count in sorted(self.seen.items()):
            family.add_metric([event_type], count)
        yield family


async def prepare(runtime: Runtime) -> None:
    seen = {d["_id"]: d["count"] async for d in runtime.db.event_counts.find()}
    runtime.dependencies["seen"] = seen
    runtime.registry.register(EventsSeen(seen))


service = Service(
    name="analytics",
    description="Steering figures and the sector benchmark, computed from events alone.",
    handlers=handlers,
    settings_class=AnalyticsSettings,
    prepare=prepare,
)
