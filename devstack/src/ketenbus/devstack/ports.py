"""Loopback TCP ports: picking free ones and probing whether something listens.

Everything binds to 127.0.0.1 only: the stack is for one developer's machine or one test run
and must never be reachable from the network.
"""

from __future__ import annotations

import os
import random
import socket

LOOPBACK = "127.0.0.1"
# Parallel test workers each pick from a range of their own (below the kernel's ephemeral
# range, so no outgoing connection holds one): two processes asking the kernel for a free
# port could both be offered one the other is about to bind.
PORT_RANGE_VARIABLE = "KETENBUS_PORT_RANGE"

# Ports this process has already handed out. The kernel may offer a port again as soon as the
# probing socket is closed, and two servers of one stack must never be given the same port.
_handed_out: set[int] = set()


def is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers (uvicorn, tokio, asyncio) set SO_REUSEADDR; probe the same way so a port that
        # only has connections in TIME_WAIT counts as free, as it is for them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_range() -> range | None:
    """The ports this process may hand out ("20000-25999" in KETENBUS_PORT_RANGE), if set."""
    value = os.environ.get(PORT_RANGE_VARIABLE)
    if not value:
        return None
    try:
        low, high = (int(part) for part in value.split("-"))
    except ValueError:
        raise ValueError(
            f"{PORT_RANGE_VARIABLE}={value!r}: expected two ports, like 20000-25999"
        ) from None
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"{PORT_RANGE_VARIABLE}={value!r}: ports must lie in 1024-65535")
    return range(low, high + 1)


def _candidate(allowed: range | None) -> int:
    if allowed is not None:
        return random.choice(allowed)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def free_port() -> int:
    """A loopback port nothing listens on and that this process has not handed out before
    (from KETENBUS_PORT_RANGE when set, otherwise any the kernel offers)."""
    allowed = port_range()
    for _ in range(200):
        port = _candidate(allowed)
        if port not in _handed_out and (allowed is None or is_free(port)):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")  # pragma: no cover - all taken


def preferred_or_free(preferred: int | None) -> int:
    """The preferred port when it is free (stable URLs for people), otherwise any free port."""
    if preferred is not None and preferred not in _handed_out and is_free(preferred):
        _handed_out.add(preferred)
        return preferred
    return free_port()


def accepts_connections(port: int, host: str = LOOPBACK, timeout: float = 0.25) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
