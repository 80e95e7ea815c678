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
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel, Language, Sealed

DetailsT = TypeVar("DetailsT", bound=BaseModel)


def plausible_birth_date(born: date) -> date:
    if not date(1900, 1, 1) <= born <= date.today():
        raise ValueError("date of birth must lie between 1900 and today")
    return born


class _Resident(BaseModel):
    """Who a person is and how to reach them, as any sender gives it: a referral's client
    and a signal's resident alike. Never logged, never on the bus in clear."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=120)
    date_of_birth: date
    postcode: str = Field(pattern=r"^[1-9][0-9]{3} ?[A-Za-z]{2}$", description="e.g. 3511 AB")
    phone: str | None = Field(default=None, pattern=r"^(\+31|0)[1-9][0-9 -]{7,12}$")
    email: EmailStr | None = None
    language: Language = Language.NL

    _born = field_validator("date_of_birth")(plausible_birth_date)

    @property
    def postcode_area(self) -> str:
        return self.postcode[:4]


class PersonalDetails(_Resident):
    """Who the client is and how to reach them."""

    preferred_channel: Channel = Channel.EMAIL

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


class SignalResident(_Resident):
    """Who an early-warning signal is about, as the creditor knows them (the Wgs lets it send
    name, address, date of birth, and phone and e-mail where known). Kept encrypted with the
    signal's own key."""

    street: str = Field(min_length=2, max_length=120, description="street and house number")
    town: str = Field(min_length=2, max_length=80)

    def as_client(self) -> PersonalDetails:
        """The resident as a client, once they accepted help: the referral's own details."""
        return PersonalDetails(
            **self.model_dump(include=set(_Resident.model_fields)),
            preferred_channel=Channel.EMAIL if self.email or not self.phone else Channel.SMS,
        )


class SignalDetails(BaseModel):
    """What of a signal is about the person: who, how much, and the creditor's number for
    them. Everything else of the signal (creditor kind, dates) says nothing about who."""

    model_config = ConfigDict(extra="forbid")

    resident: SignalResident
    arrears_amount: Decimal = Field(gt=0, le=1_000_000, decimal_places=2)
    customer_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")


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


def encrypt_details(owner_id: str, data_key: bytes, details: BaseModel) -> dict[str, str]:
    """Who a client or a signal is about, under its own data key and bound to its id: the
    ciphertext opens for that owner only, and erasing the key erases the details."""
    nonce, ciphertext = sealing.encrypt(
        details.model_dump_json().encode(), data_key, owner_id.encode()
    )
    return {"nonce": nonce.hex(), "ciphertext": ciphertext.hex()}


def decrypt_details(
    owner_id: str, data_key: bytes, stored: dict[str, str], kind: type[DetailsT]
) -> DetailsT:
    plaintext = sealing.decrypt(
        bytes.fromhex(stored["nonce"]),
        bytes.fromhex(stored["ciphertext"]),
        data_key,
        owner_id.encode(),
    )
    return kind.model_validate_json(plaintext)


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
