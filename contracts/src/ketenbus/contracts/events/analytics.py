"""Events analytics owns: aggregate figures only, never a client.

`KpiSnapshotPublished.v1` cut its cells by funder; a funder maps to one organisation, so a
pseudonymised v1 snapshot still named who published it. v2 cuts by work type and online
dossier only, covers a whole calendar quarter or year, and says which snapshot it replaces.
v1 stays readable (it is on the topic's history); analytics publishes v2 only.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import BENCHMARKS, Topic
from ketenbus.contracts.values import Municipality, WorkType

Period = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$")]
# A whole calendar quarter or year (Dutch local time): what a v2 snapshot covers.
BenchmarkPeriod = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}(-Q[1-4])?$")]
SnapshotId = Annotated[str, StringConstraints(pattern=r"^kpi_[0-9a-f]{32}$")]
OrganisationLabel = Annotated[str, StringConstraints(min_length=2, max_length=80)]


class KpiCell(BaseModel):
    """One cell of the benchmark. A figure is None where the cell is too small to show."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    funder: Municipality
    work_type: WorkType
    online_dossier_used: bool
    period: Period
    closed_cases: int | None = Field(ge=0)
    suppressed: bool
    minutes_per_case: float | None = None
    lead_time_days: float | None = None
    no_show_rate_intake: float | None = Field(default=None, ge=0, le=1)
    no_show_rate_follow_up: float | None = Field(default=None, ge=0, le=1)
    module_completion_rate: float | None = Field(default=None, ge=0, le=1)
    online_share_of_contacts: float | None = Field(default=None, ge=0, le=1)


class KpiSnapshotPublished(Event):
    owner: ClassVar[str] = "analytics"
    stream: ClassVar[Topic | None] = BENCHMARKS

    snapshot_id: str = Field(pattern=r"^kpi_[0-9a-f]{32}$")
    organisation: OrganisationLabel
    pseudonymised: bool
    period: Period
    cells: tuple[KpiCell, ...]
    published_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.organisation


class BenchmarkCell(BaseModel):
    """One cell of a v2 snapshot: a work type, with or without the online dossier. Figures
    are None where the cell is suppressed (too small, or suppressed to protect another)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    work_type: WorkType
    online_dossier_used: bool
    closed_cases: int | None = Field(ge=0)
    suppressed: bool
    minutes_per_case: float | None = None
    lead_time_days: float | None = None
    no_show_rate_intake: float | None = Field(default=None, ge=0, le=1)
    no_show_rate_follow_up: float | None = Field(default=None, ge=0, le=1)
    module_completion_rate: float | None = Field(default=None, ge=0, le=1)
    online_share_of_contacts: float | None = Field(default=None, ge=0, le=1)


class KpiSnapshotPublishedV2(Event):
    """An organisation's aggregates for a whole calendar quarter or year, for the benchmark.

    One per organisation per period: a later snapshot for the same period names the one it
    replaces in `replaces` and carries the same label, so it travels under the same key, after
    the old one on its partition; readers keep the latest and drop the replaced one.
    """

    name: ClassVar[str] = "KpiSnapshotPublished"
    version: ClassVar[int] = 2
    owner: ClassVar[str] = "analytics"
    stream: ClassVar[Topic | None] = BENCHMARKS

    snapshot_id: SnapshotId
    organisation: OrganisationLabel
    pseudonymised: bool
    period: BenchmarkPeriod
    cells: tuple[BenchmarkCell, ...]
    published_at: AwareDatetime
    replaces: SnapshotId | None = None

    @property
    def subject(self) -> str:
        return self.organisation
