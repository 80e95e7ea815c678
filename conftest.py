"""Fixtures for every test in the repository: the embedded stack (real Tansu and SecantusDB)."""

from ketenbus.devstack.pytest_fixtures import (  # noqa: F401 - fixtures, found by name
    chain,
    kafka_bootstrap,
    mongo_url,
    partner_organisations,
    stack_home,
)
