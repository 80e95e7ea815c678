"""The devstack's own tests use the same session fixtures as the rest of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketenbus.devstack.pytest_fixtures import (  # noqa: F401 - fixtures, found by name
    chain,
    kafka_bootstrap,
    mongo_url,
    stack_home,
)

FAKE_SERVICE_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def partner_organisations() -> list[str]:
    # Replaces the shared default ([]) so the partner topics are tested too.
    return ["gemeente-utrecht"]


@pytest.fixture
def fake_service_options() -> dict[str, object]:
    """EmbeddedStack options that run tests/fake_service.py instead of the real services."""
    return {
        "service_module": "fake_service",
        "service_env": {"PYTHONPATH": str(FAKE_SERVICE_DIR)},
    }
