"""An enrolment in a self-help module: assigned (or chosen), started, completed.

Plain Python, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import ModuleCompleted, ModuleStarted
from ketenbus.kit.failures import DomainError


class EnrolmentStatus(StrEnum):
    ENROLLED = "enrolled"
    STARTED = "started"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


@dataclass
class Enrolment:
    id: str
    client_ref: str
    organisation_id: str
    module_id: str
    enrolled_at: datetime
    self_enrolled: bool = False
    status: EnrolmentStatus = EnrolmentStatus.ENROLLED
    last_progress_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    def start(self, at: datetime) -> None:
        if self.status is not EnrolmentStatus.ENROLLED:
            return  # opening a module again is not starting it again
        self.status, self.last_progress_at = EnrolmentStatus.STARTED, at
        self._record(
            ModuleStarted(**self._about(), self_enrolled=self.self_enrolled, started_at=at)
        )

    def complete(self, at: datetime) -> None:
        if self.status is EnrolmentStatus.COMPLETED:
            raise DomainError(f"enrolment {self.id} is already completed")
        self.start(at)
        self.status, self.last_progress_at = EnrolmentStatus.COMPLETED, at
        self._record(ModuleCompleted(**self._about(), completed_at=at))

    def _about(self) -> dict[str, str]:
        return {
            "enrolment_id": self.id,
            "client_ref": self.client_ref,
            "organisation_id": self.organisation_id,
            "module_id": self.module_id,
        }

    def _record(self, event: Event) -> None:
        self.events.append(event)
