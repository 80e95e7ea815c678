"""Learning wired: the module catalogue, enrolments from assignments and from clients who
wait, the client portal's HTTP API (and its Koppeltaal view in FHIR), and the check for
modules left idle."""

from __future__ import annotations

from ketenbus.contracts.events import (
    HomeworkSubmitted,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    QuestionnaireCompleted,
)
from ketenbus.kit.runtime import Service
from ketenbus.learning import api, fhir_api
from ketenbus.learning.abandonment import watch_idle_enrolments
from ketenbus.learning.bootstrap import LearningDependencies, bootstrap
from ketenbus.learning.handlers import handlers
from ketenbus.learning.settings import LearningSettings

service: Service[LearningDependencies] = Service(
    name="learning",
    description="Self-help modules and questionnaires: assigned or chosen while waiting, "
    "worked through step by step, completed or left idle.",
    handlers=handlers,
    routers=[api.router, fhir_api.router],
    publishes=[
        ModuleStarted,
        ModuleStepCompleted,
        HomeworkSubmitted,
        QuestionnaireCompleted,
        ModuleCompleted,
        ModuleAbandoned,
    ],
    settings_class=LearningSettings,
    bootstrap=bootstrap,
    background=[watch_idle_enrolments],
)
