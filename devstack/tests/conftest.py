"""The devstack's own tests use the same session fixtures as the rest of the repository.

Imported here as well as in the repository's conftest.py so these tests also run on their own
(`pytest devstack/tests`); the servers behind them are started once per test process anyway.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ketenbus.devstack.pytest_fixtures import (  # noqa: F401 - fixtures, found by name
    chain,
    kafka,
    kafka_bootstrap,
    mongo_url,
    partner_organisations,
    stack_home,
)

FAKE_SERVICE_DIR = Path(__file__).parent


@pytest.fixture
def fake_service_options() -> dict[str, object]:
    """EmbeddedStack options that run tests/fake_service.py instead of the real services."""
    return {
        "service_module": "fake_service",
        "service_env": {"PYTHONPATH": str(FAKE_SERVICE_DIR)},
    }
