"""Every service as two replicas in one consumer group, one replica of each killed with
SIGKILL in the middle of the crash load (tests/crash_load.py) and not restarted: the other
replica takes its partitions over and redoes what it had not committed."""

from __future__ import annotations

import pytest

from .crash_load import kill_one_replica_of_each_mid_load, run_the_load, the_chain

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]


# Well under this on an idle machine; the margin is for a machine shared with other work.
@pytest.mark.timeout(900)
async def test_one_replica_of_each_service_killed_mid_load_hands_over_and_loses_and_doubles_nothing(
    chain, tmp_path
):
    # A dead replica is missed after 6 s (Kafka's least), not the kit's default 10 s.
    stack = the_chain(chain, tmp_path, replicas=2, session_timeout_ms=6_000)
    await run_the_load(stack, kill_one_replica_of_each_mid_load, restart_services=False)
