"""The module catalogue and the enrolment's rules, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ketenbus.contracts.events import (
    HomeworkSubmitted,
    LifeDomainScores,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
    QuestionnaireMoment,
)
from ketenbus.contracts.values import Language, StepKind, new_id
from ketenbus.kit.errors import DomainError
from ketenbus.learning import store
from ketenbus.learning.catalogue import Catalogue, Module
from ketenbus.learning.domain import Enrolment, EnrolmentStatus

CATALOGUE = Catalogue.load()
MONEY = CATALOGUE.modules["grip-op-je-geld"]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SCORES = LifeDomainScores(
    money=3, housing=6, health=5, social_contacts=4, daily_activities=5, wellbeing=4
)


def assigned(module: Module = MONEY) -> Enrolment:
    return Enrolment.assign(
        enrolment_id=new_id("enr"),
        client_ref=new_id("cl"),
        organisation_id="welzijn-utrecht",
        module=module,
        language=Language.NL,
        trajectory_id=new_id("trj"),
        at=T0,
    )


def kinds(enrolment: Enrolment) -> list[str]:
    return [type(e).__name__ for e in enrolment.events]


def work_through(enrolment: Enrolment, module: Module, start: datetime) -> None:
    for number, step in enumerate(module.steps, start=1):
        at = start + timedelta(days=number)
        if step.kind is StepKind.HOMEWORK:
            enrolment.submit_homework(module, step.id, "Ik geef veel uit aan eten.", at)
        elif step.kind is StepKind.QUESTIONNAIRE:
            enrolment.answer_questionnaire(module, step.id, SCORES, 0, at)
        else:
            enrolment.complete_step(module, step.id, at)


# ---------------------------------------------------------------- the catalogue


def test_the_catalogue_has_at_least_five_modules_each_with_every_kind_of_step():
    modules = [m for m in CATALOGUE.modules.values() if len(m.steps) > 1]
    assert len(modules) >= 5
    assert "grip-op-je-geld" in CATALOGUE.modules  # the demo and the skeleton use this id
    for module in modules:
        assert {s.kind for s in module.steps} == set(StepKind), module.id
        for text in (module.title, module.summary, *(s.body for s in module.steps)):
            assert text.nl and text.en and text.nl != text.en, module.id


def test_the_demo_modules_are_all_in_the_catalogue():
    for module_id in ("grip-op-je-geld", "omgaan-met-stress", "sterker-in-je-netwerk"):
        assert CATALOGUE.module(module_id) is not None


def test_the_self_scan_asks_about_the_six_life_domains_in_both_languages():
    scan = CATALOGUE.questionnaires["zelfscan-leefgebieden"]
    assert [d.id for d in scan.domains] == list(LifeDomainScores.model_fields)
    assert all(d.question.nl.endswith("?") and d.question.en.endswith("?") for d in scan.domains)
    assert CATALOGUE.modules["zelfscan-leefgebieden"].self_help


def test_a_module_file_with_a_missing_translation_is_refused(tmp_path):
    (tmp_path / "kapot.toml").write_text(
        'id = "kapot"\nself_help = true\nminutes = 5\n'
        'title = { nl = "Kapot" }\nsummary = { nl = "x", en = "x" }\n'
        '[[steps]]\nid = "a"\nkind = "text"\n'
        'title = { nl = "a", en = "a" }\nbody = { nl = "a", en = "a" }\n'
    )
    with pytest.raises(ValueError, match="en"):
        Catalogue.load(tmp_path)


# ---------------------------------------------------------------- working through a module


def test_working_through_every_step_completes_the_module_by_itself():
    enrolment = assigned()
    work_through(enrolment, MONEY, T0)
    assert enrolment.status is EnrolmentStatus.COMPLETED
    assert kinds(enrolment)[0] == "ModuleStarted"
    assert kinds(enrolment)[-1] == "ModuleCompleted"
    steps = [e for e in enrolment.events if isinstance(e, ModuleStepCompleted)]
    assert [s.step_number for s in steps] == list(range(1, len(MONEY.steps) + 1))
    assert {s.steps_total for s in steps} == {len(MONEY.steps)}
    assert sum(isinstance(e, HomeworkSubmitted) for e in enrolment.events) == 1
    assert sum(isinstance(e, QuestionnaireCompleted) for e in enrolment.events) == 1
    completed = enrolment.events[-1]
    assert isinstance(completed, ModuleCompleted)
    assert completed.steps_completed == completed.steps_total == len(MONEY.steps)


def test_homework_and_questionnaires_are_handed_in_not_ticked_off():
    enrolment = assigned()
    with pytest.raises(DomainError, match="handing in its homework"):
        enrolment.complete_step(MONEY, "huiswerk-kasboek", T0)
    with pytest.raises(DomainError, match="not homework"):
        enrolment.submit_homework(MONEY, "welkom", "antwoord", T0)
    with pytest.raises(DomainError, match="no step"):
        enrolment.complete_step(MONEY, "bestaat-niet", T0)


def test_homework_may_be_handed_in_again_but_a_step_counts_once():
    enrolment = assigned()
    first = enrolment.submit_homework(MONEY, "huiswerk-kasboek", "eerste versie", T0)
    second = enrolment.submit_homework(MONEY, "huiswerk-kasboek", "tweede versie", T0)
    assert first != second
    assert [s.answer for s in enrolment.submissions] == ["eerste versie", "tweede versie"]
    assert sum(isinstance(e, ModuleStepCompleted) for e in enrolment.events) == 1
    enrolment.complete_step(MONEY, "welkom", T0)
    with pytest.raises(DomainError, match="already done"):
        enrolment.complete_step(MONEY, "welkom", T0)


def test_the_first_self_scan_is_the_baseline_and_later_ones_follow_ups():
    first = assigned()
    assert first.answer_questionnaire(MONEY, "zelfscan", SCORES, 0, T0) is (
        QuestionnaireMoment.BASELINE
    )
    later = assigned()
    assert later.answer_questionnaire(MONEY, "zelfscan", SCORES, 1, T0) is (
        QuestionnaireMoment.FOLLOW_UP
    )
    aftercare = assigned(CATALOGUE.modules["terugkijken-en-vooruitkijken"])
    # The aftercare module says its scan is a follow-up, whatever came before.
    assert aftercare.answer_questionnaire(
        CATALOGUE.modules["terugkijken-en-vooruitkijken"], "zelfscan", SCORES, 0, T0
    ) is (QuestionnaireMoment.FOLLOW_UP)
    [event] = [e for e in first.events if isinstance(e, QuestionnaireCompleted)]
    assert event.scores == SCORES and event.questionnaire_id == "zelfscan-leefgebieden"
    with pytest.raises(DomainError, match="already answered"):
        first.answer_questionnaire(MONEY, "zelfscan", SCORES, 1, T0)


def test_marking_a_module_finished_early_says_how_far_the_client_got():
    enrolment = assigned()
    enrolment.complete_step(MONEY, "welkom", T0)
    enrolment.complete(MONEY, T0 + timedelta(days=1))
    completed = enrolment.events[-1]
    assert isinstance(completed, ModuleCompleted)
    assert (completed.steps_completed, completed.steps_total) == (1, len(MONEY.steps))
    with pytest.raises(DomainError, match="already completed"):
        enrolment.complete(MONEY, T0 + timedelta(days=2))
    with pytest.raises(DomainError, match="completed"):
        enrolment.complete_step(MONEY, "wat-is-een-kasboek", T0 + timedelta(days=2))


# ---------------------------------------------------------------- idle and waiting


def test_an_idle_enrolment_is_abandoned_after_the_set_time_and_may_be_picked_up_again():
    enrolment = assigned()
    enrolment.complete_step(MONEY, "welkom", T0 + timedelta(days=1))
    idle_for = timedelta(days=21)
    assert not enrolment.abandon_if_idle(T0 + timedelta(days=21), idle_for)
    assert enrolment.abandon_if_idle(T0 + timedelta(days=22), idle_for)
    abandoned = enrolment.events[-1]
    assert isinstance(abandoned, ModuleAbandoned)
    assert abandoned.steps_completed == 1
    assert abandoned.idle_since == T0 + timedelta(days=1)
    assert not enrolment.abandon_if_idle(T0 + timedelta(days=60), idle_for)  # once

    enrolment.complete_step(MONEY, "wat-is-een-kasboek", T0 + timedelta(days=30))
    assert enrolment.status is EnrolmentStatus.STARTED
    assert enrolment.idle_since == T0 + timedelta(days=30)


def test_a_never_started_assignment_counts_as_abandoned_from_the_assignment():
    enrolment = assigned()
    assert enrolment.abandon_if_idle(T0 + timedelta(days=21), timedelta(days=21))
    assert enrolment.events[-1].idle_since == T0  # type: ignore[attr-defined]
    assert enrolment.events[-1].steps_completed == 0  # type: ignore[attr-defined]


def test_a_module_left_idle_before_it_was_begun_counts_as_started_when_begun():
    # A client who opens their homework only weeks later: the module was counted as left
    # unfinished meanwhile, and is started now (before, it was completed without ever
    # being counted as started, and the figures missed it).
    for begin in (
        lambda e: e.start(T0 + timedelta(days=30)),
        lambda e: e.complete_step(MONEY, "welkom", T0 + timedelta(days=30)),
    ):
        enrolment = assigned()
        assert enrolment.abandon_if_idle(T0 + timedelta(days=21), timedelta(days=21))
        begin(enrolment)
        started = [e for e in enrolment.events if isinstance(e, ModuleStarted)]
        assert [e.started_at for e in started] == [T0 + timedelta(days=30)]
        assert enrolment.status is EnrolmentStatus.STARTED
        assert (enrolment.started_at, enrolment.abandoned_at) == (T0 + timedelta(days=30), None)

    # Begun, left, picked up again: started once.
    enrolment = assigned()
    enrolment.start(T0)
    assert enrolment.abandon_if_idle(T0 + timedelta(days=21), timedelta(days=21))
    enrolment.complete_step(MONEY, "welkom", T0 + timedelta(days=30))
    enrolment.start(T0 + timedelta(days=31))
    assert [e.started_at for e in enrolment.events if isinstance(e, ModuleStarted)] == [T0]


def test_only_a_waiting_client_enrols_themselves_and_only_in_self_help():
    def choose(module: Module, waiting: bool) -> Enrolment:
        return Enrolment.choose(
            client_ref=new_id("cl"),
            organisation_id="welzijn-utrecht",
            module=module,
            language=Language.EN,
            waiting=waiting,
            at=T0,
        )

    chosen = choose(CATALOGUE.modules["zelfscan-leefgebieden"], waiting=True)
    assert chosen.self_enrolled and chosen.status is EnrolmentStatus.STARTED
    [started] = chosen.events
    assert isinstance(started, ModuleStarted) and started.self_enrolled
    with pytest.raises(DomainError, match="waiting"):
        choose(MONEY, waiting=False)
    with pytest.raises(DomainError, match="self-help"):
        choose(CATALOGUE.modules["terugkijken-en-vooruitkijken"], waiting=True)


def test_homework_answers_never_show_in_a_repr():
    enrolment = assigned()
    enrolment.submit_homework(MONEY, "huiswerk-kasboek", "Mijn huur is te hoog", T0)
    assert "huur" not in repr(enrolment)


def test_an_enrolment_stored_before_started_at_was_kept_reads_as_begun_when_it_was():
    stored = {
        "_id": new_id("enr"),
        "client_ref": new_id("cl"),
        "organisation_id": "welzijn-utrecht",
    }
    stored |= {"module_id": MONEY.id, "enrolled_at": T0, "last_progress_at": T0 + timedelta(days=2)}
    step = {"step_id": "welkom", "completed_at": T0 + timedelta(days=1)}

    def read(**fields: object) -> Enrolment:
        return store._enrolment(stored | fields)

    assert read(status="enrolled").started_at is None
    assert read(status="abandoned").started_at is None  # left before a step: not known begun
    assert read(status="started").started_at == T0 + timedelta(days=2)
    assert read(status="abandoned", steps_done=[step]).started_at == T0 + timedelta(days=1)
    assert read(status="completed", steps_done=[step], started_at=T0).started_at == T0
