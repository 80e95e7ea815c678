"""Time as the services see it: injectable, so tests and the demo can run days in seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ketenbus.kit.settings import ServiceSettings


class Clock(Protocol):
    def now(self) -> datetime: ...

    def real_seconds(self, simulated: timedelta) -> float:
        """How long to really wait for this much simulated time to pass."""
        ...

    def simulated(self, real_seconds: float) -> timedelta:
        """How much simulated time passes in this many real seconds."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, simulated: timedelta) -> float:
        return max(simulated.total_seconds(), 0.0)

    def simulated(self, real_seconds: float) -> timedelta:
        return timedelta(seconds=real_seconds)


class ScaledClock:
    """Simulated time that starts at `start` at real moment `anchor` and runs `speed`x.

    Every process given the same three numbers agrees on the time, with no coordination.
    """

    def __init__(self, start: datetime, anchor: float, speed: float) -> None:
        self.start, self.anchor, self.speed = start, anchor, speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def real_seconds(self, simulated: timedelta) -> float:
        return max(simulated.total_seconds() / self.speed, 0.0)

    def simulated(self, real_seconds: float) -> timedelta:
        return timedelta(seconds=real_seconds * self.speed)


class FixedClock:
    """A clock that moves only when told to: for unit tests of the domain."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by

    def real_seconds(self, simulated: timedelta) -> float:
        return 0.0

    def simulated(self, real_seconds: float) -> timedelta:
        return timedelta(0)  # it moves only when told to


def clock_from(settings: ServiceSettings) -> Clock:
    if settings.clock_start is None:
        return SystemClock()
    return ScaledClock(
        settings.clock_start, settings.clock_anchor or time.time(), settings.clock_speed
    )
