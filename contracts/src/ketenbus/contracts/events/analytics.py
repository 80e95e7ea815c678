"""Events analytics owns: aggregate figures only, never a client."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import BENCHMARKS, Topic
from ketenbus.contracts.values import Municipality, WorkType

Period = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$")]
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
