"""`python -m ketenbus.<service>`: read settings, build the app, serve it until told to stop."""

from __future__ import annotations

import uvicorn

from ketenbus.kit.runtime import Service
from ketenbus.kit.web import create_app


def serve(service: Service) -> None:
    settings = service.settings_class(service_name=service.name)
    app = create_app(service, settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",  # libuv's loop and the C HTTP parser: a fraction of the pure-Python
        http="httptools",  # ones' CPU per request and per socket write (kit/pyproject.toml)
        log_config=None,
        access_log=False,
        # Longer than clients keep an idle connection (httpx: 5 s), so a request never
        # lands on a connection the server is just closing.
        timeout_keep_alive=30,
        # SIGTERM: stop taking requests, finish the message in hand, commit, then exit.
        timeout_graceful_shutdown=20,
    )
