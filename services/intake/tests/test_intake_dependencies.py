"""Intake's routes run on the event loop (ketenbus.kit.threadpool says why): the front door
paid three hand-overs to a worker thread per referral (the service's dependencies, the API
key, the rate limit)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from ketenbus.intake import api, fhir_api, signal_api
from ketenbus.kit.threadpool import in_thread_pool

ROUTERS = (api.router, fhir_api.router, signal_api.router)


def test_no_route_sends_its_endpoint_or_a_dependency_to_the_thread_pool():
    assert len([r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]) > 10
    assert in_thread_pool(ROUTERS) == set()
