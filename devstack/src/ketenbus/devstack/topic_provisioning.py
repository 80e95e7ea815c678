"""Creating the known topics up front, with their partition counts.

Brokers auto-create a topic on first use, but with the broker's default partition count; a
topic's partition count decides how keys spread and cannot shrink later, so the stack creates
every topic from the registry in ketenbus.contracts.topics before any service starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ketenbus.contracts import topics
from ketenbus.devstack.errors import StartFailed

_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code

T = TypeVar("T")


def wanted_topics(partner_ids: Sequence[str] = ()) -> dict[str, int]:
    """Topic name -> partitions: the internal and partner topics, each with its dead-letter topic.

    A dead-letter topic gets the partition count of its topic so that a key lands in the same
    partition number in both, which keeps replaying dead letters in order simple.
    """
    registry = (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(list(partner_ids)))
    wanted: dict[str, int] = {}
    for topic in registry:
        wanted[topic.name] = topic.partitions
        wanted[topic.dlq] = topic.partitions
    return wanted


async def create_topics(
    bootstrap: str, partner_ids: Sequence[str] = (), *, request_timeout: float = 20.0
) -> dict[str, int]:
    """Create the wanted topics that do not exist yet; returns every topic's partition count
    as the broker reports it. Existing topics are left as they are."""
    wanted = wanted_topics(partner_ids)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="ketenbus-devstack",
        request_timeout_ms=int(request_timeout * 1000),
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor=1)
                for name, partitions in wanted.items()
            ],
            timeout_ms=int(request_timeout * 1000),
        )
        # Kafka answers per topic instead of raising: collect the real failures.
        failures = [
            f"{name}: {message or code}"
            for name, code, message in response.topic_errors
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise StartFailed(f"could not create topics on {bootstrap}: {'; '.join(failures)}")
        described = await admin.describe_topics(list(wanted))
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def create_topics_blocking(
    bootstrap: str, partner_ids: Sequence[str] = (), *, request_timeout: float = 20.0
) -> dict[str, int]:
    """create_topics for synchronous callers (the CLI, EmbeddedStack, sync fixtures)."""
    return _run(create_topics(bootstrap, partner_ids, request_timeout=request_timeout))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from inside an event loop (an async test calling the sync stack API): a second
    # loop cannot run in this thread, so run it in a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
