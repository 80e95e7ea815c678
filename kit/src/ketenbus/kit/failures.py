"""Which failures are worth retrying, and how long to wait between tries.

Transient: the message is fine but the database or broker is not (a connection, a
timeout, a write conflict between transactions). Anything else is about the message or
the code, and retrying forever would stop the partition.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from ketenbus.kit.errors import TransientError

T = TypeVar("T")

_TRANSIENT_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")
# WriteConflict, and the codes MongoDB marks as retryable, in case a label is missing.
_TRANSIENT_CODES = {112, 189, 91, 6, 7, 89, 9001, 10107, 11600, 11602, 13435, 13436, 251}


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (TransientError, ConnectionFailure, ServerSelectionTimeoutError)):
        return True
    if isinstance(error, KafkaError):
        return True
    if isinstance(error, PyMongoError):
        if any(error.has_error_label(label) for label in _TRANSIENT_LABELS):
            return True
        if isinstance(error, OperationFailure) and error.code in _TRANSIENT_CODES:
            return True
    return isinstance(error, (TimeoutError, ConnectionError))


def backoff_seconds(attempt: int, base: float, ceiling: float) -> float:
    """Exponential backoff with full jitter, so that replicas do not retry in step."""
    return random.uniform(0, min(ceiling, base * 2**attempt))


async def pause(attempt: int, base: float, ceiling: float) -> None:
    await asyncio.sleep(backoff_seconds(attempt, base, ceiling))


async def retrying(
    work: Callable[[], Awaitable[T]], attempts: int = 5, base: float = 0.02, ceiling: float = 0.5
) -> T:
    """Run a command again when it lost a race (a write conflict, a concurrent change): for
    HTTP commands, which, unlike consumed events, have no redelivery to fall back on."""
    for attempt in range(1, attempts):
        try:
            return await work()
        except Exception as error:
            if not is_transient(error) or may_have_committed(error):
                raise
            await pause(attempt, base, ceiling)
    return await work()


def may_have_committed(error: BaseException) -> bool:
    """After "commit result unknown" the first attempt may have happened: running the
    command again could do it twice, so the caller hears 503 and decides."""
    return isinstance(error, PyMongoError) and error.has_error_label(
        "UnknownTransactionCommitResult"
    )
