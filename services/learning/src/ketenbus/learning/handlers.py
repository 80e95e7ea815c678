"""What learning does when other services' events arrive."""

from __future__ import annotations

from typing import TypeAlias

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import (
    ClientErasureRequested,
    ClientWaitlisted,
    HomeworkFeedbackGiven,
    ModuleAssigned,
    WaitlistExited,
)
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.errors import DomainError
from ketenbus.kit.uow import EventUnitOfWork
from ketenbus.learning.catalogue import Catalogue
from ketenbus.learning.domain import Enrolment
from ketenbus.learning.store import LearningTransaction

handlers = EventHandlers("learning")

Uow: TypeAlias = EventUnitOfWork[LearningTransaction]


@handlers.on(ModuleAssigned)
async def enrol(event: Envelope[ModuleAssigned], uow: Uow, catalogue: Catalogue) -> None:
    assigned = event.data
    module = catalogue.module(assigned.module_id)
    if module is None:
        # Dead-lettered with this reason: the worker chose a module we do not offer.
        raise DomainError(f"no module {assigned.module_id} in the catalogue")
    async with uow.handling(event) as tx:
        await tx.enrolments.add(
            Enrolment.assign(
                enrolment_id=assigned.enrolment_id,
                client_ref=assigned.client_ref,
                organisation_id=assigned.organisation_id,
                module=module,
                language=assigned.language,
                trajectory_id=assigned.trajectory_id,
                at=assigned.assigned_at,
            )
        )


@handlers.on(HomeworkFeedbackGiven)
async def keep_feedback(event: Envelope[HomeworkFeedbackGiven], uow: Uow) -> None:
    """Kept sealed; the portal opens it when the client reads it."""
    given = event.data
    async with uow.handling(event) as tx:
        enrolment = await tx.enrolments.get(given.enrolment_id)
        if enrolment is None:
            return  # the client was forgotten in the meantime
        enrolment.give_feedback(given.submission_id, given.feedback.model_dump(), given.given_at)
        await tx.enrolments.save(enrolment)


@handlers.on(ClientWaitlisted)
async def note_waiting(event: Envelope[ClientWaitlisted], uow: Uow) -> None:
    waiting = event.data
    async with uow.handling(event) as tx:
        await tx.waiting_list.add(
            waiting.client_ref, waiting.organisation_id, waiting.waitlisted_at
        )


@handlers.on(WaitlistExited)
async def note_no_longer_waiting(event: Envelope[WaitlistExited], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        await tx.waiting_list.remove(event.data.client_ref)


@handlers.on(ClientErasureRequested)
async def forget_client(event: Envelope[ClientErasureRequested], uow: Uow) -> None:
    """Enrolments, homework answers, feedback and scores: all of it goes."""
    async with uow.handling(event) as tx:
        await tx.enrolments.forget(event.data.client_ref)
        await tx.portal_tokens.forget(event.data.client_ref)
        await tx.client_keys.forget(event.data.client_ref)
        await tx.waiting_list.remove(event.data.client_ref)
