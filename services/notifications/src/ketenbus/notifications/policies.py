"""How each organisation wants its clients reminded: a data file, not code.

The defaults come with the service (`data/policies.json`); an organisation's entry overrides
only what it names. Point NOTIFICATION_POLICIES_FILE at a file of the same shape to replace
the whole table.
"""

from __future__ import annotations

import json
from datetime import time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from ketenbus.notifications.wording import forbidden_words_in


class OrganisationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Signs every message (default: "your contact person"). Must not hint at why someone
    # gets help: a debt counsellor's name on a phone screen says too much.
    sender_name: str | None = Field(default=None, min_length=2, max_length=60)
    # How a client makes or changes an appointment, e.g. "030 123 45 67".
    contact_phone: str | None = Field(default=None, max_length=20)
    # Before an appointment, this long ahead, a reminder goes out (one per entry).
    appointment_reminders: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    # None: the service-wide MISSED_FOLLOW_UP_DELAY.
    missed_follow_up_delay: timedelta | None = None
    waitlist_invitation_delay: timedelta = timedelta(0)
    self_help_url: str = "https://portaal.ketenbus.example/zelfhulp"
    portal_url: str = "https://portaal.ketenbus.example"
    # A module without progress this long gets a friendly nudge, at most this many times.
    module_nudge_after: timedelta = timedelta(days=5)
    module_nudges_max: int = Field(default=2, ge=0, le=10)
    timezone: str = "Europe/Amsterdam"
    # No SMS from start to end (local time); an SMS due then waits for the end.
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    # Messages to one client on one local day; more wait for the next day.
    daily_cap: int = Field(default=3, ge=1, le=20)
    # A team mailbox for notes to social workers (missed appointments, failed reminders).
    worker_mailbox: EmailStr | None = None
    worker_language: str = Field(default="nl", pattern="^(nl|en)$")
    # The sender an SMS shows: at most 11 letters or digits (the SMS standard's limit).
    sms_originator: str = Field(default="Ketenbus", pattern=r"^[A-Za-z0-9]{1,11}$")

    @field_validator("sender_name")
    @classmethod
    def _neutral(cls, name: str | None) -> str | None:
        found = forbidden_words_in(name or "")
        if found:
            raise ValueError(f"a sender name may not reveal why someone gets help: {found}")
        return name

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        ZoneInfo(zone)
        return zone

    @field_validator("appointment_reminders")
    @classmethod
    def _ahead(cls, offsets: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if any(offset <= timedelta(0) for offset in offsets):
            raise ValueError("a reminder goes out before the appointment: offsets must be > 0")
        return tuple(sorted(set(offsets), reverse=True))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Policies:
    def __init__(self, default: OrganisationPolicy, overrides: dict[str, OrganisationPolicy]):
        self.default = default
        self.overrides = overrides

    def of(self, organisation_id: str) -> OrganisationPolicy:
        return self.overrides.get(organisation_id, self.default)

    @classmethod
    def load(cls, path: Path | None = None) -> Policies:
        if path is None:
            text = resources.files(__package__).joinpath("data/policies.json").read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return cls.parse(json.loads(text))

    @classmethod
    def parse(cls, table: dict[str, Any]) -> Policies:
        base = table.get("default", {})
        default = OrganisationPolicy.model_validate(base)
        overrides = {
            organisation: OrganisationPolicy.model_validate({**base, **entry})
            for organisation, entry in table.get("organisations", {}).items()
        }
        return cls(default, overrides)
