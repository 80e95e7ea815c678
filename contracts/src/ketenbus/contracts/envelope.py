"""The CloudEvents 1.0 envelope every Ketenbus event travels in, and its Kafka binding.

`type` carries the event name and its version (`nl.ketenbus.intake.ReferralReceived.v1`),
`subject` the pseudonymous client reference, which is also the Kafka key, so all events
about one person stay in order on their partition.

On Kafka the services produce the binding's *structured* mode: the whole envelope (JSON
event format) is the record's value, with `content-type: application/cloudevents+json`.
Structured, because one record is then one self-contained document: the outbox stores it,
the dead-letter tools and the replays move and read it as bytes, and a partner's record
forwarded elsewhere keeps its attributes. Beside it only headers outside the binding's
`ce_` namespace (`event_type`, `correlation_id`), so a tool can route without parsing:
`ce_` headers on a structured record make the CloudEvents SDK's mode detection
(`from_kafka`: any `ce_` header means binary) read it as binary, the envelope as data.

Readers accept both modes (`decode` with the record's headers): a *binary* record, with
every attribute in a `ce_` header and the data alone as value, is read into the same
`Envelope`. The Kafka key is the producer's own (`Event.key`), as the binding requires;
no `partitionkey` attribute is added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ketenbus.contracts.topics import Topic
from ketenbus.contracts.values import random_hex

TYPE_PREFIX = "nl.ketenbus"

# The Kafka binding: the media type of a structured record, the prefix of a binary record's
# attribute headers; and our own header naming the type of a structured record.
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CONTENT_TYPE_HEADER = "content-type"
ATTRIBUTE_HEADER_PREFIX = "ce_"
TYPE_HEADER = "event_type"

Headers = Iterable[tuple[str, bytes | str | None]]


class Event(BaseModel):
    """The data of one event. Subclasses name themselves, their owner and their version.

    Readers are tolerant: fields they do not know are ignored, so a producer may add an
    optional field to a published version without breaking older consumers (the schema
    check in `ketenbus.contracts.compatibility` allows exactly that and nothing more).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: ClassVar[str]
    owner: ClassVar[str]
    version: ClassVar[int] = 1
    stream: ClassVar[Topic | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    @classmethod
    def event_type(cls) -> str:
        return f"{TYPE_PREFIX}.{cls.owner}.{cls.name}.v{cls.version}"

    @property
    def subject(self) -> str:
        """Who the event is about: events about one client share it, so they stay in order."""
        return str(self.client_ref)  # type: ignore[attr-defined]

    @property
    def key(self) -> str:
        """The Kafka key: the subject, but for a record a compacted topic keeps per key."""
        return self.subject

    def destination(self) -> Topic:
        if self.stream is None:
            raise NotImplementedError(f"{self.name} names no topic")
        return self.stream


E = TypeVar("E", bound=Event)


class Envelope(BaseModel, Generic[E]):
    # CloudEvents allows extension attributes; a reader ignores the ones it does not know.
    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=64)
    source: str = Field(pattern=r"^/ketenbus/[a-z0-9-]+$")
    type: str = Field(pattern=r"^nl\.ketenbus\.[a-z0-9-]+\.[A-Za-z]+\.v[0-9]+$")
    time: AwareDatetime
    subject: str = Field(min_length=1, max_length=128)
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str = Field(min_length=1, max_length=64)
    causationid: str | None = Field(default=None, max_length=64)
    data: E

    @property
    def event(self) -> E:
        return self.data

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


@cache
def envelope_of(event_class: type[E]) -> type[Envelope[E]]:
    """`Envelope[event_class]`, made once. Pydantic's own cache of parametrised generics
    costs a quarter of a decode to look up, and forgets a class nobody else holds."""
    return Envelope[event_class]  # type: ignore[valid-type]


def new_event_id() -> str:
    return random_hex()


def wrap(
    event: E,
    *,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    time: datetime | None = None,
    event_id: str | None = None,
) -> Envelope[E]:
    """Put an event in its envelope. A new chain of work starts a new correlation id."""
    event_id = event_id or new_event_id()
    return envelope_of(type(event))(
        id=event_id,
        source=f"/ketenbus/{source}",
        type=type(event).event_type(),
        time=time or datetime.now(UTC),
        subject=event.subject,
        correlationid=correlation_id or event_id,
        causationid=causation_id,
        data=event,
    )


def structured_headers(envelope: Envelope[Any]) -> dict[str, str]:
    """The headers of an event's record in structured mode: the event format's media type,
    and the type and correlation outside the binding's `ce_` names, so tools route without
    parsing the value and no reader takes the record for a binary one."""
    return {
        CONTENT_TYPE_HEADER: STRUCTURED_CONTENT_TYPE,
        TYPE_HEADER: envelope.type,
        "correlation_id": envelope.correlationid,
    }


def caused_by(cause: Envelope[Any]) -> dict[str, str]:
    """The correlation and causation ids an event inherits from the event that caused it."""
    return {"correlation_id": cause.correlationid, "causation_id": cause.id}


class UndeliverableEvent(Exception):
    """A message that can never be processed as it is: it belongs in the dead-letter topic."""

    def __init__(self, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The type the message claims, once it was read that far (never its content).
        self.event_type = event_type


class MalformedEnvelope(UndeliverableEvent):
    pass


class UnknownEventType(UndeliverableEvent):
    pass


class UnsupportedEventVersion(UndeliverableEvent):
    pass


class InvalidEventData(UndeliverableEvent):
    pass


class _TypeOnly(BaseModel):
    """Just enough of the envelope to know which model reads the rest."""

    type: str


MAX_EVENT_BYTES = 256 * 1024


def _describe(issues: list[Any]) -> str:
    shown = "; ".join(
        f"{'.'.join(str(p) for p in issue['loc']) or '<root>'}: {issue['msg']}"
        for issue in issues[:3]
    )
    return shown + (f" (+{len(issues) - 3} more)" if len(issues) > 3 else "")


def _header_text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def is_binary_mode(headers: Headers) -> bool:
    """Whether a record is a binary-mode event: the binding's rule (a `content-type` of the
    CloudEvents media type means structured), and then only with a `ce_specversion` header,
    so a record with neither, or odd headers only, is read as the structured JSON it says."""
    names = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE_HEADER and _header_text(value).lower().startswith(
            "application/cloudevents"
        ):
            return False
        names.add(lowered)
    return f"{ATTRIBUTE_HEADER_PREFIX}specversion" in names


def type_in_headers(headers: Headers) -> str | None:
    """The event type a record's headers name, without reading its value: `event_type` on
    our structured records, `ce_type` on a binary one; None when they name none."""
    found: dict[str, str] = {}
    for name, value in headers:
        if name.lower() in (TYPE_HEADER, f"{ATTRIBUTE_HEADER_PREFIX}type"):
            found[name.lower()] = _header_text(value)
    return found.get(TYPE_HEADER) or found.get(f"{ATTRIBUTE_HEADER_PREFIX}type")


def _structured(value: bytes | str, headers: Headers) -> bytes:
    """A binary-mode record as the structured document it stands for: the `ce_` headers as
    attributes, `content-type` as `datacontenttype`, the value as `data`."""
    attributes: dict[str, Any] = {}
    for name, header in headers:
        lowered = name.lower()
        if lowered.startswith(ATTRIBUTE_HEADER_PREFIX):
            attributes[lowered.removeprefix(ATTRIBUTE_HEADER_PREFIX)] = _header_text(header)
        elif lowered == CONTENT_TYPE_HEADER:
            attributes["datacontenttype"] = _header_text(header)
    try:
        # Parsed, not pasted in: a value could otherwise close the object and add attributes.
        attributes["data"] = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEnvelope("binary-mode event whose data is not JSON") from None
    return json.dumps(attributes).encode()


def decode(
    raw: bytes | str, registry: dict[str, type[Event]], headers: Headers | None = None
) -> Envelope[Event]:
    """Read one message into a typed envelope, or say exactly why it can't be read.

    With the record's `headers`, a binary-mode record (see `is_binary_mode`) is read too;
    without them, or with other headers, the value is the structured envelope.
    Strict JSON-mode validation: no silent coercion of "12" into 12. Error messages never
    echo the offending input, which may hold personal data.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise MalformedEnvelope(f"message of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    if headers is not None:
        headers = tuple(headers)
        if is_binary_mode(headers):
            raw = _structured(raw, headers)
    try:
        event_type = _TypeOnly.model_validate_json(raw).type
    except ValidationError as exc:
        raise MalformedEnvelope(f"not an event envelope: {_describe(exc.errors())}") from None

    event_class = registry.get(event_type)
    if event_class is None:
        name, _, version = event_type.rpartition(".")
        known = sorted(t for t in registry if t.rpartition(".")[0] == name)
        if known:
            raise UnsupportedEventVersion(
                f"{event_type}: version {version} is not supported (known: {', '.join(known)})",
                event_type=event_type,
            )
        raise UnknownEventType(f"unknown event type {event_type!r}", event_type=event_type)
    try:
        return envelope_of(event_class).model_validate_json(raw, strict=True)
    except ValidationError as exc:
        issues = exc.errors(include_url=False, include_input=False)
        if all(issue["loc"][:1] == ("data",) for issue in issues):
            raise InvalidEventData(
                f"{event_type}: {_describe(issues)}", event_type=event_type
            ) from None
        raise MalformedEnvelope(
            f"invalid envelope: {_describe(issues)}", event_type=event_type
        ) from None
