"""The business case as the sector calculates it for a programme: pure, no I/O.

A programme is a group training given in several variants, each with its own number of
face-to-face and online sessions, which may change from a given year. Per variant and year
the savings are the sum of four components:

- online efficiency: minutes per participant per session x online efficiency share, at the
  hourly rate, x online sessions x participants per group x groups;
- less scheduling: (preparation hours of a face-to-face session - of an online session) at
  the hourly rate x online sessions x groups;
- information online: minutes per participant per session x face-to-face time gain, at the
  hourly rate, x face-to-face sessions x participants x groups;
- fewer referrals: a saving per participant x participants (per group x groups).

Costs per year come from a cost scenario: cost lines, each paid from a year (until a year,
when given): development, implementation and training in year 1, a licence every year,
course costs and extra groups from a given year. Several scenarios are compared side by
side, with the balance, the cumulative balance and the break-even year (the first with a
cumulative balance >= 0) of each; a scenario may be the average of others.

The parameters are configuration: the sector's published example ships as
`data/business-case-example.json`.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

COMPONENTS = ("online_efficiency", "less_scheduling", "information_online", "fewer_referrals")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sessions(_Model):
    """A variant's sessions per group from a year on (until the next change)."""

    from_year: int = Field(default=1, ge=1)
    face_to_face: int = Field(ge=0)
    online: int = Field(ge=0)


class Variant(_Model):
    name: str = Field(min_length=1, max_length=80)
    groups_per_year: int = Field(ge=0)
    participants_per_group: int = Field(ge=0)
    sessions: tuple[Sessions, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _starts_in_year_one(self) -> Variant:
        if min(s.from_year for s in self.sessions) != 1:
            raise ValueError(f"variant {self.name}: its sessions must be given from year 1")
        return self

    def sessions_in(self, year: int) -> Sessions:
        return max((s for s in self.sessions if s.from_year <= year), key=lambda s: s.from_year)


class CostLine(_Model):
    name: str = Field(min_length=1, max_length=80)
    amount: float = Field(ge=0)
    from_year: int = Field(default=1, ge=1)
    until_year: int | None = Field(default=None, ge=1)

    def in_year(self, year: int) -> float:
        ended = self.until_year is not None and year > self.until_year
        return self.amount if self.from_year <= year and not ended else 0.0


class CostScenario(_Model):
    name: str = Field(min_length=1, max_length=80)
    costs: tuple[CostLine, ...] = ()
    # Or: the average, year by year, of the costs of the scenarios named here.
    average_of: tuple[str, ...] = ()


class Programme(_Model):
    name: str = Field(default="programme", min_length=1, max_length=120)
    note: str | None = Field(default=None, max_length=1000)
    hourly_rate: float = Field(ge=0)
    minutes_per_participant_per_session: float = Field(ge=0)
    face_to_face_time_gain: float = Field(ge=0, le=1)
    online_efficiency: float = Field(ge=0, le=1)
    preparation_hours_face_to_face: float = Field(ge=0)
    preparation_hours_online: float = Field(ge=0)
    referral_saving_per_participant: float = Field(ge=0)
    years: int = Field(default=5, ge=1, le=30)
    variants: tuple[Variant, ...] = Field(min_length=1)
    scenarios: tuple[CostScenario, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _averages_name_scenarios(self) -> Programme:
        plain = {s.name for s in self.scenarios if not s.average_of}
        for scenario in self.scenarios:
            unknown = set(scenario.average_of) - plain
            if unknown:
                raise ValueError(f"{scenario.name}: averages unknown scenarios {sorted(unknown)}")
        return self

    def savings(self, variant: Variant, year: int) -> dict[str, float]:
        """The four components of one variant's savings in a year, in euros."""
        sessions = variant.sessions_in(year)
        hours = self.minutes_per_participant_per_session / 60
        participants = variant.participants_per_group * variant.groups_per_year
        rate = self.hourly_rate
        preparation = self.preparation_hours_face_to_face - self.preparation_hours_online
        return {
            "online_efficiency": round(
                hours * self.online_efficiency * rate * sessions.online * participants, 2
            ),
            "less_scheduling": round(
                preparation * rate * sessions.online * variant.groups_per_year, 2
            ),
            "information_online": round(
                hours * self.face_to_face_time_gain * rate * sessions.face_to_face * participants,
                2,
            ),
            "fewer_referrals": round(self.referral_saving_per_participant * participants, 2),
        }

    def costs(self, scenario: CostScenario, year: int) -> float:
        if scenario.average_of:
            named = {s.name: s for s in self.scenarios}
            parts = [self.costs(named[name], year) for name in scenario.average_of]
            return round(sum(parts) / len(parts), 2)
        return round(sum(line.in_year(year) for line in scenario.costs), 2)


def calculate(programme: Programme) -> dict[str, Any]:
    """Per year the savings of every variant by component, the costs of every scenario, and
    per scenario its balance, cumulative balance and break-even year."""
    years = range(1, programme.years + 1)
    savings_by_year = []
    for year in years:
        variants = {}
        for variant in programme.variants:
            parts = programme.savings(variant, year)
            sessions = variant.sessions_in(year)
            variants[variant.name] = {
                "face_to_face_sessions": sessions.face_to_face,
                "online_sessions": sessions.online,
                **parts,
                "total": round(sum(parts.values()), 2),
            }
        by_component = {c: round(sum(v[c] for v in variants.values()), 2) for c in COMPONENTS}
        savings_by_year.append(
            {
                "year": year,
                "variants": variants,
                **by_component,
                "total": round(sum(by_component.values()), 2),
            }
        )
    scenarios = []
    for scenario in programme.scenarios:
        cumulative, rows = 0.0, []
        for saved in savings_by_year:
            costs = programme.costs(scenario, saved["year"])
            balance = round(saved["total"] - costs, 2)
            cumulative = round(cumulative + balance, 2)
            rows.append(
                {
                    "year": saved["year"],
                    "savings": saved["total"],
                    "costs": costs,
                    "balance": balance,
                    "cumulative_balance": cumulative,
                }
            )
        scenarios.append(
            {
                "name": scenario.name,
                "average_of": list(scenario.average_of),
                "years": rows,
                "break_even_year": next(
                    (r["year"] for r in rows if r["cumulative_balance"] >= 0), None
                ),
            }
        )
    return {
        "programme": programme.name,
        "parameters": programme.model_dump(mode="json"),
        "savings": savings_by_year,
        "scenarios": scenarios,
    }


def published_example() -> Programme:
    """The sector's published example (data/business-case-example.json)."""
    text = (files(__package__) / "data" / "business-case-example.json").read_text("utf-8")
    return Programme.model_validate(json.loads(text))
