"""Fixtures for the cross-service tests: the embedded stack (real Tansu and SecantusDB).

- stack_home: session temp dir; kafka_bootstrap: a Tansu broker with every known topic;
  mongo_url: a SecantusDB with test commands (failpoints); partner_organisations: [] (override
  it to get partner topics up front); chain: per-test factory of EmbeddedStacks on those
  servers for starting service processes. See ketenbus.devstack.pytest_fixtures.

KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL in the environment point the fixtures at existing servers.
The servers are started once per test process even when several conftest.py files import them.
"""

from ketenbus.devstack.pytest_fixtures import (  # noqa: F401 - fixtures, found by name
    chain,
    kafka_bootstrap,
    mongo_url,
    partner_organisations,
    stack_home,
)
