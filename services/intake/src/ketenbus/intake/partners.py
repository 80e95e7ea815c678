"""Partners on Kafka: opening what they seal, and telling them why a message was refused.

Reasons go on the partner's topic and into the dead-letter header: they name fields and
rules, never the values, which may be a person's name or phone number.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ReferralRejected
from ketenbus.contracts.topics import PARTNER_TOPIC_PATTERN
from ketenbus.contracts.values import Sealed
from ketenbus.intake.bootstrap import IntakeDependencies
from ketenbus.intake.personal import PersonalDetails
from ketenbus.kit.consumer import DeadLetter
from ketenbus.kit.errors import DomainError
from ketenbus.kit.logs import mask


class ReferralRefused(DomainError):
    """A partner's referral that can never be taken as it is."""


def refuse_unless(condition: bool, reason: str) -> None:
    if not condition:
        raise ReferralRefused(reason)


def open_client_details(sealed: Sealed, key: bytes | None, partner: str) -> PersonalDetails:
    if key is None:
        raise ReferralRefused(f"intake shares no key with {partner}: ask for one to be set up")
    try:
        plaintext = sealing.open_sealed(sealed, key)
    except (sealing.SealBroken, ValueError):
        raise ReferralRefused(
            "client: cannot be opened with the key you share with intake "
            "(sealed with another key, or altered)"
        ) from None
    try:
        return PersonalDetails.model_validate_json(plaintext)
    except ValidationError as error:
        raise ReferralRefused(f"client: {describe(error)}") from None


def describe(error: ValidationError) -> str:
    """Which fields are wrong and why, without the values."""
    problems = []
    for issue in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(p) for p in issue["loc"]) or "<root>"
        message = "not a valid e-mail address" if field == "email" else mask(issue["msg"])
        problems.append(f"{field}: {message}")
    return "; ".join(problems[:5])


def _what_it_said(value: bytes) -> tuple[str | None, str | None]:
    """The partner's reference and the event id, if the message is readable that far."""
    try:
        message: Any = json.loads(value)
        reference = message.get("data", {}).get("referrer_reference")
        event_id = message.get("id")
    except (ValueError, AttributeError):
        return None, None
    reference = reference if isinstance(reference, str) and 0 < len(reference) <= 200 else None
    event_id = event_id if isinstance(event_id, str) and 0 < len(event_id) <= 64 else None
    return reference, event_id


async def tell_partner(deps: IntakeDependencies, letter: DeadLetter) -> None:
    """A message on a partner's inbound topic went to the dead-letter topic: say why, once."""
    matched = PARTNER_TOPIC_PATTERN.match(letter.topic)
    if matched is None or matched.group(2) != "inbound":
        return
    partner = matched.group(1)
    reference, event_id = _what_it_said(letter.value)
    async with deps.uow.command() as tx:
        if not await tx.rejections.first_time(f"{letter.topic}/{letter.partition}/{letter.offset}"):
            return
        tx.publish(
            ReferralRejected(
                referrer_organisation_id=partner,
                referrer_reference=reference,
                source_event_id=event_id,
                reason=letter.reason[:1000],
                rejected_at=tx.clock.now(),
            )
        )
