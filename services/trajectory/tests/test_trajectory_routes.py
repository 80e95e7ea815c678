"""Trajectory's routes run on the event loop (ketenbus.kit.threadpool says why)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from ketenbus.kit.threadpool import in_thread_pool
from ketenbus.trajectory.api import router


def test_no_route_sends_its_endpoint_or_a_dependency_to_the_thread_pool():
    assert len([r for r in router.routes if isinstance(r, APIRoute)]) > 10  # every action
    assert in_thread_pool([router]) == set()
