"""Learning's settings: the shared ones, when an idle module counts as abandoned, and the
key trajectory seals a worker's homework feedback with."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from ketenbus.kit.settings import ServiceSettings


class LearningSettings(ServiceSettings):
    service_name: str = "learning"
    http_port: int = 8004
    # A module without progress this long counts as abandoned (ModuleAbandoned). Longer than
    # notifications' nudges (5 and 10 days by default), so the nudges come first.
    abandon_after: timedelta = timedelta(days=21)
    abandon_check_seconds: float = Field(default=60.0, gt=0)
    # Shared with trajectory only: opens the worker's feedback for the client to read.
    feedback_sharing_key: SecretStr | None = None
    # Wraps each client's data key for their homework answers (store.py). Production sets it;
    # without it the client keys are stored unwrapped (a warning at start-up).
    learning_master_key: SecretStr | None = None
    learning_catalogue_dir: Path | None = None
    # How long a client's portal token lasts (the worker issues a new one when it ran out).
    portal_token_valid_for: timedelta = timedelta(days=7)
