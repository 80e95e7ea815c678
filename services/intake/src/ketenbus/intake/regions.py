"""Region routing: which organisation serves a postcode, and which municipality funds it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ketenbus.contracts.values import WorkType


@dataclass(frozen=True)
class Region:
    first: int
    last: int
    municipality: str
    organisation_id: str
    work_type: WorkType


class RegionTable:
    def __init__(self, regions: list[Region]) -> None:
        self.regions = sorted(regions, key=lambda r: r.first)

    @classmethod
    def load(cls, path: Path | None = None) -> RegionTable:
        text = (
            path.read_text(encoding="utf-8")
            if path is not None
            else resources.files(__package__).joinpath("data/regions.json").read_text("utf-8")
        )
        return cls(
            [
                Region(
                    int(row["from"]),
                    int(row["to"]),
                    row["municipality"],
                    row["organisation_id"],
                    WorkType(row["work_type"]),
                )
                for row in json.loads(text)["regions"]
            ]
        )

    def route(self, postcode_area: str) -> Region | None:
        area = int(postcode_area)
        return next((r for r in self.regions if r.first <= area <= r.last), None)
