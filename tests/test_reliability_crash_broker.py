"""One Kafka broker of three killed with SIGKILL in the middle of the crash load
(tests/crash_load.py) and restarted; the services are not restarted (replication factor 3,
min.insync.replicas 2: acknowledged writes survive, and writes go on with two brokers)."""

from __future__ import annotations

import pytest

from .crash_load import kill_a_broker_mid_load, run_the_load, the_chain

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]


# Well under this on an idle machine; the margin is for a machine shared with other work.
@pytest.mark.timeout(900)
async def test_one_broker_of_three_killed_mid_load_and_restarted_loses_and_doubles_nothing(
    chain, tmp_path
):
    stack = the_chain(chain, tmp_path, brokers=3)
    await run_the_load(stack, kill_a_broker_mid_load, restart_services=False)
