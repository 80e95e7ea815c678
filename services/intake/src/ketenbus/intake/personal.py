"""The client's personal data: kept only here, encrypted with the client's own key.

Each client gets a random data key, stored wrapped with the master key. Erasure deletes
that key ("crypto-shredding"): intake's own encrypted copy becomes unreadable at once (and in
every backup taken after the erasure). It does not reach copies sealed for a recipient: a
sealed copy carries the data key wrapped with the recipient's key, so the recipient can still
open it. Notifications deletes its copy when it handles the erasure; copies on topics stay
readable to their recipient until the topic's retention removes them (docs/security.md,
"Erasure: what it reaches and what it does not").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel, Language, Sealed


class PersonalDetails(BaseModel):
    """Who the client is and how to reach them. Never logged, never on the bus in clear."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=120)
    date_of_birth: date
    postcode: str = Field(pattern=r"^[1-9][0-9]{3} ?[A-Za-z]{2}$", description="e.g. 3511 AB")
    phone: str | None = Field(default=None, pattern=r"^(\+31|0)[1-9][0-9 -]{7,12}$")
    email: EmailStr | None = None
    language: Language = Language.NL
    preferred_channel: Channel = Channel.EMAIL

    @field_validator("date_of_birth")
    @classmethod
    def _plausible(cls, born: date) -> date:
        if not date(1900, 1, 1) <= born <= date.today():
            raise ValueError("date of birth must lie between 1900 and today")
        return born

    @property
    def postcode_area(self) -> str:
        return self.postcode[:4]

    def contact_card(self) -> bytes:
        """What notifications needs to reach the client, and no more."""
        return json.dumps(
            {"name": self.name.split()[0], "phone": self.phone, "email": self.email}
        ).encode()

    def partner_card(self) -> bytes:
        """What a debt-counselling partner needs to call the client: name, phone, language."""
        return json.dumps(
            {"name": self.name, "phone": self.phone, "language": self.language.value}
        ).encode()


def identity_hash(pseudonym_key: bytes, details: PersonalDetails) -> str:
    """Recognises the same person again without keeping who it is in a searchable form."""
    name = unicodedata.normalize("NFKD", details.name).encode("ascii", "ignore").decode()
    normalised = f"{' '.join(name.lower().split())}|{details.date_of_birth.isoformat()}"
    return hmac.new(pseudonym_key, normalised.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IntakeKeys:
    master: bytes
    contact_sharing: bytes
    pseudonym: bytes
    # Per partner organisation, the key it shares with the chain.
    partners: dict[str, bytes] = field(default_factory=dict)

    def partner(self, organisation_id: str) -> bytes | None:
        return self.partners.get(organisation_id)


def wrap_client_key(keys: IntakeKeys, client_ref: str, data_key: bytes) -> dict[str, str]:
    nonce, wrapped = sealing.encrypt(data_key, keys.master, client_ref.encode())
    return {"nonce": nonce.hex(), "wrapped": wrapped.hex()}


def unwrap_client_key(keys: IntakeKeys, client_ref: str, stored: dict[str, str]) -> bytes:
    return sealing.decrypt(
        bytes.fromhex(stored["nonce"]),
        bytes.fromhex(stored["wrapped"]),
        keys.master,
        client_ref.encode(),
    )


def encrypt_details(client_ref: str, data_key: bytes, details: PersonalDetails) -> dict[str, str]:
    nonce, ciphertext = sealing.encrypt(
        details.model_dump_json().encode(), data_key, client_ref.encode()
    )
    return {"nonce": nonce.hex(), "ciphertext": ciphertext.hex()}


def decrypt_details(client_ref: str, data_key: bytes, stored: dict[str, str]) -> PersonalDetails:
    plaintext = sealing.decrypt(
        bytes.fromhex(stored["nonce"]),
        bytes.fromhex(stored["ciphertext"]),
        data_key,
        client_ref.encode(),
    )
    return PersonalDetails.model_validate_json(plaintext)


def seal_contact_for_notifications(
    keys: IntakeKeys, client_ref: str, data_key: bytes, details: PersonalDetails
) -> Sealed:
    return sealing.seal(
        details.contact_card(),
        data_key=data_key,
        key_id=client_ref,
        recipient_key=keys.contact_sharing,
    )


def seal_contact_for_partner(
    partner_key: bytes, client_ref: str, data_key: bytes, details: PersonalDetails
) -> Sealed:
    """Sealed with the client's own key, wrapped for one partner: only that partner reads it."""
    return sealing.seal(
        details.partner_card(), data_key=data_key, key_id=client_ref, recipient_key=partner_key
    )


def fingerprint(pseudonym_key: bytes, canonical: bytes) -> str:
    """A keyed hash of a request, to tell a repeated one from a different one under the same
    Idempotency-Key without keeping its content."""
    return hmac.new(pseudonym_key, canonical, hashlib.sha256).hexdigest()
