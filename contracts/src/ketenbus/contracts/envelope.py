"""The CloudEvents 1.0 envelope (structured JSON) every Ketenbus event travels in.

`type` carries the event name and its version (`nl.ketenbus.intake.ReferralReceived.v1`),
`subject` the pseudonymous client reference, which is also the Kafka key, so all events
about one person stay in order on their partition.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ketenbus.contracts.topics import Topic

TYPE_PREFIX = "nl.ketenbus"


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
    return uuid.uuid4().hex


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


def caused_by(cause: Envelope[Any]) -> dict[str, str]:
    """The correlation and causation ids an event inherits from the event that caused it."""
    return {"correlation_id": cause.correlationid, "causation_id": cause.id}


class UndeliverableEvent(Exception):
    """A message that can never be processed as it is: it belongs in the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def decode(raw: bytes | str, registry: dict[str, type[Event]]) -> Envelope[Event]:
    """Read one message into a typed envelope, or say exactly why it can't be read.

    Strict JSON-mode validation: no silent coercion of "12" into 12. Error messages never
    echo the offending input, which may hold personal data.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise MalformedEnvelope(f"message of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
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
                f"{event_type}: version {version} is not supported (known: {', '.join(known)})"
            )
        raise UnknownEventType(f"unknown event type {event_type!r}")
    try:
        return envelope_of(event_class).model_validate_json(raw, strict=True)
    except ValidationError as exc:
        issues = exc.errors(include_url=False, include_input=False)
        if all(issue["loc"][:1] == ("data",) for issue in issues):
            raise InvalidEventData(f"{event_type}: {_describe(issues)}") from None
        raise MalformedEnvelope(f"invalid envelope: {_describe(issues)}") from None
