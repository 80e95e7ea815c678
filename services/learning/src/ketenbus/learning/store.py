"""Learning's own database: enrolments (with homework answers and questionnaire scores),
the questionnaire history per client, and who is on a waiting list. All forgotten on erasure."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit.uow import Transaction
from ketenbus.learning.domain import Enrolment, EnrolmentStatus


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.enrolments.create_index([("organisation_id", 1), ("client_ref", 1)])
    await db.enrolments.create_index([("status", 1), ("idle_since", 1)])
    await db.enrolments.create_index("submissions.id", sparse=True)


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

    async def by_submission(self, submission_id: str) -> Enrolment | None:
        document = await self.collection.find_one(
            {"submissions.id": submission_id}, session=self.tx.session
        )
        return _enrolment(document) if document else None

    async def of_client(self, organisation_id: str, client_ref: str) -> list[Enrolment]:
        cursor = self.collection.find(
            {"organisation_id": organisation_id, "client_ref": client_ref}, session=self.tx.session
        ).sort("enrolled_at", 1)
        return [_enrolment(d) async for d in cursor]

    async def idle_since_before(self, moment: datetime, limit: int = 100) -> list[str]:
        cursor = self.collection.find(
            {
                "status": {"$in": [EnrolmentStatus.ENROLLED.value, EnrolmentStatus.STARTED.value]},
                "idle_since": {"$lte": moment},
            },
            projection=["_id"],
            session=self.tx.session,
        )
        return [d["_id"] async for d in cursor.limit(limit)]

    async def questionnaires_answered(self, client_ref: str, questionnaire_id: str) -> int:
        """How often the client filled in this questionnaire before, in any module."""
        cursor = self.collection.find(
            {"client_ref": client_ref, "answers.questionnaire_id": questionnaire_id},
            projection=["answers"],
            session=self.tx.session,
        )
        return sum(
            [
                [a["questionnaire_id"] for a in d["answers"]].count(questionnaire_id)
                async for d in cursor
            ]
        )

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)

    def _publish(self, enrolment: Enrolment) -> None:
        self.tx.publish_all(enrolment.events)
        enrolment.events.clear()


class WaitingList:
    """Who is waiting, as intake announced it: they may start self-help on their own."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.waiting

    async def add(self, client_ref: str, organisation_id: str, since: datetime) -> None:
        await self.collection.replace_one(
            {"_id": client_ref},
            {"organisation_id": organisation_id, "since": since},
            upsert=True,
            session=self.tx.session,
        )

    async def remove(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)

    async def waiting(self, client_ref: str, organisation_id: str) -> bool:
        document = await self.collection.find_one(
            {"_id": client_ref, "organisation_id": organisation_id}, session=self.tx.session
        )
        return document is not None


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

    @cached_property
    def waiting_list(self) -> WaitingList:
        return WaitingList(self)
