"""A stand-in for a Ketenbus service process, for testing EmbeddedStack without the services.

Run as `python -m fake_service` (with this directory on PYTHONPATH). It serves, on
HTTP_HOST:HTTP_PORT, what the stack relies on: GET /readyz (200 once ready), GET /healthz,
and GET /env, which shows the settings it was given. Knobs, from the environment:
- FAKE_READY_AFTER: seconds after start before /readyz answers 200 (default 0);
- FAKE_EXIT_CODE: exit at once with this status, after a line on stderr (a broken service).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SETTINGS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_USERNAME",
    "MONGODB_URL",
    "MONGODB_DATABASE",
    "HTTP_HOST",
    "HTTP_PORT",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMS_PROVIDER_URL",
    "KETENBUS_MASTER_KEY",
    "CONTACT_SHARING_KEY",
    "PSEUDONYM_KEY",
    "KETENBUS_HOME",
    "LOG_LEVEL",
)


def main() -> None:
    if "FAKE_EXIT_CODE" in os.environ:
        print("fake service: cannot connect to the broker (on purpose)", file=sys.stderr)
        raise SystemExit(int(os.environ["FAKE_EXIT_CODE"]))
    ready_at = time.monotonic() + float(os.environ.get("FAKE_READY_AFTER", "0"))
    visible = {k: v for k, v in os.environ.items() if k in SETTINGS or k.startswith("KETENBUS_")}
    visible.update({k: v for k, v in os.environ.items() if k.startswith("FAKE_")})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/readyz":
                ready = time.monotonic() >= ready_at
                self._answer(200 if ready else 503, {"ready": ready})
            elif self.path == "/healthz":
                self._answer(200, {"status": "ok"})
            elif self.path == "/env":
                self._answer(200, {**visible, "pid": os.getpid()})
            else:
                self._answer(404, {"error": "not found"})

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((os.environ["HTTP_HOST"], int(os.environ["HTTP_PORT"])), Handler)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(
        f"fake service listening on {os.environ['HTTP_HOST']}:{os.environ['HTTP_PORT']}", flush=True
    )
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        print("fake service stopped", flush=True)


if __name__ == "__main__":
    main()
