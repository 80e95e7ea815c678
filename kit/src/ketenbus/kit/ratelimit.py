"""Rate limits per organisation: a token bucket for each organisation and each limit.

A bucket holds at most `burst` tokens and gains `per_minute / 60` of one a second. A request
takes one; when none is left it is refused with 429 Too Many Requests and a Retry-After that
says when the next token is due. So a partner may send `burst` requests at once, and after
that `per_minute` a minute.

The buckets live in the process: a service run as N replicas lets an organisation through N
times as fast (docs/security.md, "Rate limiting"). They are keyed by the caller's organisation,
which the API key proves, so there are only as many as there are organisations with keys.
Unauthenticated requests never reach a bucket: they are refused (401) before it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, status

from ketenbus.kit.auth import Caller


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there will be."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second


class RateLimit:
    """`per_minute` requests a minute per key, with bursts of up to `burst`."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit needs a rate above zero, not {per_minute}")
        if burst < 1:
            raise ValueError(f"a rate limit needs a burst of at least one, not {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when `key` may go ahead (a token is used), else the seconds to wait."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity = float(self.burst)
                bucket = TokenBucket(capacity, self.per_minute / 60.0, capacity, now)
                self._buckets[key] = bucket
            return bucket.take(now)


def limited(
    authenticated: Callable[..., Awaitable[Caller]],
    limit: Callable[..., Awaitable[RateLimit]],
    what: str,
) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the caller `authenticated` gives, if its organisation is within
    the RateLimit that the dependency `limit` gives (one of the service's dependencies);
    else 429."""

    # Defaults, not Annotated[...]: annotations are strings here (__future__), and FastAPI
    # resolves them in the module's globals, where `authenticated` and `limit` are not.
    async def within_limit(
        caller: Caller = Depends(authenticated),  # noqa: B008
        rate: RateLimit = Depends(limit),  # noqa: B008
    ) -> Caller:
        wait = rate.take(caller.organisation_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many {what} from {caller.organisation_id}: at most {rate.per_minute:g} a "
                f"minute, {rate.burst} at once; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        return caller

    return within_limit


TOO_MANY: dict[int | str, dict[str, Any]] = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "description": "Your organisation sent more than its rate limit allows: wait for the "
        "number of seconds in Retry-After, then try again"
    }
}
