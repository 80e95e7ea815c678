"""The ways a message reaches a client. The same code talks to the loopback sinks in
development and to a real SMTP relay or SMS provider in production."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from ketenbus.kit.failures import TransientError
from ketenbus.notifications.templates import Message


class PermanentDeliveryFailure(Exception):
    """The provider refused the message for good (bad address, rejected content)."""


class Mailer:
    def __init__(self, host: str, port: int, sender: str, timeout: float) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    async def send(self, to: str, message: Message, message_id: str) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = to
        email["Subject"] = message.subject
        # A stable Message-ID per reminder lets a relay recognise a repeat of the same mail.
        email["Message-ID"] = f"<{message_id}@ketenbus.example>"
        email.set_content(message.text)
        try:
            await aiosmtplib.send(
                email, hostname=self.host, port=self.port, timeout=self.timeout, start_tls=False
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise PermanentDeliveryFailure("recipient refused") from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise TransientError(f"mail relay unavailable: {type(error).__name__}") from error
