"""The social worker's actions on a trajectory. Each is one command, one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ketenbus.contracts.values import AppointmentKind, Language, Modality, Phase
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.failures import DomainError
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory.domain import NotFound, Trajectory
from ketenbus.trajectory.store import TrajectoryTransaction

router = APIRouter(prefix="/v1/trajectories", tags=["trajectories"])

Worker = Annotated[Caller, Depends(requires("trajectories:write"))]
Reader = Annotated[Caller, Depends(requires("trajectories:read"))]
TrajectoryPath = Annotated[str, Path(pattern=r"^trj_[0-9a-f]{32}$")]
AppointmentPath = Annotated[str, Path(pattern=r"^apt_[0-9a-f]{32}$")]


def _uow(request: Request) -> UnitOfWork[TrajectoryTransaction]:
    return request.app.state.runtime.uow


Uow = Annotated[UnitOfWork[TrajectoryTransaction], Depends(_uow)]


class AppointmentOut(BaseModel):
    appointment_id: str
    kind: AppointmentKind
    starts_at: datetime
    modality: Modality
    status: str


class ModuleOut(BaseModel):
    enrolment_id: str
    module_id: str
    completed: bool


class TrajectoryOut(BaseModel):
    trajectory_id: str
    client_ref: str
    referral_id: str
    organisation_id: str
    phase: Phase
    opened_at: datetime
    appointments: list[AppointmentOut]
    modules: list[ModuleOut]

    @classmethod
    def of(cls, trajectory: Trajectory) -> TrajectoryOut:
        return cls(
            trajectory_id=trajectory.id,
            client_ref=trajectory.client_ref,
            referral_id=trajectory.referral_id,
            organisation_id=trajectory.organisation_id,
            phase=trajectory.phase,
            opened_at=trajectory.opened_at,
            appointments=[
                AppointmentOut(
                    appointment_id=a.id,
                    kind=a.kind,
                    starts_at=a.starts_at,
                    modality=a.modality,
                    status=a.status.value,
                )
                for a in trajectory.appointments
            ],
            modules=[
                ModuleOut(
                    enrolment_id=m.enrolment_id,
                    module_id=m.module_id,
                    completed=m.completed_at is not None,
                )
                for m in trajectory.modules
            ],
        )


class AppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AppointmentKind = AppointmentKind.FOLLOW_UP
    starts_at: AwareDatetime
    duration_minutes: int = Field(default=45, ge=5, le=480)
    modality: Modality = Modality.FACE_TO_FACE
    goal: str | None = Field(default=None, max_length=500, description="Stays in trajectory.")


class ModuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    module_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    language: Language = Language.NL


async def _own(tx: TrajectoryTransaction, trajectory_id: str, caller: Caller) -> Trajectory:
    trajectory = await tx.trajectories.get(trajectory_id)
    # Another organisation's trajectory does not exist, as far as this caller can tell.
    if trajectory is None or trajectory.organisation_id != caller.organisation_id:
        raise NotFound(f"no trajectory {trajectory_id} at your organisation")
    return trajectory


def _worker(caller: Caller) -> str:
    if caller.worker_id is None:
        raise DomainError("this key belongs to no social worker; use a worker's key")
    return caller.worker_id


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
        return TrajectoryOut.of(await _own(tx, trajectory_id, caller))


@router.post(
    "/{trajectory_id}/appointments",
    status_code=status.HTTP_201_CREATED,
    response_model=AppointmentOut,
)
async def schedule_appointment(
    trajectory_id: TrajectoryPath, body: AppointmentIn, caller: Worker, uow: Uow
) -> AppointmentOut:
    async with uow.command() as tx:
        trajectory = await _own(tx, trajectory_id, caller)
        appointment = trajectory.schedule(
            kind=body.kind,
            starts_at=body.starts_at,
            duration_minutes=body.duration_minutes,
            modality=body.modality,
            worker_id=_worker(caller),
            goal=body.goal,
            at=tx.clock.now(),
        )
        await tx.trajectories.save(trajectory)
    return AppointmentOut(
        appointment_id=appointment.id,
        kind=appointment.kind,
        starts_at=appointment.starts_at,
        modality=appointment.modality,
        status=appointment.status.value,
    )


@router.post(
    "/{trajectory_id}/appointments/{appointment_id}/attended", response_model=TrajectoryOut
)
async def register_attended(
    trajectory_id: TrajectoryPath, appointment_id: AppointmentPath, caller: Worker, uow: Uow
) -> TrajectoryOut:
    async with uow.command() as tx:
        trajectory = await _own(tx, trajectory_id, caller)
        trajectory.attend(appointment_id, at=tx.clock.now())
        await tx.trajectories.save(trajectory)
    return TrajectoryOut.of(trajectory)


@router.post("/{trajectory_id}/appointments/{appointment_id}/missed", response_model=TrajectoryOut)
async def register_missed(
    trajectory_id: TrajectoryPath, appointment_id: AppointmentPath, caller: Worker, uow: Uow
) -> TrajectoryOut:
    """The client did not come. Notifications will reach out; nothing is closed."""
    async with uow.command() as tx:
        trajectory = await _own(tx, trajectory_id, caller)
        trajectory.miss(appointment_id, registered_by=_worker(caller), at=tx.clock.now())
        await tx.trajectories.save(trajectory)
    return TrajectoryOut.of(trajectory)


@router.post(
    "/{trajectory_id}/modules", status_code=status.HTTP_201_CREATED, response_model=ModuleOut
)
async def assign_module(
    trajectory_id: TrajectoryPath, body: ModuleIn, caller: Worker, uow: Uow
) -> ModuleOut:
    """Give the client a self-help module as homework; learning enrols them."""
    async with uow.command() as tx:
        trajectory = await _own(tx, trajectory_id, caller)
        assignment = trajectory.assign_module(body.module_id, body.language, at=tx.clock.now())
        await tx.trajectories.save(trajectory)
    return ModuleOut(
        enrolment_id=assignment.enrolment_id, module_id=assignment.module_id, completed=False
    )
