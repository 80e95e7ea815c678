"""Every service's routes run on the event loop (ketenbus.kit.threadpool says why): no
endpoint or dependency is handed to FastAPI's thread pool on each request."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from ketenbus.analytics.app import service as analytics
from ketenbus.intake.app import service as intake
from ketenbus.kit.runtime import Service
from ketenbus.kit.threadpool import in_thread_pool
from ketenbus.learning.app import service as learning
from ketenbus.notifications.app import service as notifications
from ketenbus.trajectory.app import service as trajectory

# The business case's assumptions are query parameters gathered in a pydantic model, which
# FastAPI builds in the pool; a manager asks for it now and then, not on a hot path.
EXPECTED = {"analytics": {"/v1/business-case Assumptions"}}


@pytest.mark.parametrize(
    "service", [intake, trajectory, notifications, learning, analytics], ids=lambda s: s.name
)
def test_no_route_sends_its_endpoint_or_a_dependency_to_the_thread_pool(service: Service):
    assert [r for router in service.routers for r in router.routes if isinstance(r, APIRoute)]
    assert in_thread_pool(service.routers) == EXPECTED.get(service.name, set())
