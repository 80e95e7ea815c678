"""The business case for blended help: savings against costs, year by year. Pure.

The model follows the sector's published calculations. Face-to-face group work takes
`groups x participants x sessions x minutes per participant` a year. Blended, part of the
sessions go online (`online_share`): the sessions still held face to face take
`face_to_face_time_gain` less time (clients prepared online), and the online part takes
`online_efficiency` less time than the face-to-face session it replaces. The hours saved,
at the hourly rate, are set against the platform's costs: development, implementation and
training once, in the first year, and the licence every year.

Where analytics has measured hours for the organisation, they replace the assumed ones: the
measured face-to-face hours are the base of the time gain, and the measured online hours
that replaced face-to-face contact are the base of the online efficiency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ketenbus.kit.errors import DomainError


class InvalidAssumptions(DomainError, ValueError):
    status_code = 422


@dataclass(frozen=True)
class Assumptions:
    hourly_rate: float = 75.0
    groups_per_year: int = 8
    participants_per_group: int = 12
    sessions_per_group: int = 8
    minutes_per_participant_per_session: float = 40.0
    face_to_face_time_gain: float = 0.20
    online_efficiency: float = 0.40
    online_share: float = 0.5
    development_cost: float = 15_000.0
    implementation_cost: float = 5_000.0
    training_cost: float = 3_000.0
    licence_cost_per_year: float = 2_500.0
    years: int = 5

    def __post_init__(self) -> None:
        for name in ("face_to_face_time_gain", "online_efficiency", "online_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidAssumptions(f"{name} is a share between 0 and 1")
        if self.years < 1 or self.years > 30:
            raise InvalidAssumptions("years: between 1 and 30")

    @property
    def hours_per_year(self) -> float:
        """Face-to-face hours a year without the platform."""
        return (
            self.groups_per_year
            * self.participants_per_group
            * self.sessions_per_group
            * self.minutes_per_participant_per_session
            / 60
        )


@dataclass(frozen=True)
class MeasuredHours:
    """A year of the organisation's own registrations."""

    face_to_face_hours: float
    online_replacing_hours: float
    period: str


@dataclass(frozen=True)
class Year:
    year: int
    hours_saved: float
    savings: float
    costs: float
    balance: float
    cumulative_balance: float


@dataclass(frozen=True)
class BusinessCase:
    assumptions: Assumptions
    measured: MeasuredHours | None
    face_to_face_hours: float
    online_hours: float
    years: tuple[Year, ...]

    @property
    def break_even_year(self) -> int | None:
        """The first year whose cumulative balance is no longer negative."""
        return next((y.year for y in self.years if y.cumulative_balance >= 0), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "assumptions": asdict(self.assumptions),
            "measured": asdict(self.measured) if self.measured else None,
            "hours_source": "measured" if self.measured else "assumed",
            "face_to_face_hours_per_year": round(self.face_to_face_hours, 2),
            "online_hours_per_year": round(self.online_hours, 2),
            "years": [asdict(y) for y in self.years],
            "break_even_year": self.break_even_year,
        }


def business_case(assumptions: Assumptions, measured: MeasuredHours | None = None) -> BusinessCase:
    if measured is not None:
        face_to_face, online = measured.face_to_face_hours, measured.online_replacing_hours
    else:
        face_to_face = assumptions.hours_per_year * (1 - assumptions.online_share)
        online = assumptions.hours_per_year * assumptions.online_share
    hours_saved = (
        face_to_face * assumptions.face_to_face_time_gain + online * assumptions.online_efficiency
    )
    savings = round(hours_saved * assumptions.hourly_rate, 2)
    one_off = (
        assumptions.development_cost + assumptions.implementation_cost + assumptions.training_cost
    )
    years, cumulative = [], 0.0
    for year in range(1, assumptions.years + 1):
        costs = assumptions.licence_cost_per_year + (one_off if year == 1 else 0.0)
        balance = round(savings - costs, 2)
        cumulative = round(cumulative + balance, 2)
        years.append(Year(year, round(hours_saved, 2), savings, costs, balance, cumulative))
    return BusinessCase(assumptions, measured, face_to_face, online, tuple(years))
