"""How referrals and consents are kept in the database, and read back: one place for the
repositories (store) and the writes a unit of work gathers (gathered)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter

from ketenbus.intake.domain import Consent, Referral

T = TypeVar("T")

REFERRAL = TypeAdapter(Referral)
CONSENT = TypeAdapter(Consent)


def dump(adapter: TypeAdapter[Any], item: Any) -> dict[str, Any]:
    document: dict[str, Any] = adapter.dump_python(item, exclude={"events"})
    document["_id"] = document.pop("id")
    return document


def load(adapter: TypeAdapter[T], document: dict[str, Any]) -> T:
    return adapter.validate_python({**document, "id": document["_id"]})


def referral_document(referral: Referral) -> dict[str, Any]:
    # `crisis` is kept beside the urgency so that the waiting list sorts on it.
    return {**dump(REFERRAL, referral), "crisis": referral.crisis}


def consent_document(consent: Consent) -> dict[str, Any]:
    return dump(CONSENT, consent)
