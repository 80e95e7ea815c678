"""A local SMS provider: accepts every JSON POST on loopback and keeps it as a JSON line.

The notifications service's real SMS adapter is pointed at it (SMS_PROVIDER_URL) instead of a
provider's HTTP API. For failure tests the next answers can be scripted:
`POST /_control/script {"statuses": [500, 200]}` answers the next request with 500 (not
delivered) and the one after with 200. `"hold_seconds": [0, 30]` (optional, by position)
keeps a delivered message's answer back that long: the message is stored, the sender waits,
as when a connection breaks after the provider accepted. Run it with
`python -m ketenbus.devstack.sms_sink --host 127.0.0.1 --port P --dir D`.

Like real providers it keeps its promises about repeats: a POST with an `Idempotency-Key`
header that was delivered before is answered with the first message's id and not delivered
again, and `GET /<path>?reference=R` lists the delivered messages whose body's "reference"
(or whose Idempotency-Key) is R, as `{"messages": [...]}`.

Files in the directory:
- messages.jsonl: what was delivered, one `{"received_at", "path", "body", "id"}` per line
  (plus "idempotency_key" when the request had one);
- attempts.jsonl: every request, delivered or not, with the status it was answered with
  ("duplicate": true for a repeat that was not delivered again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ketenbus.devstack import ports
from ketenbus.devstack.processes import PendingStart, RunningProcess

MESSAGES = "messages.jsonl"
ATTEMPTS = "attempts.jsonl"

Status = Annotated[int, Field(ge=200, le=599)]


class Script(BaseModel):
    statuses: list[Status]
    hold_seconds: list[Annotated[float, Field(ge=0, le=600)]] = []


def _append_line(path: Path, record: dict[str, Any]) -> None:
    # One write of one whole line: a reader sees complete lines or nothing of a new one.
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def create_app(directory: Path) -> FastAPI:
    directory.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Ketenbus SMS sink", docs_url=None, redoc_url=None, openapi_url=None)
    script: deque[int] = deque()
    holds: deque[float] = deque()
    # Idempotency-Key -> the id of the message delivered for it (also after a restart).
    delivered: dict[str, str] = {
        record["idempotency_key"]: record["id"]
        for record in read_sms(directory)
        if record.get("idempotency_key")
    }

    @app.get("/_control/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_control/script")
    async def show_script() -> dict[str, list[int]]:
        return {"statuses": list(script)}

    @app.post("/_control/script")
    async def set_script(body: Script) -> dict[str, list[int]]:
        script.clear()
        script.extend(body.statuses)
        holds.clear()
        holds.extend(body.hold_seconds)
        return {"statuses": list(script)}

    @app.delete("/_control/script")
    async def clear_script() -> dict[str, list[int]]:
        script.clear()
        holds.clear()
        return {"statuses": []}

    @app.get("/{path:path}")
    async def look_up(path: str, reference: str | None = None) -> JSONResponse:
        if reference is None:
            return JSONResponse({"error": "ask with ?reference="}, status_code=404)
        found = [
            record
            for record in read_sms(directory)
            if record.get("idempotency_key") == reference
            or (isinstance(record["body"], dict) and record["body"].get("reference") == reference)
        ]
        return JSONResponse({"messages": found})

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> JSONResponse:
        received_at = datetime.now(UTC).isoformat()
        raw = await request.body()
        key = request.headers.get("idempotency-key")
        attempt: dict[str, Any] = {"received_at": received_at, "path": f"/{path}"}
        if key and key in delivered:
            # A repeat of a delivered message: the same answer, no second SMS.
            _append_line(
                directory / ATTEMPTS,
                {**attempt, "body": None, "status": 200, "id": delivered[key], "duplicate": True},
            )
            return JSONResponse({"id": delivered[key], "status": "accepted"}, status_code=200)
        hold = holds.popleft() if holds else 0.0
        try:
            body = json.loads(raw)
        except ValueError:
            body, status, error = raw.decode(errors="replace"), 400, "body is not JSON"
        else:
            status, error = (script.popleft() if script else 200), "scripted failure"
        attempt["body"] = body
        if status >= 400:
            # A failed attempt is not a delivery: only attempts.jsonl records it.
            _append_line(directory / ATTEMPTS, {**attempt, "status": status, "id": None})
            return JSONResponse({"status": "rejected", "error": error}, status_code=status)
        message_id = str(uuid.uuid4())
        if key:
            attempt["idempotency_key"] = key
            delivered[key] = message_id
        _append_line(directory / ATTEMPTS, {**attempt, "status": status, "id": message_id})
        _append_line(directory / MESSAGES, {**attempt, "id": message_id})
        if hold:
            await asyncio.sleep(hold)  # delivered, but the sender hears nothing for a while
        return JSONResponse({"id": message_id, "status": "accepted"}, status_code=status)

    return app


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):  # a line still being written has no newline yet
            records.append(json.loads(line))
    return records


def read_sms(directory: Path | str) -> list[dict[str, Any]]:
    """Every delivered message, oldest first: dicts with received_at, path, body and id."""
    return _read_lines(Path(directory) / MESSAGES)


def read_sms_attempts(directory: Path | str) -> list[dict[str, Any]]:
    """Every request the sink answered, delivered or not, with its status."""
    return _read_lines(Path(directory) / ATTEMPTS)


def script_statuses(
    sink_url: str, statuses: Sequence[int], hold_seconds: Sequence[float] = ()
) -> None:
    """Make the sink answer its next requests with these statuses, in order (and hold the
    answers back this long, by position)."""
    response = httpx.post(
        f"{sink_url}/_control/script",
        json={"statuses": list(statuses), "hold_seconds": list(hold_seconds)},
    )
    response.raise_for_status()


def clear_script(sink_url: str) -> None:
    httpx.delete(f"{sink_url}/_control/script").raise_for_status()


def is_healthy(port: int) -> bool:
    try:
        response = httpx.get(f"http://{ports.LOOPBACK}:{port}/_control/health", timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def begin_sms_sink(
    directory: Path,
    log_path: Path,
    *,
    port: int | None = None,
    timeout: float = 20.0,
    outlive_caller: bool = True,
) -> PendingStart:
    """Run the SMS sink as its own process; its `url` is the base URL `http://127.0.0.1:PORT`."""

    def argv(chosen: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ketenbus.devstack.sms_sink",
            "--host",
            ports.LOOPBACK,
            "--port",
            str(chosen),
            "--dir",
            str(directory),
        ]

    return PendingStart(
        "sms",
        argv,
        log_path=log_path,
        ready=is_healthy,
        url_for=lambda chosen: f"http://{ports.LOOPBACK}:{chosen}",
        ready_line="Uvicorn running on",
        port=port,
        timeout=timeout,
        outlive_caller=outlive_caller,
    )


def start_sms_sink(*args: Any, **kwargs: Any) -> RunningProcess:
    """begin_sms_sink(...) and wait until it is ready."""
    return begin_sms_sink(*args, **kwargs).wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.devstack.sms_sink")
    parser.add_argument("--host", default=ports.LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where the .jsonl files are kept")
    args: Any = parser.parse_args(argv)
    print(f"sms sink storing in {args.dir}", flush=True)
    uvicorn.run(create_app(args.dir), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
