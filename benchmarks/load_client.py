"""The load's own HTTP/1.1 client: JSON POSTs on kept-alive loopback connections.

Why not httpx: the load runs on the same two cores as the chain it measures, and through
httpx it used 2.2 ms of CPU per referral at 100/s, three quarters of it inside httpx and
httpcore (a pool that asks each idle connection at every request whether the server closed
it, anyio's cancel scopes, h11's checks): a tenth of the 20 ms two cores have for each of
100 requests a second, taken from the chain. What the load needs is small: a request line,
a few headers and a body out; a status line, Content-Length and the body in. An answer of
another shape (chunked, without a length) is an error of the stage, not something to handle.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Idle connections are dropped well before uvicorn's keep-alive (5 s) closes them, so that a
# request never goes out on a connection the server is just closing.
IDLE_SECONDS = 2.0


class LoadError(Exception):
    """A request without an answer: refused, closed, timed out (the cause's name), or an
    answer of another shape. Its message is what the stage counts."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class LoadClient:
    """Kept-alive connections per host and port, as many as requests are under way."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def post(self, url: str, *, json: Any, headers: Mapping[str, str]) -> Answer:
        """POST `json` to `url`; the answer, or LoadError."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = _dumps(json)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode("latin-1") + body
        connection = await self._connection(host, port)
        try:
            async with asyncio.timeout(self.timeout):
                connection.writer.write(request)
                answer, keep = await _read_answer(connection.reader)
        except (OSError, EOFError, TimeoutError, ValueError) as error:
            connection.close()
            raise LoadError(type(error).__name__) from error
        except BaseException:
            connection.close()
            raise
        if keep:
            connection.idle_since = time.monotonic()
            self._idle.setdefault((host, port), []).append(connection)
        else:
            connection.close()
        return answer

    async def _connection(self, host: str, port: int) -> _Connection:
        idle = self._idle.get((host, port), [])
        while idle:
            connection = idle.pop()
            if (
                time.monotonic() - connection.idle_since < IDLE_SECONDS
                and not connection.reader.at_eof()
            ):
                return connection
            connection.close()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as error:
            raise LoadError(type(error).__name__) from error
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The answer, and whether the connection may be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
        elif name == b"transfer-encoding":
            raise LoadError("an answer in chunks")
    if length is None:
        raise LoadError("an answer without Content-Length")
    return Answer(status, await reader.readexactly(length)), keep


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
