"""Intake's routes run no dependency in a worker thread (issue 9).

FastAPI runs a dependency declared with a plain `def` in anyio's thread pool: a hand-over
to another thread and back for every request, which the front door paid three times (the
service's dependencies, the API key, the rate limit). None of them awaits anything, so
they are `async def` and run on the event loop."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ketenbus.intake import api, fhir_api, signal_api


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


ROUTES = [
    route
    for router in (api.router, fhir_api.router, signal_api.router)
    for route in router.routes
    if isinstance(route, APIRoute)
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
def test_every_dependency_of_a_route_runs_on_the_event_loop(route: APIRoute):
    in_a_thread = [
        getattr(call, "__qualname__", repr(call))
        for call in _calls(route.dependant)
        if call is not None
        and not inspect.iscoroutinefunction(call)
        and not inspect.iscoroutinefunction(type(call).__call__)  # a Security scheme
    ]
    assert in_a_thread == []
