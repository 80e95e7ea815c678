"""Learning's own database: enrolments and their progress."""

from __future__ import annotations

from dataclasses import asdict
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit.uow import Transaction
from ketenbus.learning.domain import Enrolment


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.enrolments.create_index([("organisation_id", 1), ("client_ref", 1)])


class EnrolmentRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.enrolments

    async def add(self, enrolment: Enrolment) -> None:
        await self.collection.insert_one(_document(enrolment), session=self.tx.session)
        self._publish(enrolment)

    async def save(self, enrolment: Enrolment) -> None:
        await self.collection.replace_one(
            {"_id": enrolment.id}, _document(enrolment), session=self.tx.session
        )
        self._publish(enrolment)

    async def get(self, enrolment_id: str) -> Enrolment | None:
        document = await self.collection.find_one({"_id": enrolment_id}, session=self.tx.session)
        return _enrolment(document) if document else None

    async def of_client(self, organisation_id: str, client_ref: str) -> list[Enrolment]:
        cursor = self.collection.find(
            {"organisation_id": organisation_id, "client_ref": client_ref}, session=self.tx.session
        )
        return [_enrolment(d) async for d in cursor]

    def _publish(self, enrolment: Enrolment) -> None:
        self.tx.publish_all(enrolment.events)
        enrolment.events.clear()


def _document(enrolment: Enrolment) -> dict[str, Any]:
    document = asdict(enrolment)
    document["_id"] = document.pop("id")
    del document["events"]
    return document


_ENROLMENT = TypeAdapter(Enrolment)


def _enrolment(document: dict[str, Any]) -> Enrolment:
    return _ENROLMENT.validate_python({**document, "id": document["_id"]})


class LearningTransaction(Transaction):
    @cached_property
    def enrolments(self) -> EnrolmentRepository:
        return EnrolmentRepository(self)
