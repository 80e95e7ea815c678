"""The client portal's side of learning: the modules, and working through one step by step.
Plus two routes for the social worker: a portal token for a client, and reading homework a
client handed in.

The portal authenticates the client, not the organisation: the worker issues a short-lived
token (`POST /v1/clients/{client_ref}/portal-tokens`, `kbp_...`, stored hashed), and with it
the portal reaches that client's enrolments only; another client's is 404. Nothing else
reaches a client's enrolments: the organisation's portal key (`enrolments:*`) is refused
there (403); it reads the module catalogue only, which holds nothing of anyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from ketenbus.contracts import sealing
from ketenbus.contracts.events import LifeDomainScores, QuestionnaireMoment
from ketenbus.contracts.values import Language, Sealed, StepKind
from ketenbus.kit.auth import BEARER, Caller, requires
from ketenbus.kit.uow import UnitOfWork
from ketenbus.kit.web import service_dependencies
from ketenbus.learning.bootstrap import LearningDependencies
from ketenbus.learning.catalogue import Catalogue, Module
from ketenbus.learning.domain import Enrolment, EnrolmentStatus, NotFound
from ketenbus.learning.store import LearningTransaction

router = APIRouter(prefix="/v1", tags=["learning"])


@dataclass(frozen=True)
class PortalCaller:
    organisation_id: str
    client_ref: str  # the client the portal token was issued for


def catalogue_reader(scope: str) -> Callable[..., Awaitable[Caller | PortalCaller]]:
    """A client's portal token or an API key with the scope: the catalogue is nobody's."""
    by_key, by_token = requires(scope), portal(scope)

    async def authenticated(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER, scopes=[scope]),  # noqa: B008
    ) -> Caller | PortalCaller:
        token = credentials.credentials if credentials else ""
        if token.startswith("kbp_"):
            return await by_token(request, credentials)
        return await by_key(request, credentials)

    return authenticated


def portal(scope: str) -> Callable[..., Awaitable[PortalCaller]]:
    """The client, by the portal token (`kbp_...`) their social worker issued. An API key,
    the organisation's portal key too, is valid but does not reach a client's enrolments."""
    by_key = requires(scope)

    async def authenticated(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER, scopes=[scope]),  # noqa: B008
    ) -> PortalCaller:
        token = credentials.credentials if credentials else ""
        if not token.startswith("kbp_"):
            await by_key(request, credentials)  # 401 for no key or an unknown one, as anywhere
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "a client's enrolments open with that client's portal token only (the "
                "social worker issues it: POST /v1/clients/{client_ref}/portal-tokens), "
                "not with an organisation's key",
            )
        async with (await service_dependencies(request)).uow.reading() as tx:
            holder = await tx.portal_tokens.holder(token, datetime.now(UTC))
        if holder is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or expired portal token: ask the social worker for a new link",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return PortalCaller(*holder)

    return authenticated


Portal = Annotated[PortalCaller, Depends(portal("enrolments:write"))]
PortalReader = Annotated[PortalCaller, Depends(portal("enrolments:read"))]
# The module catalogue is the same for everyone: the organisation's portal key reads it too.
CatalogueReader = Annotated[Caller | PortalCaller, Depends(catalogue_reader("enrolments:read"))]
Worker = Annotated[Caller, Depends(requires("trajectories:read"))]
WorkerForClient = Annotated[Caller, Depends(requires("clients:write"))]
ClientPath = Annotated[str, Path(pattern=r"^cl_[0-9a-f]{32}$")]
EnrolmentPath = Annotated[str, Path(pattern=r"^enr_[0-9a-f]{32}$")]
StepPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ClientRefQuery = Annotated[str, Query(pattern=r"^cl_[0-9a-f]{32}$")]


Deps = Annotated[LearningDependencies, Depends(service_dependencies)]


async def _uow(deps: Deps) -> UnitOfWork[LearningTransaction]:
    return deps.uow


async def _catalogue(deps: Deps) -> Catalogue:
    return deps.catalogue


async def _feedback_key(deps: Deps) -> bytes | None:
    return deps.feedback_key


Uow = Annotated[UnitOfWork[LearningTransaction], Depends(_uow)]
Modules = Annotated[Catalogue, Depends(_catalogue)]
FeedbackKey = Annotated[bytes | None, Depends(_feedback_key)]


# ---------------------------------------------------------------- what goes out


class StepOut(BaseModel):
    step_id: str
    kind: StepKind
    title: str
    body: str
    url: str | None = None
    questions: dict[str, str] | None = None  # a questionnaire's question per life domain
    scale: str | None = None


class ModuleSummary(BaseModel):
    module_id: str
    title: str
    summary: str
    self_help: bool
    minutes: int
    steps: int


class ModuleOut(ModuleSummary):
    content: list[StepOut]


class EnrolmentOut(BaseModel):
    enrolment_id: str
    client_ref: str
    module_id: str
    status: EnrolmentStatus
    enrolled_at: datetime
    self_enrolled: bool
    steps_done: int
    steps_total: int
    next_step: str | None

    @classmethod
    def of(cls, enrolment: Enrolment, module: Module | None) -> EnrolmentOut:
        return cls(
            enrolment_id=enrolment.id,
            client_ref=enrolment.client_ref,
            module_id=enrolment.module_id,
            status=enrolment.status,
            enrolled_at=enrolment.enrolled_at,
            self_enrolled=enrolment.self_enrolled,
            steps_done=len(enrolment.steps_done),
            steps_total=len(module.steps) if module else 0,
            next_step=enrolment.next_step(module) if module else None,
        )


class StepProgress(BaseModel):
    step_id: str
    kind: StepKind
    title: str
    done: bool
    completed_at: datetime | None


class HomeworkOut(BaseModel):
    submission_id: str
    step_id: str
    answer: str
    submitted_at: datetime
    feedback: str | None  # the social worker's reply, when there is one
    feedback_given_at: datetime | None


class QuestionnaireOut(BaseModel):
    step_id: str
    questionnaire_id: str
    moment: QuestionnaireMoment
    scores: LifeDomainScores
    completed_at: datetime


class ProgressOut(EnrolmentOut):
    title: str
    language: Language
    steps: list[StepProgress]
    homework: list[HomeworkOut]
    questionnaires: list[QuestionnaireOut]


# ---------------------------------------------------------------- what comes in


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_ref: str = Field(pattern=r"^cl_[0-9a-f]{32}$")
    module_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    language: Language = Language.NL


class HomeworkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=10_000)


class AnswersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: LifeDomainScores


# ---------------------------------------------------------------- the catalogue


def _summary(module: Module, language: Language) -> dict[str, Any]:
    return {
        "module_id": module.id,
        "title": module.title(language),
        "summary": module.summary(language),
        "self_help": module.self_help,
        "minutes": module.minutes,
        "steps": len(module.steps),
    }


@router.get("/modules", response_model=list[ModuleSummary], tags=["modules"])
async def modules(
    caller: CatalogueReader, catalogue: Modules, language: Language = Language.NL
) -> list[ModuleSummary]:
    return [ModuleSummary(**_summary(m, language)) for m in catalogue.modules.values()]


@router.get("/modules/{module_id}", response_model=ModuleOut, tags=["modules"])
async def module_content(
    module_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")],
    caller: CatalogueReader,
    catalogue: Modules,
    language: Language = Language.NL,
) -> ModuleOut:
    module = _module(catalogue, module_id)
    content = []
    for step in module.steps:
        questionnaire = catalogue.questionnaires.get(step.questionnaire or "")
        content.append(
            StepOut(
                step_id=step.id,
                kind=step.kind,
                title=step.title(language),
                body=step.body(language),
                url=step.url,
                questions=(
                    {d.id: d.question(language) for d in questionnaire.domains}
                    if questionnaire
                    else None
                ),
                scale=questionnaire.scale(language) if questionnaire else None,
            )
        )
    return ModuleOut(**_summary(module, language), content=content)


# ---------------------------------------------------------------- enrolments


@router.get("/enrolments", response_model=list[EnrolmentOut])
async def client_enrolments(
    caller: PortalReader, uow: Uow, catalogue: Modules, client_ref: ClientRefQuery
) -> list[EnrolmentOut]:
    _ensure_client(caller, client_ref)
    async with uow.reading() as tx:
        found = await tx.enrolments.of_client(caller.organisation_id, client_ref)
    return [EnrolmentOut.of(e, catalogue.module(e.module_id)) for e in found]


@router.post("/enrolments", status_code=status.HTTP_201_CREATED, response_model=EnrolmentOut)
async def enrol_while_waiting(
    body: EnrolIn, caller: Portal, uow: Uow, catalogue: Modules
) -> EnrolmentOut:
    """A client on the waiting list starts a self-help module (or the self-scan) themselves."""
    _ensure_client(caller, body.client_ref)
    module = _module(catalogue, body.module_id)
    async with uow.command() as tx:
        enrolment = Enrolment.choose(
            client_ref=body.client_ref,
            organisation_id=caller.organisation_id,
            module=module,
            language=body.language,
            waiting=await tx.waiting_list.waiting(body.client_ref, caller.organisation_id),
            at=tx.clock.now(),
        )
        await tx.enrolments.add(enrolment)
    return EnrolmentOut.of(enrolment, module)


@router.get("/enrolments/{enrolment_id}", response_model=ProgressOut)
async def progress(
    enrolment_id: EnrolmentPath,
    caller: PortalReader,
    uow: Uow,
    catalogue: Modules,
    feedback_key: FeedbackKey,
) -> ProgressOut:
    """Where the client stands: steps done, homework with the worker's feedback, scores."""
    async with uow.reading() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
    module = _module(catalogue, enrolment.module_id)
    language = enrolment.language
    done_at = {s.step_id: s.completed_at for s in enrolment.steps_done}
    return ProgressOut(
        **EnrolmentOut.of(enrolment, module).model_dump(),
        title=module.title(language),
        language=language,
        steps=[
            StepProgress(
                step_id=s.id,
                kind=s.kind,
                title=s.title(language),
                done=s.id in done_at,
                completed_at=done_at.get(s.id),
            )
            for s in module.steps
        ],
        homework=[
            HomeworkOut(
                submission_id=h.id,
                step_id=h.step_id,
                answer=h.answer,
                submitted_at=h.submitted_at,
                feedback=_open_feedback(h.feedback, feedback_key),
                feedback_given_at=h.feedback_given_at,
            )
            for h in enrolment.submissions
        ],
        questionnaires=[
            QuestionnaireOut(
                step_id=a.step_id,
                questionnaire_id=a.questionnaire_id,
                moment=a.moment,
                scores=LifeDomainScores.model_validate(a.scores),
                completed_at=a.completed_at,
            )
            for a in enrolment.answers
        ],
    )


@router.post("/enrolments/{enrolment_id}/start", response_model=EnrolmentOut)
async def start_module(
    enrolment_id: EnrolmentPath, caller: Portal, uow: Uow, catalogue: Modules
) -> EnrolmentOut:
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        enrolment.start(tx.clock.now())
        await tx.enrolments.save(enrolment)
    return EnrolmentOut.of(enrolment, catalogue.module(enrolment.module_id))


@router.post("/enrolments/{enrolment_id}/steps/{step_id}/complete", response_model=EnrolmentOut)
async def complete_step(
    enrolment_id: EnrolmentPath, step_id: StepPath, caller: Portal, uow: Uow, catalogue: Modules
) -> EnrolmentOut:
    """A text read, a video watched, an exercise done."""
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        module = _module(catalogue, enrolment.module_id)
        enrolment.complete_step(module, step_id, tx.clock.now())
        await tx.enrolments.save(enrolment)
    return EnrolmentOut.of(enrolment, module)


@router.post(
    "/enrolments/{enrolment_id}/steps/{step_id}/homework",
    status_code=status.HTTP_201_CREATED,
    response_model=HomeworkOut,
)
async def submit_homework(
    enrolment_id: EnrolmentPath,
    step_id: StepPath,
    body: HomeworkIn,
    caller: Portal,
    uow: Uow,
    catalogue: Modules,
) -> HomeworkOut:
    """The answer stays here; the social worker sees in trajectory that it is there."""
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        module = _module(catalogue, enrolment.module_id)
        submission_id = enrolment.submit_homework(module, step_id, body.answer, tx.clock.now())
        await tx.enrolments.save(enrolment)
    submission = next(s for s in enrolment.submissions if s.id == submission_id)
    return HomeworkOut(
        submission_id=submission.id,
        step_id=submission.step_id,
        answer=submission.answer,
        submitted_at=submission.submitted_at,
        feedback=None,
        feedback_given_at=None,
    )


@router.post(
    "/enrolments/{enrolment_id}/steps/{step_id}/questionnaire", response_model=QuestionnaireOut
)
async def answer_questionnaire(
    enrolment_id: EnrolmentPath,
    step_id: StepPath,
    body: AnswersIn,
    caller: Portal,
    uow: Uow,
    catalogue: Modules,
) -> QuestionnaireOut:
    """The self-scan's six scores; they go out (QuestionnaireCompleted) for effect figures."""
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        module = _module(catalogue, enrolment.module_id)
        step = module.step(step_id)
        earlier = await tx.enrolments.questionnaires_answered(
            enrolment.client_ref, step.questionnaire if step and step.questionnaire else ""
        )
        enrolment.answer_questionnaire(module, step_id, body.scores, earlier, tx.clock.now())
        await tx.enrolments.save(enrolment)
    answers = enrolment.answers[-1]
    return QuestionnaireOut(
        step_id=answers.step_id,
        questionnaire_id=answers.questionnaire_id,
        moment=answers.moment,
        scores=body.scores,
        completed_at=answers.completed_at,
    )


@router.post("/enrolments/{enrolment_id}/complete", response_model=EnrolmentOut)
async def complete_module(
    enrolment_id: EnrolmentPath, caller: Portal, uow: Uow, catalogue: Modules
) -> EnrolmentOut:
    """The client has finished the module (the step counts in ModuleCompleted show how far
    they went); finishing the last step completes it by itself."""
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        module = _module(catalogue, enrolment.module_id)
        enrolment.complete(module, tx.clock.now())
        await tx.enrolments.save(enrolment)
    return EnrolmentOut.of(enrolment, module)


# ---------------------------------------------------------------- for the social worker


class PortalTokenOut(BaseModel):
    token: str  # shown once; give it to the client (in the portal link)
    client_ref: str
    expires_at: datetime


@router.post(
    "/clients/{client_ref}/portal-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=PortalTokenOut,
    tags=["portal"],
)
async def issue_portal_token(
    client_ref: ClientPath, caller: WorkerForClient, deps: Deps
) -> PortalTokenOut:
    """A token for one client's portal: that client's enrolments, nobody else's, for a week
    (`PORTAL_TOKEN_VALID_FOR`). For a client of the worker's organisation that learning knows
    of (an enrolment, or a place on the waiting list)."""
    valid_for = deps.settings.portal_token_valid_for
    expires_at = datetime.now(UTC).replace(microsecond=0) + valid_for
    async with deps.uow.command() as tx:
        known = await tx.enrolments.of_client(caller.organisation_id, client_ref)
        waiting = await tx.waiting_list.waiting(client_ref, caller.organisation_id)
        if not known and not waiting:
            raise NotFound(f"no client {client_ref} in learning at your organisation")
        token = await tx.portal_tokens.issue(client_ref, caller.organisation_id, expires_at)
    return PortalTokenOut(token=token, client_ref=client_ref, expires_at=expires_at)


@router.get("/homework/{submission_id}", response_model=HomeworkOut, tags=["homework"])
async def read_homework(
    submission_id: Annotated[str, Path(pattern=r"^hws_[0-9a-f]{32}$")],
    caller: Worker,
    uow: Uow,
    feedback_key: FeedbackKey,
) -> HomeworkOut:
    """What trajectory's homework list points to: the client's own words."""
    async with uow.reading() as tx:
        enrolment = await tx.enrolments.by_submission(submission_id)
    if enrolment is None or enrolment.organisation_id != caller.organisation_id:
        raise NotFound(f"no homework {submission_id} at your organisation")
    submission = next(s for s in enrolment.submissions if s.id == submission_id)
    return HomeworkOut(
        submission_id=submission.id,
        step_id=submission.step_id,
        answer=submission.answer,
        submitted_at=submission.submitted_at,
        feedback=_open_feedback(submission.feedback, feedback_key),
        feedback_given_at=submission.feedback_given_at,
    )


# ---------------------------------------------------------------- helpers


async def own_enrolment(
    tx: LearningTransaction, enrolment_id: str, caller: PortalCaller
) -> Enrolment | None:
    """The caller's own enrolment; another organisation's, or another client's, does not exist
    for this caller (the FHIR Task read asks the same)."""
    enrolment = await tx.enrolments.get(enrolment_id)
    if (
        enrolment is None
        or enrolment.organisation_id != caller.organisation_id
        or enrolment.client_ref != caller.client_ref
    ):
        return None
    return enrolment


async def _own(tx: LearningTransaction, enrolment_id: str, caller: PortalCaller) -> Enrolment:
    enrolment = await own_enrolment(tx, enrolment_id, caller)
    if enrolment is None:
        raise NotFound(f"no enrolment {enrolment_id} at your organisation")
    return enrolment


def _ensure_client(caller: PortalCaller, client_ref: str) -> None:
    if caller.client_ref != client_ref:
        raise NotFound(f"no client {client_ref} for this portal token")


def _module(catalogue: Catalogue, module_id: str) -> Module:
    module = catalogue.module(module_id)
    if module is None:
        raise NotFound(f"no module {module_id} in the catalogue")
    return module


def _open_feedback(sealed: dict[str, Any] | None, key: bytes | None) -> str | None:
    if sealed is None or key is None:
        return None
    try:
        return sealing.open_sealed(Sealed.model_validate(sealed), key).decode()
    except sealing.SealBroken:
        return None
