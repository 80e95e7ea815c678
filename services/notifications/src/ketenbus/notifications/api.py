"""Notification preferences and what was sent: for social workers, the SMS provider's STOP
replies, and the client's own opt-out link."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ketenbus.contracts.events import ClientOptedOut, OptOutRoute
from ketenbus.contracts.values import Channel, Language
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.errors import DomainError
from ketenbus.kit.uow import UnitOfWork
from ketenbus.kit.web import service_dependencies
from ketenbus.notifications import opt_out_links
from ketenbus.notifications.bootstrap import NotificationDependencies
from ketenbus.notifications.contact import phone_index
from ketenbus.notifications.domain import Reminder
from ketenbus.notifications.store import NotificationTransaction

router = APIRouter(prefix="/v1", tags=["notifications"])

Reader = Annotated[Caller, Depends(requires("notifications:read"))]
Writer = Annotated[Caller, Depends(requires("notifications:write"))]
ClientPath = Annotated[str, Path(pattern=r"^cl_[0-9a-f]{32}$")]
# Replies that stop SMS, as people type them.
STOP_WORDS = frozenset({"stop", "stop alles", "stopp", "uit", "afmelden", "unsubscribe"})


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


Deps = Annotated[NotificationDependencies, Depends(service_dependencies)]


async def _uow(deps: Deps) -> UnitOfWork[NotificationTransaction]:
    return deps.uow


async def _link_key(deps: Deps) -> bytes:
    return deps.link_key


async def _phone_key(deps: Deps) -> bytes:
    return deps.phone_key


Uow = Annotated[UnitOfWork[NotificationTransaction], Depends(_uow)]
LinkKey = Annotated[bytes, Depends(_link_key)]
PhoneKey = Annotated[bytes, Depends(_phone_key)]


class ReminderOut(BaseModel):
    reminder_id: str
    purpose: str
    audience: str
    status: str
    due_at: datetime
    send_at: datetime | None
    sent_at: datetime | None
    channel: Channel | None
    attempts: int
    deferred_because: str | None
    closed_reason: str | None
    appointment_id: str | None
    enrolment_id: str | None
    confirmed: bool | None

    @classmethod
    def of(cls, reminder: Reminder) -> ReminderOut:
        return cls(
            reminder_id=reminder.id,
            purpose=reminder.purpose.value,
            audience=reminder.audience.value,
            status=reminder.status.value,
            due_at=reminder.due_at,
            send_at=reminder.send_at,
            sent_at=reminder.sent_at,
            channel=reminder.channel,
            attempts=reminder.attempts,
            deferred_because=reminder.deferred_because,
            closed_reason=reminder.closed_reason,
            appointment_id=reminder.appointment_id,
            enrolment_id=reminder.enrolment_id,
            confirmed=reminder.confirmed,
        )


class PreferencesOut(BaseModel):
    client_ref: str
    contact_known: bool
    language: Language | None
    preferred_channel: Channel | None
    opted_out: list[Channel]


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel


class InboundSms(BaseModel):
    """A reply a client sent to our SMS number, as the provider forwards it."""

    model_config = ConfigDict(extra="ignore")

    sender: str = Field(alias="from", min_length=6, max_length=20)
    body: str = Field(max_length=1600)


@router.get("/reminders", response_model=list[ReminderOut])
async def reminders_of_client(
    caller: Reader, uow: Uow, client_ref: Annotated[str, Query(pattern=r"^cl_[0-9a-f]{32}$")]
) -> list[ReminderOut]:
    """What was scheduled, sent, deferred or cancelled for a client. Never the text."""
    async with uow.reading() as tx:
        found = await tx.reminders.of_client(client_ref)
    return [ReminderOut.of(r) for r in found if r.organisation_id == caller.organisation_id]


@router.get("/clients/{client_ref}/preferences", response_model=PreferencesOut)
async def preferences(client_ref: ClientPath, caller: Reader, uow: Uow) -> PreferencesOut:
    async with uow.reading() as tx:
        contact = await _contact_at(tx, client_ref, caller.organisation_id)
        opted_out = await tx.opt_outs.of(client_ref)
    return PreferencesOut(
        client_ref=client_ref,
        contact_known=True,
        language=Language(contact["language"]),
        preferred_channel=Channel(contact["preferred_channel"]),
        opted_out=sorted(opted_out),
    )


@router.post("/clients/{client_ref}/opt-out", response_model=PreferencesOut)
async def opt_out_for_client(
    client_ref: ClientPath, body: OptOutIn, caller: Writer, uow: Uow
) -> PreferencesOut:
    """The client told their social worker: no more messages on this channel."""
    async with uow.command() as tx:
        contact = await _contact_at(tx, client_ref, caller.organisation_id)
        await opt_out(tx, client_ref, contact["organisation_id"], body.channel, OptOutRoute.WORKER)
    return await preferences(client_ref, caller, uow)


@router.post("/inbound-sms")
async def inbound_sms(body: InboundSms, caller: Writer, uow: Uow, key: PhoneKey) -> dict[str, int]:
    """The SMS provider forwards replies here; STOP ends SMS for that number."""
    if " ".join(body.body.lower().split()) not in STOP_WORDS:
        return {"opted_out": 0}
    index = phone_index(body.sender, key)
    if index is None:
        return {"opted_out": 0}
    async with uow.command() as tx:
        contacts = await tx.contacts.by_phone(caller.organisation_id, index)
        for contact in contacts:
            await opt_out(
                tx, contact["_id"], contact["organisation_id"], Channel.SMS, OptOutRoute.STOP_REPLY
            )
    return {"opted_out": len(contacts)}


@router.get("/opt-out/{token}", response_class=HTMLResponse, include_in_schema=False)
async def opt_out_page(token: str, key: LinkKey, uow: Uow) -> HTMLResponse:
    """A page with one button: a GET never changes anything (mail scanners follow links)."""
    _, channel, language = await _link(token, key, uow)
    words = _PAGE[language]
    form = f'<form method="post"><button type="submit">{words["button"][channel]}</button></form>'
    return HTMLResponse(_page(words["title"], words["ask"][channel], form))


@router.post("/opt-out/{token}", response_class=HTMLResponse, include_in_schema=False)
async def opt_out_by_link(token: str, key: LinkKey, uow: Uow) -> HTMLResponse:
    """The button, or a mail program's one-click unsubscribe (RFC 8058)."""
    client_ref, channel, language = await _link(token, key, uow)
    async with uow.command() as tx:
        contact = await tx.contacts.find(client_ref)
        if contact is not None:
            await opt_out(tx, client_ref, contact["organisation_id"], channel, OptOutRoute.LINK)
    words = _PAGE[language]
    return HTMLResponse(_page(words["title"], words["done"][channel], ""))


async def opt_out(
    tx: NotificationTransaction,
    client_ref: str,
    organisation_id: str,
    channel: Channel,
    via: OptOutRoute,
) -> None:
    """Record it once, and tell the chain (ClientOptedOut) the first time."""
    now = tx.clock.now()
    if await tx.opt_outs.add(client_ref, channel, now):
        tx.publish(
            ClientOptedOut(
                client_ref=client_ref,
                organisation_id=organisation_id,
                channel=channel,
                via=via,
                opted_out_at=now,
            )
        )


async def _contact_at(
    tx: NotificationTransaction, client_ref: str, organisation_id: str
) -> dict[str, Any]:
    contact = await tx.contacts.find(client_ref)
    if contact is None or contact["organisation_id"] != organisation_id:
        raise NotFound(f"no contact details for {client_ref} at your organisation")
    return contact


async def _link(
    token: str, key: bytes, uow: UnitOfWork[NotificationTransaction]
) -> tuple[str, Channel, Language]:
    found = opt_out_links.read_token(key, token)
    if found is None:
        raise NotFound("this link is not valid")
    client_ref, channel = found
    async with uow.reading() as tx:
        contact = await tx.contacts.find(client_ref)
    language = Language(contact["language"]) if contact else Language.NL
    return client_ref, channel, language


_PAGE: dict[Language, dict[str, Any]] = {
    Language.NL: {
        "title": "Berichten van ons",
        "ask": {
            Channel.EMAIL: "Wilt u geen e-mails meer van ons krijgen?",
            Channel.SMS: "Wilt u geen sms-berichten meer van ons krijgen?",
        },
        "button": {Channel.EMAIL: "Geen e-mail meer", Channel.SMS: "Geen sms meer"},
        "done": {
            Channel.EMAIL: "Gelukt. U krijgt geen e-mails meer van ons.",
            Channel.SMS: "Gelukt. U krijgt geen sms-berichten meer van ons.",
        },
    },
    Language.EN: {
        "title": "Messages from us",
        "ask": {
            Channel.EMAIL: "Would you like to stop getting e-mails from us?",
            Channel.SMS: "Would you like to stop getting text messages from us?",
        },
        "button": {Channel.EMAIL: "No more e-mails", Channel.SMS: "No more text messages"},
        "done": {
            Channel.EMAIL: "Done. You will not get e-mails from us any more.",
            Channel.SMS: "Done. You will not get text messages from us any more.",
        },
    },
}


def _page(title: str, text: str, form: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family:sans-serif;font-size:18px;margin:2rem">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
