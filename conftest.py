"""Fixtures for every test in the repository: the embedded stack (Apache Kafka and SecantusDB)."""

import os

from ketenbus.devstack.kafka_server import QUICK_START_VARIABLE
from ketenbus.devstack.ports import PORT_RANGE_VARIABLE
from ketenbus.devstack.pytest_fixtures import (  # noqa: F401 - fixtures, found by name
    chain,
    kafka,
    kafka_bootstrap,
    mongo_url,
    partner_organisations,
    stack_home,
)

# The suite's brokers live for a test file each: tuned to start, not to run (kafka_server.py).
os.environ.setdefault(QUICK_START_VARIABLE, "1")

# Under pytest-xdist each worker starts stacks of its own: give each its own ports to pick
# from (3,000 each from 20,000 up, below the kernel's ephemeral ports).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _first = 20_000 + 3_000 * int(_worker[2:])
    os.environ.setdefault(PORT_RANGE_VARIABLE, f"{_first}-{_first + 2_999}")


def pytest_collection_modifyitems(items):
    """The long tests first (in their collected order): a parallel run whose longest test
    starts last ends that much later."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
