"""All five services killed with SIGKILL in the middle of the crash load (tests/crash_load.py)
and restarted: every effect exactly once, nothing lost."""

from __future__ import annotations

import pytest

from .crash_load import kill_every_service_mid_load, run_the_load, the_chain

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]


# Well under this on an idle machine; the margin is for a machine shared with other work.
@pytest.mark.timeout(900)
async def test_every_service_killed_mid_load_and_restarted_ends_with_every_effect_once(
    chain, tmp_path
):
    stack = the_chain(chain, tmp_path)
    await run_the_load(stack, kill_every_service_mid_load, restart_services=True)
