"""What learning does when other services' events arrive."""

from __future__ import annotations

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import ModuleAssigned
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning.domain import Enrolment
from ketenbus.learning.store import LearningTransaction

handlers = EventHandlers("learning")


@handlers.on(ModuleAssigned)
async def enrol(event: Envelope[ModuleAssigned], uow: UnitOfWork[LearningTransaction]) -> None:
    async with uow.handling(event) as tx:
        assigned = event.data
        await tx.enrolments.add(
            Enrolment(
                id=assigned.enrolment_id,
                client_ref=assigned.client_ref,
                organisation_id=assigned.organisation_id,
                module_id=assigned.module_id,
                enrolled_at=assigned.assigned_at,
            )
        )
