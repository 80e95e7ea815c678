"""A consumer's fetches paced by what the last one found.

Busy, the broker may hold a fetch until a batch is there (`CONSUMER_FETCH_WAIT_MS`,
`CONSUMER_FETCH_MIN_BYTES`): a trickle of events becomes fewer transactions of more. Idle,
that same fetch comes back empty twenty times a second, and every one costs the broker a
millisecond or two of CPU (benchmarks/REPORT.md): most of a chain's day is idle. So after a
fetch that found nothing the next one asks for a single byte and may wait half a second
(Kafka's own defaults): the broker answers it as soon as an event arrives, and an event on
a quiet chain no longer waits for a batch that will not come either.

aiokafka builds each fetch from its fetcher's two settings and has no public way to change
them while it runs; `pace` wraps the fetcher's handling of each response to set them for
the next request. Pinned by kit/tests/test_fetch_pacing.py, which fails if aiokafka moves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A fetch after an empty one: answered by the first byte, or after half a second.
IDLE_WAIT_MS = 500
IDLE_MIN_BYTES = 1
# What `pace` changes of aiokafka's fetcher.
_FETCHER_PARTS = ("_fetch_max_wait_ms", "_fetch_min_bytes", "_proc_fetch_request")


@dataclass(frozen=True)
class FetchPacing:
    """How a fetch may be held while events are flowing."""

    busy_wait_ms: int
    busy_min_bytes: int


def pace(consumer: Any, pacing: FetchPacing) -> None:
    """From now on each fetch of this started AIOKafkaConsumer waits as its last found; it
    starts as one that found nothing."""
    fetcher = consumer._fetcher
    if not all(hasattr(fetcher, name) for name in _FETCHER_PARTS):
        raise RuntimeError(f"this aiokafka's fetcher lacks {_FETCHER_PARTS}: cannot pace it")
    handle_response = fetcher._proc_fetch_request

    def wait_as(found: bool) -> None:
        fetcher._fetch_max_wait_ms = pacing.busy_wait_ms if found else IDLE_WAIT_MS
        fetcher._fetch_min_bytes = pacing.busy_min_bytes if found else IDLE_MIN_BYTES

    async def paced(assignment: Any, node_id: int, request: Any) -> bool:
        # True when the response put records (or an error) where the consumer reads them.
        found = bool(await handle_response(assignment, node_id, request))
        wait_as(found)
        return found

    wait_as(found=False)
    fetcher._proc_fetch_request = paced
