"""Region routing and capacity: configuration shipped as data, replaceable per deployment.

Postcode area -> municipality (the funder) -> the welfare organisation serving it and the
debt-counselling partner it hands off to; and how many trajectories each organisation runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ketenbus.contracts.values import WorkType


@dataclass(frozen=True)
class Region:
    first: int
    last: int
    municipality: str
    organisation_id: str
    work_type: WorkType
    debt_counselling_partner: str | None = None


def _read(path: Path | None, packaged: str) -> Any:
    text = (
        path.read_text(encoding="utf-8")
        if path is not None
        else resources.files(__package__).joinpath(packaged).read_text("utf-8")
    )
    return json.loads(text)


class RegionTable:
    def __init__(self, regions: list[Region]) -> None:
        for region in regions:
            # Material/debt problems are a question topic under general social work, not a
            # work type (docs/analytics.md); the v1 value is only read, never produced.
            if region.work_type is WorkType.MATERIAL:
                raise ValueError(
                    f"{region.municipality}: material_debt is not a work type; serve it as "
                    "general_social_work (the referral's topic says it is about debts)"
                )
        self.regions = sorted(regions, key=lambda r: r.first)

    @classmethod
    def load(cls, path: Path | None = None) -> RegionTable:
        return cls(
            [
                Region(
                    int(row["from"]),
                    int(row["to"]),
                    row["municipality"],
                    row["organisation_id"],
                    WorkType(row["work_type"]),
                    row.get("debt_counselling_partner"),
                )
                for row in _read(path, "data/regions.json")["regions"]
            ]
        )

    def route(self, postcode_area: str) -> Region | None:
        area = int(postcode_area)
        return next((r for r in self.regions if r.first <= area <= r.last), None)

    def serves(self, organisation_id: str) -> Region | None:
        """A region the organisation serves (for its debt-counselling partner)."""
        return next((r for r in self.regions if r.organisation_id == organisation_id), None)


class CapacityTable:
    """Trajectories an organisation can run at once; None is no limit."""

    def __init__(self, capacities: dict[str, int]) -> None:
        self.capacities = dict(capacities)

    @classmethod
    def load(cls, path: Path | None = None) -> CapacityTable:
        return cls(
            {org: int(n) for org, n in _read(path, "data/capacity.json")["organisations"].items()}
        )

    def of(self, organisation_id: str) -> int | None:
        return self.capacities.get(organisation_id)
