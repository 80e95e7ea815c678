"""The module catalogue: self-help modules and the questionnaire, as data files.

Each module is a TOML file in `catalogue/` (one per module, named after its id); the
questionnaire lives in `catalogue/questionnaires/`. Every text comes in Dutch and English.
An organisation can point LEARNING_CATALOGUE_DIR at a directory of its own.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ketenbus.contracts.events import LifeDomainScores, QuestionnaireMoment
from ketenbus.contracts.values import Language, StepKind

ModuleKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
StepKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class Texts(BaseModel):
    """The same words in both languages: a missing translation is a catalogue error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nl: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def __call__(self, language: Language) -> str:
        return self.nl if language is Language.NL else self.en


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StepKey
    kind: StepKind
    title: Texts
    body: Texts
    url: str | None = Field(default=None, pattern=r"^https://")  # a video's link
    questionnaire: ModuleKey | None = None
    moment: QuestionnaireMoment | None = None  # None: baseline first time, then follow-up

    @model_validator(mode="after")
    def _complete(self) -> Step:
        if self.kind is StepKind.VIDEO and not self.url:
            raise ValueError(f"video step {self.id} needs a url")
        if self.kind is StepKind.QUESTIONNAIRE and not self.questionnaire:
            raise ValueError(f"questionnaire step {self.id} names no questionnaire")
        return self

    @property
    def answered_directly(self) -> bool:
        """Text, video and exercise steps are done when the client says so."""
        return self.kind not in (StepKind.QUESTIONNAIRE, StepKind.HOMEWORK)


class Module(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ModuleKey
    # A client on the waiting list may start it without a social worker.
    self_help: bool
    minutes: int = Field(ge=1, le=600)
    title: Texts
    summary: Texts
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_steps(self) -> Module:
        ids = [step.id for step in self.steps]
        if len(ids) != len(set(ids)):
            raise ValueError(f"module {self.id} has two steps with one id")
        return self

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def number_of(self, step_id: str) -> int:
        return [s.id for s in self.steps].index(step_id) + 1


class Domain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: Texts


class Questionnaire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ModuleKey
    title: Texts
    scale: Texts
    domains: tuple[Domain, ...]

    @model_validator(mode="after")
    def _the_six_domains(self) -> Questionnaire:
        expected = list(LifeDomainScores.model_fields)
        if [d.id for d in self.domains] != expected:
            raise ValueError(f"the questionnaire asks about exactly {expected}, in that order")
        return self


class Catalogue:
    def __init__(self, modules: list[Module], questionnaires: list[Questionnaire]) -> None:
        self.modules = {m.id: m for m in modules}
        self.questionnaires = {q.id: q for q in questionnaires}
        for module in modules:
            for step in module.steps:
                if step.questionnaire and step.questionnaire not in self.questionnaires:
                    raise ValueError(f"{module.id}/{step.id}: unknown {step.questionnaire}")

    def module(self, module_id: str) -> Module | None:
        return self.modules.get(module_id)

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalogue:
        root: Traversable = (
            directory if directory is not None else resources.files(__package__) / "catalogue"
        )
        modules = [Module.model_validate(_toml(f)) for f in _tomls(root)]
        questionnaires = [
            Questionnaire.model_validate(_toml(f)) for f in _tomls(root / "questionnaires")
        ]
        return cls(modules, questionnaires)


def _tomls(directory: Traversable) -> list[Traversable]:
    if not directory.is_dir():
        return []
    return sorted(
        (f for f in directory.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name
    )


def _toml(file: Traversable) -> dict[str, object]:
    data = tomllib.loads(file.read_text(encoding="utf-8"))
    if data.get("id") != file.name.removesuffix(".toml"):
        raise ValueError(f"{file.name}: the file is named after the module id")
    return data
