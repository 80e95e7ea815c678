"""Events as their owners publish them, for the tests of the services that read them (no
personal data of anyone real)."""

from __future__ import annotations

import json
from datetime import datetime

from ketenbus.contracts import sealing
from ketenbus.contracts.events import ClientContactShared
from ketenbus.contracts.values import Channel, Language


def contact_card_shared(
    client_ref: str,
    organisation_id: str,
    contact_key: bytes,
    at: datetime,
    *,
    name: str = "Noor",
    phone: str | None = None,
    email: str | None = None,
) -> ClientContactShared:
    """Intake's card for notifications: the contact sealed with a data key of its own,
    wrapped for the holder of `contact_key` (notifications' contact-sharing key). SMS is
    the channel preferred when there is a phone number, else e-mail."""
    card = json.dumps({"name": name, "phone": phone, "email": email}).encode()
    return ClientContactShared(
        client_ref=client_ref,
        organisation_id=organisation_id,
        language=Language.NL,
        preferred_channel=Channel.SMS if phone else Channel.EMAIL,
        contact=sealing.seal(
            card, data_key=sealing.new_key(), key_id=client_ref, recipient_key=contact_key
        ),
        shared_at=at,
    )
