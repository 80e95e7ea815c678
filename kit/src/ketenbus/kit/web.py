"""The HTTP side every service shares: /metrics, /healthz, /readyz and the AsyncAPI page."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError

from ketenbus.contracts.asyncapi import build_asyncapi
from ketenbus.contracts.envelope import new_event_id
from ketenbus.kit.errors import DomainError, TransientError
from ketenbus.kit.failures import is_transient
from ketenbus.kit.logs import configure_logging, get_logger, log_context
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.kit.settings import ServiceSettings

log = get_logger(__name__)


def create_app(service: Service, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or service.settings_class(service_name=service.name)
    configure_logging(service.name, settings.log_level)
    runtime = Runtime.build(service, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.dependencies = runtime.dependencies
        log.info("service started", http_port=settings.http_port)
        try:
            yield
        finally:
            log.info("service stopping")
            await runtime.stop()

    app = FastAPI(
        title=f"Ketenbus {service.name}", description=service.description, lifespan=lifespan
    )
    app.state.keyring = runtime.keyring
    for router in service.routers:
        app.include_router(router)
    _add_operations_routes(app, runtime)
    _add_error_handlers(app)
    _document_invalid_request(app)
    _add_correlation(app)
    return app


async def service_dependencies(request: Request) -> Any:
    """A FastAPI dependency: the service's dependencies, as its bootstrap built them when the
    app started. A service types it once, `Deps = Annotated[TrajectoryDependencies,
    Depends(service_dependencies)]`, and its routes ask for `deps: Deps`. It is async, as
    every dependency that awaits nothing should be: FastAPI runs a plain `def` dependency in
    a worker thread, a hand-over to another thread and back for every request."""
    return request.app.state.dependencies


def _add_operations_routes(app: FastAPI, runtime: Runtime) -> None:
    handled = tuple(runtime.service.handlers.handlers) if runtime.service.handlers else ()
    document = build_asyncapi(
        f"Ketenbus {runtime.service.name}",
        sends=runtime.service.publishes,
        receives=handled,
        description=runtime.service.description,
    )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await runtime.ready()
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive and its event loop answers."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Ready to work: database, broker, consumers and outbox all answer."""
        checks = await runtime.ready()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/asyncapi.json", tags=["operations"])
    async def asyncapi_json() -> dict[str, Any]:
        return document

    @app.get("/asyncapi", response_class=HTMLResponse, tags=["operations"])
    async def asyncapi_page() -> str:
        return render_asyncapi(document)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # The offending input is left out: it may be a person's name or phone number.
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in error.errors()
        ]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(DomainError)
    async def rule_broken(request: Request, error: DomainError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(error), "code": error.code}, status_code=error.status_code
        )

    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        if not is_transient(error):
            return await unexpected(request, error)
        log.warning(
            "request met a passing failure", path=request.url.path, error=type(error).__name__
        )
        return JSONResponse(
            {"detail": "temporarily unavailable, please retry", "code": "unavailable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    # Registered by class, these are answered inside the app: a handler for Exception runs in
    # Starlette's outermost middleware, which raises again after answering, and the client
    # may then see the connection close instead of the 503.
    for failure in (PyMongoError, KafkaError, TransientError, TimeoutError, ConnectionError):
        app.add_exception_handler(failure, unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("request failed", path=request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)


# What a 422 really holds, instead of FastAPI's default schema (which lists every error with
# the input that caused it): "invalid request" and the problems per field when the request did
# not validate (invalid_request above), or a sentence when a rule refused it (DomainError).
INVALID_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "InvalidRequest",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "what a program decides on (DomainError)"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. body.client.postcode"},
                    "problem": {"type": "string"},
                },
            },
        },
    },
}


def _document_invalid_request(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = INVALID_REQUEST_SCHEMA
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


class CorrelationMiddleware:
    """Every request carries a correlation id into the logs and back in the answer.

    Plain ASGI on purpose: Starlette's `@app.middleware("http")` runs the route in a task of
    its own and cancels it when the client goes away, and a cancel in the middle of a PyMongo
    call can wedge the client (see Runtime._mongo_answers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-correlation-id", b"")
        correlation_id = given.decode("latin-1")[:64] or new_event_id()

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k != b"x-correlation-id"
                ]
                headers.append((b"x-correlation-id", correlation_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(correlation_id=correlation_id):
            await self.app(scope, receive, send_with_id)


def _add_correlation(app: FastAPI) -> None:
    app.add_middleware(CorrelationMiddleware)


def render_asyncapi(document: dict[str, Any]) -> str:
    """A plain page that needs nothing from the internet, unlike the usual CDN viewer."""
    rows = []
    for _, operation in sorted(document["operations"].items()):
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        message_id = operation["messages"][0]["$ref"].rsplit("/", 1)[-1]
        message = document["components"]["messages"][message_id]
        data_ref = message["payload"]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
        data = message["payload"]["$defs"][data_ref]
        required = set(data.get("required", ()))
        fields = ", ".join(
            f"<code>{html.escape(name)}</code>{'' if name in required else '?'}"
            for name in data.get("properties", {})
        )
        rows.append(
            f"<tr><td>{operation['action']}</td><td><code>{html.escape(channel['address'])}</code></td>"
            f"<td><b>{html.escape(message['title'])}</b><br><small>{html.escape(message['summary'])}"
            f"</small><br><small><code>{html.escape(message['name'])}</code></small></td>"
            f"<td><small>{fields}</small></td></tr>"
        )
    title = html.escape(document["info"]["title"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title} events</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}}
code{{background:#f4f4f4;padding:0 .2rem}}</style></head><body>
<h1>{title}: events</h1><p>{html.escape(document["info"].get("description") or "")}</p>
<p>Every event travels in a CloudEvents 1.0 envelope; the machine-readable AsyncAPI 3.0 document is
at <a href="asyncapi.json">asyncapi.json</a>. Fields marked ? are optional.</p>
<table><tr><th>action</th><th>topic</th><th>event</th><th>fields</th></tr>{"".join(rows)}</table>
<script type="application/json" id="asyncapi">{html.escape(json.dumps(document))}</script>
</body></html>"""
