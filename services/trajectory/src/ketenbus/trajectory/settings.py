"""Trajectory's settings: the shared ones, the partners, the grace period, the feedback key."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ketenbus.contracts.topics import partner_inbound
from ketenbus.kit.settings import ServiceSettings


def organisation_list(value: Any) -> Any:
    """`a,b,c` as deployments write it (PARTNER_ORGANISATIONS), or a list."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class TrajectorySettings(ServiceSettings):
    service_name: str = "trajectory"
    http_port: int = 8002
    # Partner organisations with Kafka topics: their answers to hand-offs arrive there.
    partner_organisations: Annotated[tuple[str, ...], NoDecode] = ()
    # How long after an appointment's end the worker may take to register attended or missed
    # before being reminded (ISO 8601, e.g. PT24H).
    registration_grace: timedelta = timedelta(hours=24)
    # How often (real seconds) the store is asked for appointments nobody registered.
    overdue_check_seconds: float = Field(default=5.0, gt=0)
    # How often (real seconds) waiting purges of erased clients' dead letters are looked for.
    dead_letter_purge_seconds: float = Field(default=2.0, gt=0)
    # Shared with learning only: the worker's feedback on homework crosses the bus sealed.
    feedback_sharing_key: SecretStr | None = None

    _organisations = field_validator("partner_organisations", mode="before")(organisation_list)

    def partner_inbound_topics(self) -> tuple[str, ...]:
        """Where partners answer hand-offs: each on an inbound topic of its own."""
        return tuple(partner_inbound(org).name for org in self.partner_organisations)
