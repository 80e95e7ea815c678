from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from ketenbus.kit.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8003
    # Shared with intake only: opens the sealed contact details it sends.
    contact_sharing_key: SecretStr
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "Ketenbus <geen-antwoord@ketenbus.example>"
    smtp_timeout_seconds: float = 10.0
    sms_provider_url: str | None = None
    # How long after a missed appointment the client hears from us: soon, not at once.
    missed_follow_up_delay: timedelta = timedelta(hours=2)
    dispatch_poll_seconds: float = 0.5
