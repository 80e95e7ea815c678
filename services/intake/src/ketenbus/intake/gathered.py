"""The referrals, clients and consents a unit of work adds (intake's `deferred` writes,
ketenbus.kit.uow): kept here, and written with one insert per collection when it ends.

Why (issue 9): a partner's referral on Kafka cost nine round trips to the database, four of
them inserts of its own new documents (the client's key, the client, the consent, the
referral), and a round trip costs intake and the database more than the referral's crypto
and validation together. Gathered, a batch of a hundred referrals inserts each collection
once; a referral from the front door still inserts each once, but reads nothing back. The
unit of work's outbox documents ride along in the same write (`carry`, the kit's
`CarriesInserts`), a round trip fewer per command or batch that publishes. A batch of
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
notifications or a partner needs no second read and decryption of what was just written.
Nothing here outlives the unit of work, so no copy in memory survives an erasure (which
shreds the stored key), and an erasure within the unit of work forgets it here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import InsertOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ClientBulkWriteException

from ketenbus.intake.documents import consent_document, referral_document
from ketenbus.intake.domain import Consent, Referral
from ketenbus.intake.personal import PersonalDetails, encrypt_details
from ketenbus.kit.gathered import single_client_write_error, single_write_error


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
        # Other collections' inserts the unit of work hands over (its outbox), written last.
        self.carried: dict[str, list[dict[str, Any]]] = {}
        # What a batch's read-ahead found absent from the database (reception.read_ahead):
        # (organisation, key) pairs no referral was made under, keyed hashes of no client.
        # Those this unit of work writes itself are taken out as they are written.
        self.unused_keys: set[tuple[str, str]] = set()
        self.unknown_persons: set[str] = set()
        # Referrals the read-ahead claimed a place for (outside the transaction, as every
        # claim: ketenbus.intake.caseloads).
        self.places_claimed: set[str] = set()

    def carry(self, collection: str, documents: list[dict[str, Any]]) -> None:
        """Insert these with the new documents, in the same write (kit.uow.CarriesInserts)."""
        self.carried.setdefault(collection, []).extend(documents)

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
        """Each collection's documents in their final state (a referral admitted later in
        the batch is inserted admitted, a client with the newest details the batch brought),
        in one ordered write: the keys, the clients, the consents, the referrals, then what
        it carries (the outbox)."""
        new_clients = [client for client in self.clients.values() if client.is_new]
        referrals, self.referrals = list(self.referrals.values()), {}
        consents, self.consents = list(self.consents.values()), {}
        inserts = {
            "client_keys": [_key_document(c) for c in new_clients],
            "clients": [_client_document(c) for c in new_clients],
            "consents": [consent_document(c) for c in consents],
            "referrals": [
                {
                    **referral_document(new.referral),
                    "idempotency_key": new.idempotency_key,
                    "fingerprint": new.fingerprint,
                }
                for new in referrals
            ],
        }
        inserts |= self.carried
        self.carried = {}
        self.unused_keys -= {
            (new.referral.referrer.organisation_id, new.idempotency_key) for new in referrals
        }
        self.unknown_persons -= {client.identity_hash for client in new_clients}
        for client in new_clients:
            client.wrapped = None  # stored from now on
        inserts = {collection: documents for collection, documents in inserts.items() if documents}
        if len(inserts) > 1 and not _first_command(self.session):
            await self._insert_together(inserts)
        else:
            for collection, documents in inserts.items():
                await self._insert(collection, documents)

    async def _insert_together(self, inserts: dict[str, list[dict[str, Any]]]) -> None:
        writes = [
            InsertOne(document, namespace=f"{self.db.name}.{collection}")
            for collection, documents in inserts.items()
            for document in documents
        ]
        try:
            await self.session.client.bulk_write(writes, session=self.session, ordered=True)
        except ClientBulkWriteException as error:
            # Not chained: the bulk error holds whole documents, which a log must not show.
            raise single_client_write_error(error, ", ".join(inserts)) from None

    async def _insert(self, collection: str, documents: list[dict[str, Any]]) -> None:
        try:
            await self.db[collection].insert_many(documents, session=self.session)
        except BulkWriteError as error:
            # Not chained: the bulk error holds whole documents, which a log must not show.
            raise single_write_error(error, collection) from None


def _first_command(session: AsyncClientSession) -> bool:
    """Whether the session's transaction has sent nothing yet (the driver's own record of
    it, a private one: its next command carries the transaction's readConcern).

    A workaround: secantusd-rs 0.5.3 refuses a client-level bulkWrite that carries that
    readConcern, so as a transaction's first command the inserts go one collection at a
    time. When SecantusDB takes it, this check and the fall-back go."""
    return session._transaction.starting()


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
