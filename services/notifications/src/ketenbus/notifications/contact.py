"""The client's contact card: opened from its seal only at the moment of sending.

Intake seals {name, phone, email} with the client's own data key, wrapped with the key it
shares with notifications. Notifications keeps the seal as it came and never writes the
card down in the clear. To find a client by phone number (a STOP reply) it keeps a keyed
hash of the number, a blind index that says nothing without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel, Sealed

_NOT_DIGITS = re.compile(r"[^0-9+]")


@dataclass(frozen=True)
class ContactCard:
    name: str
    phone: str | None
    email: str | None

    def address(self, channel: Channel) -> str | None:
        if channel is Channel.EMAIL:
            return self.email
        return international_number(self.phone) if self.phone else None

    def channels(self) -> set[Channel]:
        return {channel for channel in Channel if self.address(channel)}

    def __repr__(self) -> str:  # never in a log or a traceback
        return "ContactCard(<sealed>)"


def open_card(sealed: Sealed, contact_key: bytes) -> ContactCard | None:
    """The card, or None when it cannot be opened (another CONTACT_SHARING_KEY, or the data
    was changed). Intake's shredding does not close it: the card carries the client's data
    key wrapped for us, which is why erasure deletes the card here."""
    try:
        card = json.loads(sealing.open_sealed(sealed, contact_key))
    except sealing.SealBroken:
        return None
    return ContactCard(
        name=str(card.get("name") or "").strip() or "",
        phone=card.get("phone") or None,
        email=card.get("email") or None,
    )


def international_number(phone: str) -> str | None:
    """A Dutch number in the E.164 form providers expect: "06-12345678" -> "+31612345678"."""
    digits = _NOT_DIGITS.sub("", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0"):
        digits = "+31" + digits[1:]
    elif not digits.startswith("+"):
        return None
    return digits if 9 <= len(digits) <= 16 else None


def index_key(contact_key: bytes) -> bytes:
    """A key of its own for the blind index, derived so that no extra secret is needed."""
    return hmac.new(contact_key, b"ketenbus-notifications/phone-index", hashlib.sha256).digest()


def phone_index(phone: str | None, key: bytes) -> str | None:
    number = international_number(phone) if phone else None
    if number is None:
        return None
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()
