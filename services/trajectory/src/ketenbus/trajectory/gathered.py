"""The trajectories of one unit of work (trajectory's `deferred` writes, ketenbus.kit.uow):
each read once and then kept, and what was added and saved written in one ordered bulk write
when the unit of work ends.

Events about one client come in order, so a consumed batch touches the same trajectory
again and again (a module assigned, its homework, completed): a find and a replace per
event, a round trip each. Kept, a trajectory is read once per unit of work and written once,
in its final state. Kept also means seen: a handler later in the batch gets the object the
handlers before it changed, which the database will not have until the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pydantic import TypeAdapter
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from ketenbus.kit.errors import TransientError
from ketenbus.trajectory.domain import Trajectory


class ConcurrentChange(TransientError):
    """Someone else changed the trajectory since we read it: read again and retry."""


class GatheredTrajectories:
    def __init__(self, collection: AsyncCollection[Any], session: AsyncClientSession) -> None:
        self.collection, self.session = collection, session
        self.kept: dict[str, Trajectory] = {}
        # The version each was stored at when read; None: added here, not stored yet.
        self.stored_version: dict[str, int | None] = {}
        # What to write, in the order first added or saved (a dict as an ordered set).
        self.changed: dict[str, None] = {}

    def matching(self, matches: Callable[[Trajectory], bool]) -> list[Trajectory]:
        return [trajectory for trajectory in self.kept.values() if matches(trajectory)]

    def keep(self, document: dict[str, Any]) -> Trajectory:
        """The trajectory of this stored document: the one kept under its id already, which
        may have changed since, or else the document's, kept from now on."""
        kept = self.kept.get(document["_id"])
        if kept is None:
            kept = self.kept[document["_id"]] = trajectory_of(document)
            self.stored_version[kept.id] = kept.version
        return kept

    def add(self, trajectory: Trajectory) -> None:
        if trajectory.id in self.kept:
            raise ValueError(f"trajectory {trajectory.id} exists already")
        self.kept[trajectory.id] = trajectory
        self.stored_version[trajectory.id] = None
        self.changed[trajectory.id] = None

    def save(self, trajectory: Trajectory) -> None:
        kept = self.kept.setdefault(trajectory.id, trajectory)
        if kept is not trajectory:
            raise ValueError(f"a second copy of trajectory {trajectory.id} in one unit of work")
        stored = self.stored_version.setdefault(trajectory.id, trajectory.version)
        if stored is not None:
            # One version further per unit of work, however often its handlers saved it.
            trajectory.version = stored + 1
        self.changed[trajectory.id] = None

    async def flush(self) -> None:
        """Each changed trajectory written once, in its final state: inserted when added,
        else replaced only at the version it was read at."""
        ids, self.changed = list(self.changed), {}
        if not ids:
            return
        writes = [self._write(trajectory_id) for trajectory_id in ids]
        try:
            result = await self.collection.bulk_write(writes, session=self.session)
        except BulkWriteError as error:
            # Not chained: the bulk error holds whole documents, which a log must not show.
            raise _single_write_error(error) from None
        replaced = [i for i in ids if self.stored_version[i] is not None]
        if result.matched_count != len(replaced):
            raise ConcurrentChange(", ".join(replaced))
        for trajectory_id in ids:
            self.stored_version[trajectory_id] = self.kept[trajectory_id].version

    def _write(self, trajectory_id: str) -> InsertOne[Any] | ReplaceOne[Any]:
        trajectory = self.kept[trajectory_id]
        stored = self.stored_version[trajectory_id]
        if stored is None:
            return InsertOne(document_of(trajectory))
        return ReplaceOne({"_id": trajectory_id, "version": stored}, document_of(trajectory))


def _single_write_error(error: BulkWriteError) -> Exception:
    """The first failed write, raised as one insert or replace would have raised it: a
    second trajectory for a referral as DuplicateKeyError, a conflict with its code; without
    the document pymongo adds to it (the client's trajectory has no place in a log)."""
    failed = error.details.get("writeErrors") or []
    if not failed:
        return WriteError("the bulk write of trajectories failed", error.code)
    first = {key: value for key, value in failed[0].items() if key != "op"}
    kind = DuplicateKeyError if first.get("code") == 11000 else WriteError
    return kind(first.get("errmsg", "write failed"), first.get("code"), first)


def document_of(trajectory: Trajectory) -> dict[str, Any]:
    document = asdict(trajectory)
    document["_id"] = document.pop("id")
    del document["events"]
    return document


_TRAJECTORY = TypeAdapter(Trajectory)


def trajectory_of(document: dict[str, Any]) -> Trajectory:
    """Back from the document, enumerations and nested appointments included."""
    return _TRAJECTORY.validate_python({**document, "id": document["_id"]})
