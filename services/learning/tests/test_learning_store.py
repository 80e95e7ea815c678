"""Learning's repository on the real database (SecantusDB): a unit of work reads each
enrolment and each client key once, every handler of a batch sees what the handlers before
it added or changed, each enrolment is written once when the unit of work ends (its answers
sealed then), and an erasure takes what the batch gathered with what was stored."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.events import (
    ClientErasureRequested,
    HomeworkFeedbackGiven,
    LifeDomainScores,
    ModuleAssigned,
)
from ketenbus.contracts.values import Language, new_id
from ketenbus.kit.clock import FixedClock
from ketenbus.kit.consumer import BoundHandlers
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning import store
from ketenbus.learning.bootstrap import LearningDependencies
from ketenbus.learning.catalogue import Catalogue
from ketenbus.learning.domain import Enrolment
from ketenbus.learning.handlers import handlers
from ketenbus.learning.settings import LearningSettings
from ketenbus.learning.store import LearningTransaction

pytestmark = pytest.mark.stack

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ORGANISATION = "welzijn-utrecht"
MONEY = Catalogue.load().modules["grip-op-je-geld"]
ANSWER = "Mijn huur is te hoog"
SCORES = LifeDomainScores(
    money=3, housing=6, health=5, social_contacts=4, daily_activities=5, wellbeing=4
)


@dataclass
class Service:
    uow: UnitOfWork[LearningTransaction]
    handle: BoundHandlers
    commands: SentCommands

    @property
    def db(self) -> Any:
        return self.uow.db

    async def in_batch(self, envelopes: list[Envelope[Any]]) -> None:
        """The events handled as the consumer hands them a batch."""
        async with self.uow.batch(envelopes) as batch:
            for envelope in envelopes:
                await self.handle(envelope, uow=batch)

    async def read(self, enrolment_id: str) -> Enrolment:
        async with self.uow.reading() as tx:
            enrolment = await tx.enrolments.get(enrolment_id)
        assert enrolment is not None
        return enrolment


@pytest.fixture
async def service(mongo_url: str) -> AsyncIterator[Service]:
    commands = SentCommands()
    async with watched_database(mongo_url, "learning_store", commands) as db:
        await store.ensure_indexes(db)
        uow = UnitOfWork(
            db.client,
            db,
            service="learning",
            clock=FixedClock(NOW),
            transaction_class=partial(LearningTransaction, homework_master_key=sealing.new_key()),
        )
        deps = LearningDependencies.from_settings(LearningSettings(), uow=uow, clock=uow.clock)
        yield Service(uow, handlers.bind(deps), commands)


def event(data: Any) -> Envelope[Any]:
    return wrap(data, source="test", time=NOW)


def assigned(client_ref: str, enrolment_id: str | None = None) -> Envelope[ModuleAssigned]:
    return event(
        ModuleAssigned(
            trajectory_id=new_id("trj"),
            client_ref=client_ref,
            organisation_id=ORGANISATION,
            enrolment_id=enrolment_id or new_id("enr"),
            module_id=MONEY.id,
            language=Language.NL,
            assigned_at=NOW,
        )
    )


def feedback(enrolment: Enrolment, submission_id: str) -> Envelope[HomeworkFeedbackGiven]:
    return event(
        HomeworkFeedbackGiven(
            trajectory_id=enrolment.trajectory_id or new_id("trj"),
            client_ref=enrolment.client_ref,
            organisation_id=enrolment.organisation_id,
            enrolment_id=enrolment.id,
            submission_id=submission_id,
            step_id="huiswerk-kasboek",
            feedback=sealing.seal(
                b"Goed begin!",
                data_key=sealing.new_key(),
                key_id=submission_id,
                recipient_key=sealing.new_key(),
            ),
            given_at=NOW + timedelta(days=2),
        )
    )


def erased(client_ref: str) -> Envelope[ClientErasureRequested]:
    return event(
        ClientErasureRequested(
            client_ref=client_ref, organisation_id=ORGANISATION, requested_at=NOW
        )
    )


async def with_homework(service: Service) -> tuple[Enrolment, list[str]]:
    """A module assigned, then homework handed in twice through the portal: stored, with
    the answers sealed under the client's new key."""
    envelope = assigned(new_id("cl"))
    await service.handle(envelope)
    async with service.uow.command() as tx:
        enrolment = await tx.enrolments.get(envelope.data.enrolment_id)
        assert enrolment is not None
        enrolment.start(NOW)
        submissions = [
            enrolment.submit_homework(MONEY, "huiswerk-kasboek", f"{ANSWER} ({n})", NOW)
            for n in (1, 2)
        ]
        await tx.enrolments.save(enrolment)
    return enrolment, submissions


async def test_a_batch_reads_each_enrolment_and_key_once_and_writes_each_enrolment_once(
    service: Service,
):
    enrolment, [first, second] = await with_homework(service)
    another_module = assigned(enrolment.client_ref)
    someone_else = assigned(new_id("cl"))
    service.commands.clear()

    await service.in_batch(
        [
            another_module,
            feedback(enrolment, first),
            someone_else,
            feedback(enrolment, second),
        ]
    )

    # The enrolment looked up once, its answers opened and sealed again with a key read once.
    assert len(service.commands.to("enrolments", "find")) == 1
    assert len(service.commands.to("client_keys", "find")) == 1
    # The two new ones inserted together, the changed one replaced once, in its final state.
    assert [d["_id"] for d in service.commands.inserted("enrolments")] == [
        another_module.data.enrolment_id,
        someone_else.data.enrolment_id,
    ]
    assert [u["q"] for u in service.commands.updated("enrolments")] == [{"_id": enrolment.id}]
    assert len(service.commands.to("enrolments", "bulkWrite")) == 1  # all in one write
    stored = await service.db.enrolments.find_one({"_id": enrolment.id})
    assert [s["feedback_given_at"] is not None for s in stored["submissions"]] == [True, True]
    assert ANSWER not in str(stored)  # sealed, as before
    read = await service.read(enrolment.id)
    assert [s.answer for s in read.submissions] == [f"{ANSWER} (1)", f"{ANSWER} (2)"]
    assert await service.db.enrolments.count_documents({}) == 3


async def test_reads_in_a_unit_of_work_see_what_it_added_and_changed_before_it_is_written(
    service: Service,
):
    earlier = assigned(new_id("cl"))
    await service.handle(earlier)
    client_ref = earlier.data.client_ref
    service.commands.clear()

    async with service.uow.command() as tx:
        chosen = Enrolment.choose(
            client_ref=client_ref,
            organisation_id=ORGANISATION,
            module=MONEY,
            language=Language.EN,
            waiting=True,
            at=NOW + timedelta(days=1),
        )
        await tx.enrolments.add(chosen)
        assert await tx.enrolments.get(chosen.id) is chosen
        submission = chosen.submit_homework(MONEY, "huiswerk-kasboek", ANSWER, NOW)
        await tx.enrolments.save(chosen)
        assert await tx.enrolments.by_submission(submission) is chosen
        listed = await tx.enrolments.of_client(ORGANISATION, client_ref)
        assert [e.id for e in listed] == [earlier.data.enrolment_id, chosen.id]
        assert listed[1] is chosen
        # A count the kept enrolments cannot give: they are written first, then counted.
        chosen.answer_questionnaire(MONEY, "zelfscan", SCORES, 0, NOW)
        await tx.enrolments.save(chosen)
        assert await tx.enrolments.questionnaires_answered(client_ref, "zelfscan-leefgebieden") == 1
        [written] = service.commands.to("enrolments", "insert")
        assert [d["_id"] for d in written["documents"]] == [chosen.id]
        chosen.complete_step(MONEY, "welkom", NOW)  # a change after that write: replaced
        await tx.enrolments.save(chosen)

    stored = await service.read(chosen.id)
    assert [s.answer for s in stored.submissions] == [ANSWER]
    assert len(stored.answers) == 1
    assert [s.step_id for s in stored.steps_done] == ["huiswerk-kasboek", "zelfscan", "welkom"]


async def test_an_erasure_takes_what_its_batch_added_and_changed_and_stops_later_feedback(
    service: Service,
):
    enrolment, [first, second] = await with_homework(service)
    client_ref = enrolment.client_ref
    assigned_in_batch = assigned(client_ref)
    someone_else = assigned(new_id("cl"))

    await service.in_batch(
        [
            assigned_in_batch,
            feedback(enrolment, first),
            erased(client_ref),
            feedback(enrolment, second),  # after the erasure: nothing left to give it to
            someone_else,
        ]
    )

    assert await service.db.enrolments.count_documents({"client_ref": client_ref}) == 0
    assert await service.db.client_keys.count_documents({"_id": client_ref}) == 0
    assert await service.db.enrolments.count_documents({}) == 1
    assert await service.read(someone_else.data.enrolment_id)


async def test_a_failed_bulk_write_comes_out_as_one_error_without_the_enrolment(
    service: Service,
):
    enrolment, _ = await with_homework(service)
    again = assigned(enrolment.client_ref, enrolment_id=enrolment.id)  # a second assignment
    fine = assigned(new_id("cl"))

    with pytest.raises(DuplicateKeyError) as raised:
        await service.in_batch([fine, again])

    # The whole batch undone, the stored enrolment as it was.
    assert await service.db.enrolments.count_documents({}) == 1
    assert len((await service.read(enrolment.id)).submissions) == 2
    # As a log would show it: the key, not the document that would have been written.
    logged = "".join(traceback.format_exception(raised.value))
    assert enrolment.id in logged
    assert enrolment.client_ref not in logged
    assert fine.data.client_ref not in logged
