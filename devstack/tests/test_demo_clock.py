"""The demo's clocks on a running stack (fake services, no year played): the year's
accelerated clock while it plays, then the same clock at real pace for the stack the user
browses afterwards."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest

from ketenbus.devstack.narration import Narrator
from ketenbus.devstack.pytest_fixtures import ChainFactory
from ketenbus.devstack.simulation import YearOptions
from ketenbus.devstack.stack import SERVICES, EmbeddedStack
from ketenbus.devstack.year import put_at_real_pace, put_on_clock
from ketenbus.kit.wording import DEFAULT

pytestmark = pytest.mark.chain

# A simulated day a real second: the year's clock visibly runs while the services restart.
OPTIONS = YearOptions(days=30, clients=24, speed=86_400.0)


def service_environments(stack: EmbeddedStack) -> dict[str, dict[str, str]]:
    """What each service process was started with, as the kernel holds it."""
    found = {}
    for status in stack.status():
        if status.kind == "service" and status.pid is not None:
            with open(f"/proc/{status.pid}/environ", "rb") as environ:
                pairs = environ.read().decode().split("\0")
            found[status.name] = dict(p.split("=", 1) for p in pairs if "=" in p)
    return found


def test_after_the_year_the_services_carry_on_from_where_it_got_to_at_real_pace(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(SERVICES, **fake_service_options)
    anchor = put_on_clock(stack, OPTIONS, None, boot=0.0)
    on_the_year = service_environments(stack)
    assert {float(env["KETENBUS_CLOCK_SPEED"]) for env in on_the_year.values()} == {86_400.0}
    reached = OPTIONS.clock(anchor).now()
    out = io.StringIO()

    clock = put_at_real_pace(stack, OPTIONS, anchor, out)

    after = service_environments(stack)
    assert set(after) == set(SERVICES)
    for name, env in after.items():
        assert float(env["KETENBUS_CLOCK_SPEED"]) == 1.0, name
        # Never back in time: not before the moment the year had reached.
        assert datetime.fromisoformat(env["KETENBUS_CLOCK_START"]) >= reached, name
        assert datetime.fromisoformat(env["KETENBUS_CLOCK_START"]) == clock.start, name
        assert float(env["KETENBUS_CLOCK_ANCHOR"]) == clock.anchor, name
    # The year ran on while the services stopped: a day a real second, at real pace no more.
    assert clock.start > reached
    assert clock.now() < OPTIONS.clock(anchor).now()
    # Intake keeps the demo year's caseloads and signal checks.
    assert after["intake"]["CAPACITY_FILE"] == str(stack.home / "demo-caseloads.json")
    assert after["intake"]["SIGNAL_CHECK_SECONDS"] == "1"
    assert out.getvalue().strip() == Narrator(DEFAULT)("real_pace")
    stack.wait_ready(SERVICES, timeout=5)
