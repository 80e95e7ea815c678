"""The domains can import the errors they raise without the infrastructure coming along."""

import subprocess
import sys

import pytest

DOMAINS = [
    "ketenbus.kit.errors",
    "ketenbus.intake.domain",
    "ketenbus.trajectory.domain",
    "ketenbus.notifications.domain",
    "ketenbus.learning.domain",
    "ketenbus.analytics.business_case",
]


@pytest.mark.parametrize("module", DOMAINS)
def test_a_domain_imports_nothing_of_the_infrastructure(module: str) -> None:
    # A fresh interpreter: in this one the other tests have long imported pymongo.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; "
            "print(sorted(n for n in ('pymongo', 'aiokafka', 'faststream', 'fastapi') "
            "if n in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
