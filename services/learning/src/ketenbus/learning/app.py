"""Learning wired: the module catalogue, enrolments from assignments and from clients who
wait, the client portal's HTTP API, and the check for modules left idle."""

from __future__ import annotations

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    HomeworkSubmitted,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
)
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.learning import api, store
from ketenbus.learning.abandonment import watch_idle_enrolments
from ketenbus.learning.catalogue import Catalogue
from ketenbus.learning.handlers import handlers
from ketenbus.learning.settings import LearningSettings

log = get_logger(__name__)


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, LearningSettings)
    await store.ensure_indexes(runtime.db)
    master = settings.learning_master_key
    if master is None:
        log.warning("no LEARNING_MASTER_KEY: homework keys are stored unwrapped")
    else:
        runtime.uow.resources["homework_master_key"] = sealing.key_from_text(
            master.get_secret_value()
        )
    key = settings.feedback_sharing_key
    if key is None:
        log.warning("no FEEDBACK_SHARING_KEY: clients cannot read their worker's feedback")
    runtime.dependencies.update(
        catalogue=Catalogue.load(settings.learning_catalogue_dir),
        feedback_key=sealing.key_from_text(key.get_secret_value()) if key else None,
    )


service = Service(
    name="learning",
    description="Self-help modules and questionnaires: assigned or chosen while waiting, "
    "worked through step by step, completed or left idle.",
    handlers=handlers,
    routers=[api.router],
    publishes=[
        ModuleStarted,
        ModuleStepCompleted,
        HomeworkSubmitted,
        QuestionnaireCompleted,
        ModuleCompleted,
        ModuleAbandoned,
    ],
    transaction_class=store.LearningTransaction,
    settings_class=LearningSettings,
    prepare=prepare,
    background=[watch_idle_enrolments],
)
