"""Intake's settings: the shared ones plus the keys that protect personal data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ketenbus.kit.settings import ServiceSettings


def organisation_list(value: Any) -> Any:
    """`a,b,c` as deployments write it (PARTNER_ORGANISATIONS), or a list."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


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
    capacity_file: Path | None = None
    # Partner organisations with Kafka topics: intake reads every one's inbound topic.
    partner_organisations: Annotated[tuple[str, ...], NoDecode] = ()
    # Per partner, the key it shares with the chain (JSON: {"org": "<base64 key>"}): opens
    # the referrals it seals and seals the contact it may receive after consent.
    partner_sharing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # The partner front door's rate limits, per organisation and per replica (token buckets):
    # so many a minute, and so many at once. A GP practice refers a few a day; these stop a
    # partner's system that has gone into a loop, not a busy partner.
    referral_rate_per_minute: float = Field(default=60, gt=0)
    referral_burst: int = Field(default=20, ge=1)
    referral_status_rate_per_minute: float = Field(default=120, gt=0)
    referral_status_burst: int = Field(default=30, ge=1)

    # Early-warning signals (docs/signals.md). The Wgs obliges the municipality to offer help
    # after a signal but names no term for the first outreach; these are the chain's choice,
    # to be set to the municipality's policy plan. 14 days: well inside the four weeks the Wgs
    # allows for a first conversation after a request for help. 3 days for an energy signal
    # with an end-of-supply notice (supply ends 20 working days after the notice), as the Wgs
    # allows three working days when disconnection threatens.
    signal_outreach_window: timedelta = timedelta(days=14)
    signal_end_of_supply_window: timedelta = timedelta(days=3)
    # Signals are kept at most six months (Wgs; DOMAIN.md), then deleted.
    signal_retention_months: int = Field(default=6, ge=1, le=6)
    # How often (real seconds) intake looks for overdue and expired signals.
    signal_check_seconds: float = Field(default=60.0, gt=0)

    _organisations = field_validator("partner_organisations", mode="before")(organisation_list)
