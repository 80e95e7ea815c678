"""An enrolment in a self-help module: assigned (or chosen while waiting), worked through
step by step, completed, or left unfinished for a while.

Plain Python, no I/O. The client is never punished: an enrolment left idle counts as
abandoned for the figures, yet the client may pick it up again at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    HomeworkSubmitted,
    LifeDomainScores,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
    QuestionnaireMoment,
)
from ketenbus.contracts.values import Language, StepKind, new_id
from ketenbus.kit.errors import DomainError
from ketenbus.learning.catalogue import Module, Step


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class EnrolmentStatus(StrEnum):
    ENROLLED = "enrolled"
    STARTED = "started"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


@dataclass
class StepDone:
    step_id: str
    completed_at: datetime


@dataclass
class Submission:
    """Homework as the client handed it in, and the worker's feedback (sealed as it came:
    opened only when the client reads it)."""

    id: str
    step_id: str
    answer: str
    submitted_at: datetime
    feedback: dict[str, Any] | None = None
    feedback_given_at: datetime | None = None

    def __repr__(self) -> str:  # the answer is case content: never in a log
        return f"Submission(id={self.id!r}, step_id={self.step_id!r})"


@dataclass
class Answers:
    step_id: str
    questionnaire_id: str
    moment: QuestionnaireMoment
    scores: dict[str, int]
    completed_at: datetime


@dataclass
class Enrolment:
    id: str
    client_ref: str
    organisation_id: str
    module_id: str
    enrolled_at: datetime
    language: Language = Language.NL
    self_enrolled: bool = False
    trajectory_id: str | None = None
    status: EnrolmentStatus = EnrolmentStatus.ENROLLED
    steps_done: list[StepDone] = field(default_factory=list)
    submissions: list[Submission] = field(default_factory=list)
    answers: list[Answers] = field(default_factory=list)
    last_progress_at: datetime | None = None
    # When the client first opened it: a module left idle before it was begun is begun later.
    started_at: datetime | None = None
    # Since when nothing happened: what the abandonment check looks at.
    idle_since: datetime | None = None
    abandoned_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ enrolling

    @classmethod
    def assign(
        cls,
        *,
        enrolment_id: str,
        client_ref: str,
        organisation_id: str,
        module: Module,
        language: Language,
        trajectory_id: str,
        at: datetime,
    ) -> Enrolment:
        """The social worker gave this module as homework (ModuleAssigned)."""
        return cls(
            id=enrolment_id,
            client_ref=client_ref,
            organisation_id=organisation_id,
            module_id=module.id,
            enrolled_at=at,
            language=language,
            trajectory_id=trajectory_id,
            idle_since=at,
        )

    @classmethod
    def choose(
        cls,
        *,
        client_ref: str,
        organisation_id: str,
        module: Module,
        language: Language,
        waiting: bool,
        at: datetime,
    ) -> Enrolment:
        """A client on the waiting list starts a self-help module of their own accord."""
        if not waiting:
            raise DomainError(
                "a client enrols themselves only while waiting; a social worker assigns modules"
            )
        if not module.self_help:
            raise DomainError(f"module {module.id} is not meant for self-help")
        enrolment = cls(
            id=new_id("enr"),
            client_ref=client_ref,
            organisation_id=organisation_id,
            module_id=module.id,
            enrolled_at=at,
            language=language,
            self_enrolled=True,
            idle_since=at,
        )
        enrolment.start(at)  # choosing it is starting it
        return enrolment

    # ------------------------------------------------------------------ working through it

    def start(self, at: datetime) -> None:
        """The client opens the module for the first time; opening it again is not starting it
        again. One left idle before it was begun is begun now, and counted as started."""
        if self.started_at is not None or self.status is EnrolmentStatus.COMPLETED:
            return
        self.status, self.started_at, self.abandoned_at = EnrolmentStatus.STARTED, at, None
        self._progress(at)
        self._record(
            ModuleStarted(**self._about(), self_enrolled=self.self_enrolled, started_at=at)
        )

    def complete_step(self, module: Module, step_id: str, at: datetime) -> None:
        """A text read, a video watched, an exercise done."""
        step = self._step(module, step_id)
        if not step.answered_directly:
            raise DomainError(f"step {step_id} is done by handing in its {step.kind.value}")
        self._ensure_open()
        if self.done(step_id):
            raise DomainError(f"step {step_id} is already done")
        self._step_done(module, step, at)

    def submit_homework(self, module: Module, step_id: str, answer: str, at: datetime) -> str:
        """Hand in homework; it may be handed in again (the worker may ask for more)."""
        step = self._step(module, step_id)
        if step.kind is not StepKind.HOMEWORK:
            raise DomainError(f"step {step_id} is a {step.kind.value}, not homework")
        self._ensure_open()
        submission = Submission(new_id("hws"), step_id, answer, at)
        self.submissions.append(submission)
        self._record(
            HomeworkSubmitted(
                **self._about(), submission_id=submission.id, step_id=step_id, submitted_at=at
            )
        )
        if not self.done(step_id):
            self._step_done(module, step, at)
        else:
            self._progress(at)
        return submission.id

    def answer_questionnaire(
        self,
        module: Module,
        step_id: str,
        scores: LifeDomainScores,
        earlier_answers: int,
        at: datetime,
    ) -> QuestionnaireMoment:
        """The self-scan: the first time is the baseline, later ones are follow-ups (unless
        the module says which it is)."""
        step = self._step(module, step_id)
        if step.kind is not StepKind.QUESTIONNAIRE or step.questionnaire is None:
            raise DomainError(f"step {step_id} is a {step.kind.value}, not a questionnaire")
        self._ensure_open()
        if self.done(step_id):
            raise DomainError(f"the questionnaire of step {step_id} is already answered")
        moment = step.moment or (
            QuestionnaireMoment.FOLLOW_UP if earlier_answers else QuestionnaireMoment.BASELINE
        )
        self.answers.append(
            Answers(step_id, step.questionnaire, moment, scores.model_dump(), completed_at=at)
        )
        self._record(
            QuestionnaireCompleted(
                **self._about(),
                questionnaire_id=step.questionnaire,
                moment=moment,
                scores=scores,
                completed_at=at,
            )
        )
        self._step_done(module, step, at)
        return moment

    def complete(self, module: Module, at: datetime) -> None:
        """The client says they have finished, done every step or not (the counts show it)."""
        if self.status is EnrolmentStatus.COMPLETED:
            raise DomainError(f"enrolment {self.id} is already completed")
        self._finish(module, at)

    def give_feedback(self, submission_id: str, sealed: dict[str, Any], at: datetime) -> None:
        submission = next((s for s in self.submissions if s.id == submission_id), None)
        if submission is None:
            raise NotFound(f"no homework {submission_id} in enrolment {self.id}")
        submission.feedback, submission.feedback_given_at = sealed, at

    def abandon_if_idle(self, now: datetime, idle_for: timedelta) -> bool:
        """Counted as left unfinished after this long without progress. Not a verdict: any
        progress later picks it up again."""
        if self.status not in (EnrolmentStatus.ENROLLED, EnrolmentStatus.STARTED):
            return False
        idle_since = self.last_progress_at or self.enrolled_at
        if now - idle_since < idle_for:
            return False
        self.status, self.abandoned_at, self.idle_since = EnrolmentStatus.ABANDONED, now, None
        self._record(
            ModuleAbandoned(
                **self._about(),
                steps_completed=len(self.steps_done),
                idle_since=idle_since,
                abandoned_at=now,
            )
        )
        return True

    # ------------------------------------------------------------------ reading

    def done(self, step_id: str) -> bool:
        return any(s.step_id == step_id for s in self.steps_done)

    def next_step(self, module: Module) -> str | None:
        return next((s.id for s in module.steps if not self.done(s.id)), None)

    # ------------------------------------------------------------------ helpers

    def _step(self, module: Module, step_id: str) -> Step:
        step = module.step(step_id)
        if step is None:
            raise NotFound(f"module {module.id} has no step {step_id}")
        return step

    def _ensure_open(self) -> None:
        if self.status is EnrolmentStatus.COMPLETED:
            raise DomainError(f"enrolment {self.id} is completed")
        if self.status is EnrolmentStatus.ABANDONED:
            # Back after a while: welcome. Where it was left, not new: begun before or not yet.
            begun = self.started_at is not None
            self.status = EnrolmentStatus.STARTED if begun else EnrolmentStatus.ENROLLED
            self.abandoned_at = None

    def _step_done(self, module: Module, step: Step, at: datetime) -> None:
        self.start(at)
        self.steps_done.append(StepDone(step.id, at))
        self._progress(at)
        self._record(
            ModuleStepCompleted(
                **self._about(),
                step_id=step.id,
                step_kind=step.kind,
                step_number=module.number_of(step.id),
                steps_total=len(module.steps),
                completed_at=at,
            )
        )
        if all(self.done(s.id) for s in module.steps):
            self._finish(module, at)

    def _finish(self, module: Module, at: datetime) -> None:
        self.start(at)
        self.status, self.idle_since = EnrolmentStatus.COMPLETED, None
        self.last_progress_at = at
        self._record(
            ModuleCompleted(
                **self._about(),
                steps_completed=len(self.steps_done),
                steps_total=len(module.steps),
                completed_at=at,
            )
        )

    def _progress(self, at: datetime) -> None:
        self.last_progress_at = at
        if self.status in (EnrolmentStatus.ENROLLED, EnrolmentStatus.STARTED):
            self.idle_since = at

    def _about(self) -> dict[str, str]:
        return {
            "enrolment_id": self.id,
            "client_ref": self.client_ref,
            "organisation_id": self.organisation_id,
            "module_id": self.module_id,
        }

    def _record(self, event: Event) -> None:
        self.events.append(event)
