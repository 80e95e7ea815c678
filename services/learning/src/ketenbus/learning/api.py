"""The client portal's side of learning: see a module, work through it, finish it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.failures import DomainError
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning.domain import Enrolment, EnrolmentStatus
from ketenbus.learning.store import LearningTransaction

router = APIRouter(prefix="/v1/enrolments", tags=["enrolments"])

Portal = Annotated[Caller, Depends(requires("enrolments:write"))]
EnrolmentPath = Annotated[str, Path(pattern=r"^enr_[0-9a-f]{32}$")]


class NotFound(DomainError):
    status_code = 404


def _uow(request: Request) -> UnitOfWork[LearningTransaction]:
    return request.app.state.runtime.uow


Uow = Annotated[UnitOfWork[LearningTransaction], Depends(_uow)]


class EnrolmentOut(BaseModel):
    enrolment_id: str
    client_ref: str
    module_id: str
    status: EnrolmentStatus
    enrolled_at: datetime

    @classmethod
    def of(cls, enrolment: Enrolment) -> EnrolmentOut:
        return cls(
            enrolment_id=enrolment.id,
            client_ref=enrolment.client_ref,
            module_id=enrolment.module_id,
            status=enrolment.status,
            enrolled_at=enrolment.enrolled_at,
        )


async def _own(tx: LearningTransaction, enrolment_id: str, caller: Caller) -> Enrolment:
    enrolment = await tx.enrolments.get(enrolment_id)
    if enrolment is None or enrolment.organisation_id != caller.organisation_id:
        raise NotFound(f"no enrolment {enrolment_id} at your organisation")
    return enrolment


@router.get("", response_model=list[EnrolmentOut])
async def client_enrolments(
    caller: Portal, uow: Uow, client_ref: Annotated[str, Query(pattern=r"^cl_[0-9a-f]{32}$")]
) -> list[EnrolmentOut]:
    async with uow.reading() as tx:
        return [
            EnrolmentOut.of(e)
            for e in await tx.enrolments.of_client(caller.organisation_id, client_ref)
        ]


@router.post("/{enrolment_id}/start", response_model=EnrolmentOut)
async def start_module(enrolment_id: EnrolmentPath, caller: Portal, uow: Uow) -> EnrolmentOut:
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        enrolment.start(tx.clock.now())
        await tx.enrolments.save(enrolment)
    return EnrolmentOut.of(enrolment)


@router.post("/{enrolment_id}/complete", response_model=EnrolmentOut)
async def complete_module(enrolment_id: EnrolmentPath, caller: Portal, uow: Uow) -> EnrolmentOut:
    async with uow.command() as tx:
        enrolment = await _own(tx, enrolment_id, caller)
        enrolment.complete(tx.clock.now())
        await tx.enrolments.save(enrolment)
    return EnrolmentOut.of(enrolment)
