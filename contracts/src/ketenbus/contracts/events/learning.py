"""Events learning owns: self-help modules and questionnaires."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import ENROLMENTS, Topic
from ketenbus.contracts.values import (
    ClientRef,
    EnrolmentId,
    ModuleId,
    OrganisationId,
    StepId,
    StepKind,
    SubmissionId,
)

Score = Annotated[int, Field(ge=0, le=10)]


class _EnrolmentEvent(Event):
    owner: ClassVar[str] = "learning"
    stream: ClassVar[Topic | None] = ENROLMENTS

    enrolment_id: EnrolmentId
    client_ref: ClientRef
    organisation_id: OrganisationId
    module_id: ModuleId


class ModuleStarted(_EnrolmentEvent):
    self_enrolled: bool = False
    started_at: AwareDatetime


class ModuleStepCompleted(_EnrolmentEvent):
    step_id: StepId
    step_kind: StepKind
    step_number: int = Field(ge=1)
    steps_total: int = Field(ge=1)
    completed_at: AwareDatetime


class HomeworkSubmitted(_EnrolmentEvent):
    """The answer itself stays in learning; trajectory shows the worker where to read it."""

    submission_id: SubmissionId
    step_id: StepId
    submitted_at: AwareDatetime


class ModuleCompleted(_EnrolmentEvent):
    # A client may mark a module finished before every step is done: the counts show it.
    steps_completed: int | None = Field(default=None, ge=0)
    steps_total: int | None = Field(default=None, ge=1)
    completed_at: AwareDatetime


class ModuleAbandoned(_EnrolmentEvent):
    steps_completed: int = Field(ge=0)
    idle_since: AwareDatetime
    abandoned_at: AwareDatetime


class QuestionnaireMoment(StrEnum):
    BASELINE = "baseline"
    FOLLOW_UP = "follow_up"


class LifeDomainScores(BaseModel):
    """The client's own view of six areas of life, 0 (very hard) to 10 (going well)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    money: Score
    housing: Score
    health: Score
    social_contacts: Score
    daily_activities: Score
    wellbeing: Score


class QuestionnaireCompleted(_EnrolmentEvent):
    questionnaire_id: ModuleId
    moment: QuestionnaireMoment
    scores: LifeDomainScores
    completed_at: AwareDatetime
