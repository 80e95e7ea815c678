"""The business figures as Prometheus gauges, per organisation, for Grafana and alerts.

Computed from analytics' own database (when its event counts move, and every minute) rather
than counted in memory, so every replica reports the same value and a restart loses nothing
(dashboards take max()): ketenbus.analytics.background.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ketenbus.analytics.measures import Pulse

NO_SHOW_WINDOW = timedelta(days=30)


class EventsSeen(Collector):
    """Counts as stored, so a restart does not reset what operators see, and every replica
    reports the same (refresh_gauges reads them again; a replica's handlers count only the
    events of its own partitions)."""

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


class BusinessGauges(Collector):
    def __init__(self) -> None:
        self.latest = Pulse({}, {}, {})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_trajectories = GaugeMetricFamily(
            "ketenbus_open_trajectories",
            "Trajectories opened and not yet closed.",
            labels=["organisation"],
        )
        for organisation, count in sorted(self.latest.open_trajectories.items()):
            open_trajectories.add_metric([organisation], count)
        waiting = GaugeMetricFamily(
            "ketenbus_waiting_list",
            "Referrals on the waiting list now.",
            labels=["organisation"],
        )
        for organisation, count in sorted(self.latest.waiting_list.items()):
            waiting.add_metric([organisation], count)
        no_show = GaugeMetricFamily(
            "ketenbus_no_show_rate",
            "Missed / (attended + missed) appointments held in the last 30 days (0..1).",
            labels=["organisation", "kind"],
        )
        for (organisation, kind), rate in sorted(self.latest.no_show_rate.items()):
            no_show.add_metric([organisation, kind], rate)
        yield from (open_trajectories, waiting, no_show)
