"""The social worker's actions on a trajectory. Each is one command: one transaction, alone
or with the actions that arrive at the same moment (ketenbus.trajectory.desk).

Every call is made with a worker's key: the organisation sees only its own trajectories, and
every action is attributed to the worker whose key it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ketenbus.contracts import sealing
from ketenbus.contracts.values import (
    AppointmentKind,
    ClosureReason,
    ContactChannel,
    ContactDirection,
    Language,
    Modality,
    Phase,
)
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.errors import DomainError
from ketenbus.kit.uow import UnitOfWork
from ketenbus.kit.web import service_dependencies
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.desk import own
from ketenbus.trajectory.domain import (
    Appointment,
    Contact,
    Homework,
    NoConsent,
    PartnerReferral,
    Trajectory,
)
from ketenbus.trajectory.store import TrajectoryTransaction

router = APIRouter(prefix="/v1/trajectories", tags=["trajectories"])

Worker = Annotated[Caller, Depends(requires("trajectories:write"))]
Reader = Annotated[Caller, Depends(requires("trajectories:read"))]
TrajectoryPath = Annotated[str, Path(pattern=r"^trj_[0-9a-f]{32}$")]
AppointmentPath = Annotated[str, Path(pattern=r"^apt_[0-9a-f]{32}$")]
SubmissionPath = Annotated[str, Path(pattern=r"^hws_[0-9a-f]{32}$")]


Deps = Annotated[TrajectoryDependencies, Depends(service_dependencies)]


async def _uow(deps: Deps) -> UnitOfWork[TrajectoryTransaction]:
    # A coroutine: FastAPI would run a plain function in its thread pool, on every request.
    return deps.uow


Uow = Annotated[UnitOfWork[TrajectoryTransaction], Depends(_uow)]


# ---------------------------------------------------------------------- what the worker sees


class AppointmentOut(BaseModel):
    appointment_id: str
    kind: AppointmentKind
    starts_at: datetime
    duration_minutes: int
    modality: Modality
    worker_id: str
    goal: str | None
    status: str
    registration_overdue: bool

    @classmethod
    def of(cls, a: Appointment) -> AppointmentOut:
        return cls(
            appointment_id=a.id,
            kind=a.kind,
            starts_at=a.starts_at,
            duration_minutes=a.duration_minutes,
            modality=a.modality,
            worker_id=a.worker_id,
            goal=a.goal,
            status=a.status.value,
            registration_overdue=a.overdue_reported_at is not None,
        )


class ContactOut(BaseModel):
    contact_id: str
    channel: ContactChannel
    direction: ContactDirection
    minutes: int
    default_duration: bool
    online_dossier: bool
    replaces_face_to_face: bool
    occurred_at: datetime

    @classmethod
    def of(cls, c: Contact) -> ContactOut:
        return cls(
            contact_id=c.id,
            channel=c.channel,
            direction=c.direction,
            minutes=c.minutes,
            default_duration=c.default_duration,
            online_dossier=c.online_dossier,
            replaces_face_to_face=c.replaces_face_to_face,
            occurred_at=c.occurred_at,
        )


class ModuleOut(BaseModel):
    enrolment_id: str
    module_id: str
    completed: bool


class HomeworkOut(BaseModel):
    submission_id: str
    enrolment_id: str
    module_id: str
    step_id: str
    submitted_at: datetime
    feedback_given_at: datetime | None

    @classmethod
    def of(cls, h: Homework) -> HomeworkOut:
        return cls(
            submission_id=h.submission_id,
            enrolment_id=h.enrolment_id,
            module_id=h.module_id,
            step_id=h.step_id,
            submitted_at=h.submitted_at,
            feedback_given_at=h.feedback_given_at,
        )


class PartnerReferralOut(BaseModel):
    partner_referral_id: str
    partner_organisation_id: str
    status: str
    progress: str | None
    reason: str | None
    requested_at: datetime

    @classmethod
    def of(cls, p: PartnerReferral) -> PartnerReferralOut:
        return cls(
            partner_referral_id=p.id,
            partner_organisation_id=p.partner_organisation_id,
            status=p.status.value,
            progress=p.progress,
            reason=p.reason,
            requested_at=p.requested_at,
        )


class TrajectoryOut(BaseModel):
    trajectory_id: str
    client_ref: str
    referral_id: str
    organisation_id: str
    crisis: bool
    phase: Phase
    debt_journey_phase: int | None
    opened_at: datetime
    first_contact_at: datetime | None
    appointments: list[AppointmentOut]
    contacts: list[ContactOut]
    modules: list[ModuleOut]
    homework: list[HomeworkOut]
    partner_referrals: list[PartnerReferralOut]
    aftercare_suggested: bool
    aftercare_started_at: datetime | None
    closed_at: datetime | None
    closure_reason: ClosureReason | None

    @classmethod
    def of(cls, trajectory: Trajectory) -> TrajectoryOut:
        return cls(
            trajectory_id=trajectory.id,
            client_ref=trajectory.client_ref,
            referral_id=trajectory.referral_id,
            organisation_id=trajectory.organisation_id,
            crisis=trajectory.crisis,
            phase=trajectory.phase,
            debt_journey_phase=trajectory.debt_journey_phase,
            opened_at=trajectory.opened_at,
            first_contact_at=trajectory.first_contact_at,
            appointments=[AppointmentOut.of(a) for a in trajectory.appointments],
            contacts=[ContactOut.of(c) for c in trajectory.contacts],
            modules=[
                ModuleOut(
                    enrolment_id=m.enrolment_id,
                    module_id=m.module_id,
                    completed=m.completed_at is not None,
                )
                for m in trajectory.modules
            ],
            homework=[HomeworkOut.of(h) for h in trajectory.homework],
            partner_referrals=[PartnerReferralOut.of(p) for p in trajectory.partner_referrals],
            aftercare_suggested=trajectory.aftercare_suggested,
            aftercare_started_at=trajectory.aftercare_started_at,
            closed_at=trajectory.closed_at,
            closure_reason=trajectory.closure_reason,
        )


# ---------------------------------------------------------------------- what the worker sends


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppointmentIn(_Command):
    kind: AppointmentKind = AppointmentKind.FOLLOW_UP
    starts_at: AwareDatetime
    duration_minutes: int = Field(default=45, ge=5, le=480)
    modality: Modality = Modality.FACE_TO_FACE
    goal: str | None = Field(default=None, max_length=500, description="Stays in trajectory.")


class RescheduleIn(_Command):
    starts_at: AwareDatetime
    modality: Modality | None = Field(default=None, description="Unchanged when left out.")


class ContactIn(_Command):
    channel: ContactChannel
    direction: ContactDirection = ContactDirection.BOTH
    minutes: int = Field(ge=0, le=24 * 60)
    default_duration: bool = Field(
        default=False, description="The minutes are the registered default, not measured."
    )
    online_dossier: bool = Field(default=False, description="Through the online dossier.")
    replaces_face_to_face: bool = Field(
        default=False, description="Instead of a face-to-face contact, not on top of one."
    )
    occurred_at: AwareDatetime


class ModuleIn(_Command):
    module_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    language: Language = Language.NL


class PhaseIn(_Command):
    phase: Phase
    debt_journey_phase: int | None = Field(
        default=None, ge=1, le=5, description="Klantreis schulden 1-5: internal, never shown."
    )


class PartnerReferralIn(_Command):
    partner_organisation_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")


class ClosureIn(_Command):
    reason: ClosureReason


class FeedbackIn(_Command):
    text: str = Field(min_length=1, max_length=4000, description="Reaches the client sealed.")


def _whole(trajectory: Trajectory, _: object) -> TrajectoryOut:
    """The answer of an action that answers with the whole trajectory."""
    return TrajectoryOut.of(trajectory)


def _worker(caller: Caller) -> str:
    if caller.worker_id is None:
        raise DomainError("this key belongs to no social worker; use a worker's key")
    return caller.worker_id


# ---------------------------------------------------------------------- routes


@router.get("", response_model=list[TrajectoryOut])
async def find_trajectories(
    caller: Reader,
    uow: Uow,
    referral_id: Annotated[str | None, Query(pattern=r"^ref_[0-9a-f]{32}$")] = None,
    client_ref: Annotated[str | None, Query(pattern=r"^cl_[0-9a-f]{32}$")] = None,
) -> list[TrajectoryOut]:
    criteria = {
        k: v for k, v in {"referral_id": referral_id, "client_ref": client_ref}.items() if v
    }
    async with uow.reading() as tx:
        found = await tx.trajectories.find(caller.organisation_id, **criteria)
    return [TrajectoryOut.of(t) for t in found]


@router.get("/{trajectory_id}", response_model=TrajectoryOut)
async def get_trajectory(trajectory_id: TrajectoryPath, caller: Reader, uow: Uow) -> TrajectoryOut:
    async with uow.reading() as tx:
        return TrajectoryOut.of(await own(tx, trajectory_id, caller))


@router.post(
    "/{trajectory_id}/appointments",
    status_code=status.HTTP_201_CREATED,
    response_model=AppointmentOut,
)
async def schedule_appointment(
    trajectory_id: TrajectoryPath, body: AppointmentIn, caller: Worker, deps: Deps
) -> AppointmentOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.schedule(
            kind=body.kind,
            starts_at=body.starts_at,
            duration_minutes=body.duration_minutes,
            modality=body.modality,
            worker_id=_worker(caller),
            goal=body.goal,
            at=tx.clock.now(),
        ),
        answer=lambda _, appointment: AppointmentOut.of(appointment),
    )


@router.post(
    "/{trajectory_id}/appointments/{appointment_id}/reschedule", response_model=AppointmentOut
)
async def reschedule_appointment(
    trajectory_id: TrajectoryPath,
    appointment_id: AppointmentPath,
    body: RescheduleIn,
    caller: Worker,
    deps: Deps,
) -> AppointmentOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.reschedule(
            appointment_id, body.starts_at, body.modality, at=tx.clock.now()
        ),
        answer=lambda _, appointment: AppointmentOut.of(appointment),
    )


@router.post("/{trajectory_id}/appointments/{appointment_id}/cancel", response_model=TrajectoryOut)
async def cancel_appointment(
    trajectory_id: TrajectoryPath, appointment_id: AppointmentPath, caller: Worker, deps: Deps
) -> TrajectoryOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.cancel(appointment_id, at=tx.clock.now()),
        answer=_whole,
    )


@router.post(
    "/{trajectory_id}/appointments/{appointment_id}/attended", response_model=TrajectoryOut
)
async def register_attended(
    trajectory_id: TrajectoryPath, appointment_id: AppointmentPath, caller: Worker, deps: Deps
) -> TrajectoryOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.attend(appointment_id, at=tx.clock.now()),
        answer=_whole,
    )


@router.post("/{trajectory_id}/appointments/{appointment_id}/missed", response_model=TrajectoryOut)
async def register_missed(
    trajectory_id: TrajectoryPath, appointment_id: AppointmentPath, caller: Worker, deps: Deps
) -> TrajectoryOut:
    """The client did not come. Notifications will reach out; nothing is closed."""
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.miss(
            appointment_id, registered_by=_worker(caller), at=tx.clock.now()
        ),
        answer=_whole,
    )


@router.post(
    "/{trajectory_id}/contacts", status_code=status.HTTP_201_CREATED, response_model=ContactOut
)
async def register_contact(
    trajectory_id: TrajectoryPath, body: ContactIn, caller: Worker, deps: Deps
) -> ContactOut:
    """A contact outside an appointment: a call, a chat, a dossier message, homework."""
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.register_contact(
            channel=body.channel,
            direction=body.direction,
            minutes=body.minutes,
            default_duration=body.default_duration,
            online_dossier=body.online_dossier,
            replaces_face_to_face=body.replaces_face_to_face,
            occurred_at=body.occurred_at,
            worker_id=_worker(caller),
        ),
        answer=lambda _, contact: ContactOut.of(contact),
    )


@router.post(
    "/{trajectory_id}/modules", status_code=status.HTTP_201_CREATED, response_model=ModuleOut
)
async def assign_module(
    trajectory_id: TrajectoryPath, body: ModuleIn, caller: Worker, deps: Deps
) -> ModuleOut:
    """Give the client a self-help module as homework; learning enrols them."""
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.assign_module(
            body.module_id, body.language, at=tx.clock.now()
        ),
        answer=lambda _, assignment: ModuleOut(
            enrolment_id=assignment.enrolment_id, module_id=assignment.module_id, completed=False
        ),
    )


@router.post("/{trajectory_id}/phase", response_model=TrajectoryOut)
async def change_phase(
    trajectory_id: TrajectoryPath, body: PhaseIn, caller: Worker, deps: Deps
) -> TrajectoryOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.change_phase(
            body.phase, body.debt_journey_phase, at=tx.clock.now()
        ),
        answer=_whole,
    )


@router.post(
    "/{trajectory_id}/partner-referrals",
    status_code=status.HTTP_201_CREATED,
    response_model=PartnerReferralOut,
)
async def request_partner_referral(
    trajectory_id: TrajectoryPath, body: PartnerReferralIn, caller: Worker, deps: Deps
) -> PartnerReferralOut:
    """Hand the debts to a debt-counselling partner; the trajectory goes on alongside.

    Needs the client's consent for debt counselling with that partner, recorded at intake
    (`POST /v1/clients/{client_ref}/consents` there)."""

    async def hand_off(trajectory: Trajectory, tx: TrajectoryTransaction) -> PartnerReferral:
        partner = body.partner_organisation_id
        consent = await tx.consents.for_hand_off(trajectory.client_ref, partner)
        if consent is None:
            raise NoConsent(
                f"the client has not consented to debt counselling with {partner}, or withdrew "
                "it, or trajectory has not heard of it yet (record it at intake; intake must "
                f"share a key with {partner} to seal the contact for it)"
            )
        return trajectory.request_partner_referral(consent, at=tx.clock.now())

    return await deps.desk.change(
        trajectory_id,
        caller,
        hand_off,
        answer=lambda _, requested: PartnerReferralOut.of(requested),
    )


@router.post("/{trajectory_id}/aftercare", response_model=TrajectoryOut)
async def start_aftercare(
    trajectory_id: TrajectoryPath, caller: Worker, deps: Deps
) -> TrajectoryOut:
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.start_aftercare(at=tx.clock.now()),
        answer=_whole,
    )


@router.post("/{trajectory_id}/closure", response_model=TrajectoryOut)
async def close_trajectory(
    trajectory_id: TrajectoryPath, body: ClosureIn, caller: Worker, deps: Deps
) -> TrajectoryOut:
    """Close with a reason. The referrer hears "closed", nothing more."""
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.close(body.reason, at=tx.clock.now()),
        answer=_whole,
    )


@router.get("/{trajectory_id}/homework", response_model=list[HomeworkOut])
async def list_homework(
    trajectory_id: TrajectoryPath, caller: Reader, uow: Uow
) -> list[HomeworkOut]:
    """Homework the client handed in; the answers themselves are read in learning."""
    async with uow.reading() as tx:
        trajectory = await own(tx, trajectory_id, caller)
    return [HomeworkOut.of(h) for h in trajectory.homework]


@router.post("/{trajectory_id}/homework/{submission_id}/feedback", response_model=HomeworkOut)
async def give_feedback(
    trajectory_id: TrajectoryPath,
    submission_id: SubmissionPath,
    body: FeedbackIn,
    caller: Worker,
    deps: Deps,
) -> HomeworkOut:
    if deps.feedback_key is None:
        raise DomainError("no key is shared with learning (FEEDBACK_SHARING_KEY): cannot send")
    # A fresh data key per message: the text is readable only with the key learning shares.
    sealed = sealing.seal(
        body.text.encode(),
        data_key=sealing.new_key(),
        key_id=submission_id,
        recipient_key=deps.feedback_key,
    )
    return await deps.desk.change(
        trajectory_id,
        caller,
        lambda trajectory, tx: trajectory.give_feedback(
            submission_id, sealed, _worker(caller), at=tx.clock.now()
        ),
        answer=lambda trajectory, _: HomeworkOut.of(
            next(h for h in trajectory.homework if h.submission_id == submission_id)
        ),
    )
