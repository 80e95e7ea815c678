"""JSON logs with correlation ids, and nothing personal in them, ever.

Every log line, ours or a library's, goes through the same processors, the last of which
removes personal data: known personal keys are dropped and e-mail addresses, phone numbers,
postcodes and dates of birth are masked wherever they appear in a value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

PERSONAL_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "phone",
        "phone_number",
        "mobile",
        "email",
        "e_mail",
        "address",
        "street",
        "postcode",
        "postal_code",
        "date_of_birth",
        "birth_date",
        "dob",
        "bsn",
        "contact",
        "client",
        "body",
        "text",
        "message_body",
    }
)
_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"(?<!\w)(\+31|0031|0)[\s-]?[1-9](?:[\s-]?\d){8}(?!\w)"), "<phone>"),
    (re.compile(r"(?<![\w-])[1-9]\d{3}\s?[A-Za-z]{2}(?![\w])"), "<postcode>"),
    (re.compile(r"\b(19|20)\d{2}-\d{2}-\d{2}(?!T)\b"), "<date>"),
    (re.compile(r"\b\d{2}-\d{2}-(19|20)\d{2}\b"), "<date>"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {
            k: ("<redacted>" if str(k).lower() in PERSONAL_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def drop_personal_data(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The last line of defence: it runs on the fully rendered event, tracebacks included."""
    return {
        key: ("<redacted>" if key.lower() in PERSONAL_KEYS else _scrub(value))
        for key, value in event_dict.items()
    }


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            drop_personal_data,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about routine group coordination.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind correlation and causation ids (or other safe values) for the work inside."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
