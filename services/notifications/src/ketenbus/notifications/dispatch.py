"""Sends reminders when they fall due. The store, not a timer, is the source of truth."""

from __future__ import annotations

import asyncio
import json

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel, Sealed
from ketenbus.kit.failures import TransientError
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications.channels import Mailer, PermanentDeliveryFailure
from ketenbus.notifications.domain import Reminder
from ketenbus.notifications.store import NotificationTransaction
from ketenbus.notifications.templates import render

log = get_logger(__name__)


async def dispatch_reminders(runtime: Runtime) -> None:
    uow: UnitOfWork[NotificationTransaction] = runtime.uow
    mailer: Mailer = runtime.dependencies["mailer"]
    contact_key: bytes = runtime.dependencies["contact_key"]
    poll = runtime.dependencies["dispatch_poll_seconds"]
    while True:
        async with uow.reading() as tx:
            due = await tx.reminders.due(runtime.clock.now())
        for reminder in due:
            await deliver(reminder, uow, mailer, contact_key)
        if not due:
            await asyncio.sleep(poll)


async def deliver(
    reminder: Reminder,
    uow: UnitOfWork[NotificationTransaction],
    mailer: Mailer,
    contact_key: bytes,
) -> None:
    async with uow.reading() as tx:
        contact = await tx.contacts.find(reminder.client_ref)
    card = _open(contact, contact_key) if contact else None
    if card is None or not card.get("email"):
        await _record(uow, reminder, failure="no way to reach the client by e-mail")
        return
    message = render(reminder.purpose, reminder.language, name=card["name"])
    try:
        await mailer.send(card["email"], message, message_id=reminder.id)
    except PermanentDeliveryFailure as error:
        await _record(uow, reminder, failure=str(error))
        return
    except TransientError:
        log.warning("mail relay unavailable; the reminder stays due", reminder_id=reminder.id)
        return
    await _record(uow, reminder)


def _open(contact: dict, key: bytes) -> dict | None:
    try:
        sealed = Sealed.model_validate(contact["sealed"])
        return json.loads(sealing.open_sealed(sealed, key))
    except sealing.SealBroken:
        return None  # the client's key was shredded: they asked to be forgotten


async def _record(
    uow: UnitOfWork[NotificationTransaction], reminder: Reminder, failure: str | None = None
) -> None:
    async with uow.command() as tx:
        current = await tx.reminders.get(reminder.id)
        if current is None:
            return
        if failure is None:
            current.sent(Channel.EMAIL, at=tx.clock.now())
        else:
            current.failed(failure, at=tx.clock.now())
        await tx.reminders.save(current)
