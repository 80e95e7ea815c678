"""Notifications' settings: the shared ones, the channels, and the rules of delivery."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ketenbus.kit.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8003
    # Shared with intake only: opens the sealed contact details it sends.
    contact_sharing_key: SecretStr
    # Where clients' opt-out links point: this service as the outside world reaches it
    # (behind the organisation's proxy). Unset: this process's own address, for local use.
    public_url: str | None = Field(default=None, validation_alias="NOTIFICATIONS_PUBLIC_URL")
    # Per-organisation reminder policy; the packaged defaults when unset.
    notification_policies_file: Path | None = None

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "Ketenbus <geen-antwoord@ketenbus.example>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # How the connection to the relay is protected: "starttls" (required: a relay that does
    # not offer it gets nothing, never a plaintext fallback), "tls" (implicit TLS, port 465),
    # or "none", which only a relay on loopback may have (the devstack's mail sink, tests):
    # names, addresses and the relay password never cross a network in the clear. Unset:
    # "starttls", or "none" for a relay on loopback. Anything else refuses to start.
    smtp_security: Literal["starttls", "tls", "none"] | None = None
    # The relay's certificate is verified against the system CAs, or this bundle.
    smtp_ca_file: Path | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    message_id_domain: str = "ketenbus.example"

    sms_provider_url: str | None = None
    # "json": the generic JSON API (and the devstack sink); "messagebird": Bird's REST API.
    sms_provider_kind: Literal["json", "messagebird"] = "json"
    sms_provider_token: SecretStr | None = None
    sms_timeout_seconds: float = Field(default=10.0, gt=0)

    # How long after a missed appointment the client hears from us: soon, not at once.
    missed_follow_up_delay: timedelta = timedelta(hours=2)
    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    # A claim older than this (real seconds) belonged to a dispatcher that died: more than
    # the slowest hand-over (the channel timeouts) with room to spare.
    send_claim_seconds: float = Field(default=60.0, gt=0)
    send_max_attempts: int = Field(default=6, ge=1)
    send_retry_base_seconds: float = Field(default=2.0, gt=0)
    send_retry_max_seconds: float = Field(default=300.0, gt=0)
    # Reminders this late (in the chain's time) count as overdue for the operators.
    overdue_after: timedelta = timedelta(minutes=5)
    gauge_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _mail_is_encrypted_off_this_machine(self) -> Self:
        if self.smtp_security == "none" and not on_loopback(self.smtp_host):
            raise ValueError(
                f"SMTP_SECURITY=none for a relay that is not on loopback ({self.smtp_host}): "
                "use starttls or tls"
            )
        return self

    @property
    def mail_security(self) -> Literal["starttls", "tls", "none"]:
        if self.smtp_security is not None:
            return self.smtp_security
        return "none" if on_loopback(self.smtp_host) else "starttls"

    @property
    def link_base(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


def on_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves the machine."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
