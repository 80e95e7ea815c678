"""A lease in the service's own database: at most one replica does a job at a time.

Replicas of a service share its database, so a named document there says who does the job
(the outbox relay, a periodic sweep) until when. The holder renews it while it works; when it
dies, another replica takes the job over once the lease has run out. The job's own writes
stay transactional and idempotent: a lease keeps two replicas from doing the same work at
once, it is not what makes the work correct.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

LEASES = "leases"
# A released lease ran out long ago. Not "now": the database keeps milliseconds, so a
# replica asking within the same millisecond found it not yet expired (a flaky test did).
RELEASED = datetime(1970, 1, 1, tzinfo=UTC)
_DUPLICATE_KEY = 11000


class Lease:
    """The lease on one job, held by this process."""

    def __init__(self, db: AsyncDatabase[Any], job: str, *, seconds: float = 10.0) -> None:
        self.leases = db[LEASES]
        self.job = job
        self._length = timedelta(seconds=seconds)
        self.seconds = seconds
        # Unique per process start: a restarted replica does not inherit its old lease.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Until when (time.monotonic) the lease is ours without asking the database again.
        self._until = 0.0

    async def held(self) -> bool:
        """Whether this process holds the lease now: taken when free or expired, renewed
        when ours. Asks the database at most every third of the lease."""
        if time.monotonic() < self._until:
            return True
        asked = time.monotonic()
        now = datetime.now(UTC)
        try:
            lease = await self.leases.find_one_and_update(
                {"_id": self.job, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self._length}},
                upsert=True,
                return_document=True,
            )
        except PyMongoError as error:
            # A duplicate key on upsert: another replica holds a live lease.
            if getattr(error, "code", None) == _DUPLICATE_KEY:
                self._until = 0.0
                return False
            raise
        held = lease is not None and lease.get("owner") == self.owner
        # Renewed for `seconds` from `asked`: no other replica can take it for that long,
        # so it is asked again after a third of it.
        self._until = asked + self.seconds / 3 if held else 0.0
        return held

    async def release(self) -> None:
        """Let another replica take the job at once (a clean stop)."""
        self._until = 0.0
        with contextlib.suppress(PyMongoError):  # else it runs out by itself
            await self.leases.update_one(
                {"_id": self.job, "owner": self.owner}, {"$set": {"expires_at": RELEASED}}
            )
