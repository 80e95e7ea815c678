"""Trajectory's own database: one document per trajectory, appointments inside it."""

from __future__ import annotations

from dataclasses import asdict
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit.failures import TransientError
from ketenbus.kit.uow import Transaction
from ketenbus.trajectory.domain import Trajectory


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # One trajectory per referral, however often the referral event is delivered.
    await db.trajectories.create_index("referral_id", unique=True)
    await db.trajectories.create_index([("organisation_id", 1), ("client_ref", 1)])
    await db.trajectories.create_index("modules.enrolment_id")


class ConcurrentChange(TransientError):
    """Someone else changed the trajectory since we read it: read again and retry."""


class TrajectoryRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.trajectories

    async def add(self, trajectory: Trajectory) -> None:
        await self.collection.insert_one(_document(trajectory), session=self.tx.session)
        self._publish(trajectory)

    async def save(self, trajectory: Trajectory) -> None:
        expected = trajectory.version
        trajectory.version += 1
        result = await self.collection.replace_one(
            {"_id": trajectory.id, "version": expected},
            _document(trajectory),
            session=self.tx.session,
        )
        if result.matched_count != 1:
            raise ConcurrentChange(trajectory.id)
        self._publish(trajectory)

    async def get(self, trajectory_id: str) -> Trajectory | None:
        document = await self.collection.find_one({"_id": trajectory_id}, session=self.tx.session)
        return _trajectory(document) if document else None

    async def by_enrolment(self, enrolment_id: str) -> Trajectory | None:
        document = await self.collection.find_one(
            {"modules.enrolment_id": enrolment_id}, session=self.tx.session
        )
        return _trajectory(document) if document else None

    async def find(self, organisation_id: str, **criteria: str) -> list[Trajectory]:
        documents = self.collection.find(
            {"organisation_id": organisation_id, **criteria}, session=self.tx.session
        ).sort("opened_at", -1)
        return [_trajectory(d) async for d in documents.limit(100)]

    def _publish(self, trajectory: Trajectory) -> None:
        self.tx.publish_all(trajectory.events)
        trajectory.events.clear()


def _document(trajectory: Trajectory) -> dict[str, Any]:
    document = asdict(trajectory)
    document["_id"] = document.pop("id")
    del document["events"]
    return document


_TRAJECTORY = TypeAdapter(Trajectory)


def _trajectory(document: dict[str, Any]) -> Trajectory:
    """Back from the document, enumerations and nested appointments included."""
    return _TRAJECTORY.validate_python({**document, "id": document["_id"]})


class TrajectoryTransaction(Transaction):
    @cached_property
    def trajectories(self) -> TrajectoryRepository:
        return TrajectoryRepository(self)
