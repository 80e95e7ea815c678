"""Intake's settings: the shared ones plus the keys that protect personal data."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from ketenbus.kit.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # Wraps every client's own data key; the client key is what erasure shreds.
    ketenbus_master_key: SecretStr
    # Shared with notifications only: contact details cross the bus sealed with it.
    contact_sharing_key: SecretStr
    # Keyed hash for recognising the same person without storing who it is in the clear.
    pseudonym_key: SecretStr
    regions_file: Path | None = None
