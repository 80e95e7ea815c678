"""A local mail server: accepts every message over SMTP on loopback and keeps it as a .eml file.

The notifications service's real SMTP adapter talks to it unchanged; tests and developers read
what was "sent" from the mailbox directory. Run it with
`python -m ketenbus.devstack.mail_sink --host 127.0.0.1 --port P --dir D`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.parser
import email.policy
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from ketenbus.devstack import ports
from ketenbus.devstack.processes import PendingStart, RunningProcess

_SUFFIX = ".eml"


class Mailbox:
    """Stores each message in its own file, named so that name order is arrival order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._last_ns = 0
        self._sequence = itertools.count()

    def store(self, mail_from: str, rcpt_tos: Sequence[str], content: bytes) -> Path:
        # Strictly increasing even if the wall clock steps back or two mails share a nanosecond.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        name = f"{self._last_ns:020d}-{os.getpid()}-{next(self._sequence):06d}{_SUFFIX}"
        # Envelope recipients are not all in the headers (Bcc); keep them as an MTA would.
        trace = (f"Return-Path: <{mail_from}>\r\nX-Original-To: {', '.join(rcpt_tos)}\r\n").encode()
        final = self.directory / name
        # Write to a hidden temporary name, then rename: a reader never sees half a message.
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as out:
            out.write(trace + content)
        temporary.replace(final)
        return final


class MailboxHandler:
    """aiosmtpd handler: every message is accepted and stored."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.mailbox.store(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        return "250 Message accepted for delivery"


class ReceivedMail(EmailMessage):
    """A stored message. For a mail with a plain-text and an HTML version, get_content()
    gives the plain text, as a text-only mail reader shows it (EmailMessage itself raises
    KeyError for multipart/alternative)."""

    def get_content(self, *args: Any, **kwargs: Any) -> Any:
        if self.get_content_type() == "multipart/alternative":
            plain = self.get_body(preferencelist=("plain",))
            if plain is not None:
                return plain.get_content(*args, **kwargs)
        return super().get_content(*args, **kwargs)


_READING = email.policy.default.clone(message_factory=ReceivedMail)


def read_mailbox(directory: Path | str) -> list[EmailMessage]:
    """Every message received so far, oldest first, parsed with email.policy.default
    (as ReceivedMail, an EmailMessage)."""
    directory = Path(directory)
    if not directory.exists():
        return []
    files = sorted(
        path
        for path in directory.iterdir()
        if path.suffix == _SUFFIX and not path.name.startswith(".")  # not a temporary file
    )
    messages: list[EmailMessage] = []
    for path in files:
        with path.open("rb") as raw:
            parsed = email.message_from_binary_file(raw, policy=_READING)
        messages.append(parsed)  # type: ignore[arg-type]  # policy.default gives EmailMessage
    return messages


class LatestHeaders:
    """`header` of the newest mail to each address that has it, read from a mailbox as it
    grows: each mail is parsed once (a demo year's mailbox holds tens of thousands, and reading
    it all at every question took a quarter of the demo's CPU). Safe to ask from threads."""

    def __init__(self, directory: Path | str, header: str) -> None:
        self.directory = Path(directory)
        self.header = header
        self._read: set[str] = set()
        self._latest: dict[str, str] = {}
        self._lock = threading.Lock()

    def of(self, address: str) -> str | None:
        with self._lock:
            self._read_new()
            return self._latest.get(address)

    def _read_new(self) -> None:
        if not self.directory.exists():
            return
        parser = email.parser.BytesHeaderParser(policy=_READING)
        new = sorted(
            name
            for name in os.listdir(self.directory)
            if name.endswith(_SUFFIX) and not name.startswith(".") and name not in self._read
        )
        for name in new:  # oldest first: a newer mail's header replaces an older one's
            with (self.directory / name).open("rb") as raw:
                headers = parser.parse(raw)
            self._read.add(name)
            value, to = headers[self.header], headers["To"]
            if value and to is not None:
                for address in to.addresses:
                    self._latest[address.addr_spec] = str(value)


async def serve(host: str, port: int, directory: Path) -> None:
    """Run the SMTP server until SIGTERM or SIGINT."""
    handler = MailboxHandler(Mailbox(directory))
    loop = asyncio.get_running_loop()

    def smtp() -> SMTP:
        # A fixed hostname: the default does a (possibly slow) FQDN lookup on every start.
        return SMTP(handler, hostname="ketenbus-mail-sink", enable_SMTPUTF8=True)

    server = await loop.create_server(smtp, host, port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"mail sink listening on {host}:{port}, storing in {directory}", flush=True)
    await stopping.wait()
    server.close()
    await server.wait_closed()


def begin_mail_sink(
    directory: Path,
    log_path: Path,
    *,
    port: int | None = None,
    timeout: float = 20.0,
    outlive_caller: bool = True,
) -> PendingStart:
    """Run the mail sink as its own process; its `url` is `smtp://127.0.0.1:PORT`."""

    def argv(chosen: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ketenbus.devstack.mail_sink",
            "--host",
            ports.LOOPBACK,
            "--port",
            str(chosen),
            "--dir",
            str(directory),
        ]

    return PendingStart(
        "mail",
        argv,
        log_path=log_path,
        ready=ports.accepts_connections,
        url_for=lambda chosen: f"smtp://{ports.LOOPBACK}:{chosen}",
        ready_line="mail sink listening on",
        port=port,
        timeout=timeout,
        outlive_caller=outlive_caller,
    )


def start_mail_sink(*args: Any, **kwargs: Any) -> RunningProcess:
    """begin_mail_sink(...) and wait until it is ready."""
    return begin_mail_sink(*args, **kwargs).wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.devstack.mail_sink")
    parser.add_argument("--host", default=ports.LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where .eml files are stored")
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
