"""The referrals, clients and consents a unit of work adds (intake's `deferred` writes,
ketenbus.kit.uow): kept here, and written in the unit of work's last write when it ends.

Why (issue 9): a partner's referral on Kafka cost nine round trips to the database, four of
them inserts of its own new documents (the client's key, the client, the consent, the
referral), and a round trip costs intake and the database more than the referral's crypto
and validation together. Gathered, a batch of a hundred referrals inserts them all, with
its inbox claims and outbox documents, in one command (the kit's `LastWrite`); a referral
from the front door as well, and it reads nothing back. A batch of
partners' referrals reads ahead which of their keys and persons the database knows, in one
query each (`unused_keys`, `unknown_persons`): only a resent referral or a known person is
then looked up on its own. It claims the places of the new persons' referrals in one round
trip as well (`places_claimed`).

What is gathered is seen: the repositories answer their reads from here as well as from the
database. A second referral of the same resident in one batch finds the client and the open
referral the first one added (and is linked to it); a resent one finds the first under its
key; a position on the waiting list counts those waitlisted earlier in the batch. None of
it is in the database before the unit of work ends, so a read outside the transaction
(`waiting_as_committed`, the places) does not see it, as it never saw an uncommitted one.

A client's data key and details stay in memory for the unit of work only: the transaction
that made or opened the key holds it anyway; kept, the contact card sealed right after for
notifications or a partner needs no second read and decryption of what was just written. So
do a partner's referral's details as its batch's read-ahead opened them, for its handler.
Nothing here outlives the unit of work, so no copy in memory survives an erasure (which
shreds the stored key), and an erasure within the unit of work forgets it here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.intake.documents import consent_document, referral_document
from ketenbus.intake.domain import Consent, Referral
from ketenbus.intake.personal import PersonalDetails, encrypt_details
from ketenbus.kit.last_write import LastWrite, write_alone


@dataclass
class NewReferral:
    referral: Referral
    idempotency_key: str | None
    fingerprint: str | None


@dataclass
class OpenedClient:
    """A client whose key and details this unit of work holds. `wrapped`: the key as it is
    to be stored, for a client added here; None once stored (or read from the database)."""

    client_ref: str
    organisation_id: str
    identity_hash: str
    data_key: bytes
    details: PersonalDetails
    wrapped: dict[str, str] | None = None

    @property
    def is_new(self) -> bool:
        return self.wrapped is not None


class GatheredIntake:
    def __init__(self, db: AsyncDatabase[Any], session: AsyncClientSession) -> None:
        self.db, self.session = db, session
        self.referrals: dict[str, NewReferral] = {}
        self.consents: dict[str, Consent] = {}
        # Every client added, or registered again, in the unit of work.
        self.clients: dict[str, OpenedClient] = {}
        # What a batch's read-ahead found absent from the database (reception.read_ahead):
        # (organisation, key) pairs no referral was made under, keyed hashes of no client.
        # Those this unit of work writes itself are taken out as they are written.
        self.unused_keys: set[tuple[str, str]] = set()
        self.unknown_persons: set[str] = set()
        # Partners' referrals' client details as the read-ahead opened them, by event id.
        self.opened: dict[str, PersonalDetails] = {}
        # Referrals the read-ahead claimed a place for (outside the transaction, as every
        # claim: ketenbus.intake.caseloads).
        self.places_claimed: set[str] = set()

    def client_known_as(self, organisation_id: str, identity_hash: str) -> OpenedClient | None:
        """The client added here, not stored yet, under this keyed hash."""
        return next(
            (
                client
                for client in self.clients.values()
                if client.is_new
                and client.organisation_id == organisation_id
                and client.identity_hash == identity_hash
            ),
            None,
        )

    def is_new_client(self, client_ref: str) -> bool:
        client = self.clients.get(client_ref)
        return client is not None and client.is_new

    def referrals_where(self, matches: Callable[[Referral], bool]) -> list[Referral]:
        return [new.referral for new in self.referrals.values() if matches(new.referral)]

    def consents_where(self, matches: Callable[[Consent], bool]) -> list[Consent]:
        return [consent for consent in self.consents.values() if matches(consent)]

    async def flush(self) -> None:
        """The new documents written now (an erasure in the middle of the unit of work
        writes the client it added first); the unit of work itself ends with `join`."""
        await write_alone(self, self.db, self.session)

    async def join(self, last: LastWrite) -> None:
        """Each collection's documents in their final state (a referral admitted later in
        the batch is inserted admitted, a client with the newest details the batch brought),
        added to the unit of work's last write: the keys, the clients, the consents, the
        referrals (its inbox claims and outbox follow)."""
        new_clients = [client for client in self.clients.values() if client.is_new]
        referrals, self.referrals = list(self.referrals.values()), {}
        consents, self.consents = list(self.consents.values()), {}
        last.insert("client_keys", [_key_document(c) for c in new_clients])
        last.insert("clients", [_client_document(c) for c in new_clients])
        last.insert("consents", [consent_document(c) for c in consents])
        last.insert(
            "referrals",
            [
                {
                    **referral_document(new.referral),
                    "idempotency_key": new.idempotency_key,
                    "fingerprint": new.fingerprint,
                }
                for new in referrals
            ],
        )
        self.unused_keys -= {
            (new.referral.referrer.organisation_id, new.idempotency_key) for new in referrals
        }
        self.unknown_persons -= {client.identity_hash for client in new_clients}
        for client in new_clients:
            client.wrapped = None  # stored from now on


def _key_document(client: OpenedClient) -> dict[str, Any]:
    assert client.wrapped is not None
    return {"_id": client.client_ref, **client.wrapped}


def _client_document(client: OpenedClient) -> dict[str, Any]:
    return {
        "_id": client.client_ref,
        "organisation_id": client.organisation_id,
        "identity_hash": client.identity_hash,
        "details": encrypt_details(client.client_ref, client.data_key, client.details),
    }
