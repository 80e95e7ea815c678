"""The ways a message reaches a client: e-mail over SMTP and SMS over a provider's HTTP API.

The same code talks to the loopback sinks in development and to a real relay or provider in
production. Every adapter answers with an outcome instead of raising, and says whether a
failed attempt may still have reached the provider: that is what decides whether a retry
must first look the message up (see docs/notifications.md, "Never twice").
"""

from __future__ import annotations

import email.utils
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import aiosmtplib
import httpx

from ketenbus.contracts.values import Channel
from ketenbus.notifications.domain import (
    Delivered,
    Lookup,
    Outcome,
    PermanentFailure,
    TransientFailure,
)
from ketenbus.notifications.templates import Message


@dataclass(frozen=True)
class Parcel:
    """One message on its way: where to, what, and the reference that makes it unique."""

    address: str
    message: Message
    reference: str  # the reminder id: the provider's idempotency key and the Message-ID
    sent_at: datetime
    unsubscribe_url: str | None = None
    originator: str = "Ketenbus"

    def __repr__(self) -> str:  # the address and the text stay out of logs and tracebacks
        return f"Parcel(reference={self.reference!r})"


class Adapter(Protocol):
    channel: Channel

    async def send(self, parcel: Parcel) -> Outcome: ...

    async def lookup(self, reference: str) -> tuple[Lookup, str | None]: ...

    async def close(self) -> None: ...


class Mailer:
    """SMTP with a stable Message-ID per reminder, so a repeat is recognisable as one."""

    channel = Channel.EMAIL

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        timeout: float,
        message_domain: str = "ketenbus.example",
        security: Literal["starttls", "tls", "none"] = "starttls",
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.message_domain = message_domain
        # Never "when the relay offers it": a relay (or someone in between) that leaves
        # STARTTLS out would get names, addresses and the password in the clear.
        self.security = security
        # The system's CAs, and the relay's own CA where it has one (a private relay).
        self.tls_context = ssl.create_default_context()
        if ca_file:
            self.tls_context.load_verify_locations(cafile=ca_file)
        self.username, self.password = username, password

    def message_id(self, reference: str) -> str:
        return f"<{reference}@{self.message_domain}>"

    def compose(self, parcel: Parcel) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = parcel.address
        mail["Subject"] = parcel.message.subject
        mail["Date"] = email.utils.format_datetime(parcel.sent_at)
        mail["Message-ID"] = self.message_id(parcel.reference)
        mail["Auto-Submitted"] = "auto-generated"
        if parcel.unsubscribe_url:
            # RFC 8058: mail programs show an "unsubscribe" button that POSTs to the link.
            mail["List-Unsubscribe"] = f"<{parcel.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(parcel.message.text)
        if parcel.message.html:
            mail.add_alternative(parcel.message.html, subtype="html")
        return mail

    async def send(self, parcel: Parcel) -> Outcome:
        mail = self.compose(parcel)
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self.tls_context if self.security != "none" else None,
            username=self.username,
            password=self.password,
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            return TransientFailure(f"mail relay unreachable: {type(error).__name__}")
        try:
            # Until DATA the relay has nothing it could deliver: any failure is clean.
            try:
                await smtp.mail(_address_of(self.sender))
                await smtp.rcpt(parcel.address)
            except aiosmtplib.SMTPResponseException as error:
                return _smtp_refusal(error)
            except (aiosmtplib.SMTPException, OSError) as error:
                return TransientFailure(f"mail relay failed: {type(error).__name__}")
            try:
                response = await smtp.data(mail.as_bytes())
            except aiosmtplib.SMTPResponseException as error:
                return _smtp_refusal(error)  # the relay answered: it did not take the mail
            except (aiosmtplib.SMTPException, OSError) as error:
                # Cut off after the message went out: the relay may have accepted it.
                return TransientFailure(
                    f"mail relay did not confirm: {type(error).__name__}", maybe_delivered=True
                )
            return Delivered(provider_id=response.message[:200] or None)
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def lookup(self, reference: str) -> tuple[Lookup, str | None]:
        # SMTP cannot be asked whether it took a message earlier.
        return Lookup.UNKNOWN, None

    async def close(self) -> None:
        return None


def _address_of(sender: str) -> str:
    return email.utils.parseaddr(sender)[1] or sender


def _smtp_refusal(error: aiosmtplib.SMTPResponseException) -> Outcome:
    if 500 <= error.code < 600:
        return PermanentFailure(f"the mail relay refused the message (SMTP {error.code})")
    return TransientFailure(f"the mail relay deferred the message (SMTP {error.code})")


class _HttpSms:
    """What SMS providers' HTTP APIs have in common: timeouts, status codes, retries."""

    channel = Channel.SMS

    def __init__(self, base_url: str, *, timeout: float, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": "ketenbus-notifications"},
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Outcome:
        try:
            response = await self.http.post(f"{self.base_url}{path}", json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            return TransientFailure(f"SMS provider unreachable: {type(error).__name__}")
        except httpx.WriteTimeout as error:
            return TransientFailure(f"SMS provider too slow: {type(error).__name__}")
        except httpx.HTTPError as error:
            # The request went out but no answer came back: it may have been accepted.
            return TransientFailure(
                f"SMS provider did not confirm: {type(error).__name__}", maybe_delivered=True
            )
        return _classify(response)


def _classify(response: httpx.Response) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        provider_id = answer.get("id") if isinstance(answer, dict) else None
        return Delivered(provider_id=str(provider_id) if provider_id else None)
    if status in (408, 425, 429) or status >= 500:
        return TransientFailure(f"the SMS provider is failing (HTTP {status})")
    return PermanentFailure(f"the SMS provider refused the message (HTTP {status})")


class JsonSms(_HttpSms):
    """A generic JSON SMS API (and the devstack's SMS sink):

    POST {base}/messages  {"to": "+316...", "from": "...", "body": "...", "reference": "rem_..."}
         Idempotency-Key: rem_...      -> 2xx {"id": "..."}; a repeat of a key is not sent again
    GET  {base}/messages?reference=rem_...  -> {"messages": [{"id": ..., ...}]}
    """

    async def send(self, parcel: Parcel) -> Outcome:
        headers = {"Idempotency-Key": parcel.reference}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = {
            "to": parcel.address,
            "from": parcel.originator,
            "body": parcel.message.text,
            "reference": parcel.reference,
        }
        return await self._post("/messages", body, headers)

    async def lookup(self, reference: str) -> tuple[Lookup, str | None]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.get(
                f"{self.base_url}/messages", params={"reference": reference}, headers=headers
            )
        except httpx.HTTPError:
            return Lookup.UNKNOWN, None
        if response.status_code == 404:
            return Lookup.NOT_FOUND, None
        if response.status_code != 200:
            return Lookup.UNKNOWN, None
        found = response.json().get("messages") or []
        if not found:
            return Lookup.NOT_FOUND, None
        return Lookup.FOUND, str(found[0].get("id") or "") or None


class MessageBirdSms(_HttpSms):
    """Bird's (MessageBird's) REST API for SMS: POST /messages with an AccessKey.

    It takes our reference along (it comes back in delivery reports) but cannot be asked for
    a message by it, so an attempt that may have arrived counts as sent, never resent.
    """

    async def send(self, parcel: Parcel) -> Outcome:
        headers = {"Authorization": f"AccessKey {self.token or ''}"}
        body = {
            "originator": parcel.originator,
            "recipients": [parcel.address.lstrip("+")],
            "body": parcel.message.text,
            "reference": parcel.reference,
            "datacoding": "auto",
        }
        return await self._post("/messages", body, headers)

    async def lookup(self, reference: str) -> tuple[Lookup, str | None]:
        return Lookup.UNKNOWN, None


def sms_adapter(kind: str, base_url: str, *, timeout: float, token: str | None) -> _HttpSms:
    adapters: dict[str, type[_HttpSms]] = {"json": JsonSms, "messagebird": MessageBirdSms}
    if kind not in adapters:
        raise ValueError(f"unknown SMS provider kind {kind!r}; known: {sorted(adapters)}")
    return adapters[kind](base_url, timeout=timeout, token=token)
