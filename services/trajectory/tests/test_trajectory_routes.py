"""Trajectory's routes run on the event loop: FastAPI runs a plain (not async) function,
endpoint or dependency, in its thread pool, a hop there and back on every request. For the
look-ups in memory the routes depend on (the key, the unit of work), the hops cost more than
the look-ups: at 100 appointments a second, about a tenth of trajectory's busy time."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ketenbus.trajectory.api import router


def _awaited(call: Any) -> bool:
    """Whether FastAPI awaits it on the loop: a coroutine function, or an object (the bearer
    scheme) whose __call__ is one."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 (a callable object's method is meant)
    )


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def test_no_route_sends_its_endpoint_or_a_dependency_to_the_thread_pool():
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    assert len(routes) > 10  # every action on a trajectory
    threaded = {
        f"{route.path} {getattr(call, '__qualname__', type(call).__name__)}"
        for route in routes
        for call in _calls(route.dependant)
        if not _awaited(call)
    }
    assert threaded == set()
