"""Which of a router's endpoints and dependencies FastAPI runs in its thread pool.

FastAPI runs a plain (not async) function, endpoint or dependency, in anyio's thread pool:
a hand-over to another thread and back on every request. For the look-ups in memory a route
depends on (the API key, the service's dependencies, a rate limit) the hand-overs cost more
than the look-ups (issue 9: about a tenth of trajectory's busy time at 100 appointments a
second), so tests/test_routes_on_the_loop.py asserts that no service's route has one.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def in_thread_pool(routers: Iterable[APIRouter]) -> set[str]:
    """'path name' of each endpoint or dependency of the routers' routes that would run in
    the thread pool; empty when every one runs on the event loop."""
    return {
        f"{route.path} {getattr(call, '__qualname__', type(call).__name__)}"
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if not _awaited(call)
    }


def _awaited(call: Any) -> bool:
    """A coroutine function, or an object (a security scheme) whose __call__ is one."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 (a callable object's method is meant)
    )


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)
