"""Learning's own database: enrolments (with homework answers and questionnaire scores),
the questionnaire history per client, and who is on a waiting list. All forgotten on erasure.

Homework answers are the client's own words about their life: they are stored encrypted with
a data key of the client's own (AES-256-GCM, the submission id as associated data), kept in
`client_keys` wrapped with `LEARNING_MASTER_KEY`. Erasure deletes the key with the enrolments.
Without a master key (a workstation) the client keys are stored unwrapped, and the service
says so at start-up: the answers are still not in plaintext, but a copy of the database opens
them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.contracts import sealing
from ketenbus.kit.gathered import GatheredDocuments
from ketenbus.kit.uow import Transaction
from ketenbus.learning.domain import Enrolment, EnrolmentStatus


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.enrolments.create_index([("organisation_id", 1), ("client_ref", 1)])
    await db.enrolments.create_index([("status", 1), ("idle_since", 1)])
    await db.enrolments.create_index("submissions.id", sparse=True)
    await db.portal_tokens.create_index("client_ref")


class ClientKeys:
    """Each client's data key for their homework answers, wrapped with the master key. In a
    transaction a key is looked up once per unit of work (`KnownKeys`): a batch's feedback
    to one client's homework opens and seals it with the key read for the first."""

    def __init__(self, tx: Transaction, master: bytes | None) -> None:
        self.tx = tx
        self.master = master
        self.collection = tx.db.client_keys
        self._reading = KnownKeys()

    async def of(self, client_ref: str, *, create: bool = False) -> bytes | None:
        known = self._known()
        key = known.get(client_ref)
        if key is None and (create or client_ref not in known):
            key = known[client_ref] = await self._stored(client_ref, create=create)
        return key

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)
        self._known()[client_ref] = None

    async def _stored(self, client_ref: str, *, create: bool) -> bytes | None:
        stored = await self.collection.find_one({"_id": client_ref}, session=self.tx.session)
        if stored is not None:
            if self.master is None or "key" in stored:
                return bytes.fromhex(stored["key"])
            return sealing.decrypt(
                bytes.fromhex(stored["nonce"]),
                bytes.fromhex(stored["wrapped"]),
                self.master,
                client_ref.encode(),
            )
        if not create:
            return None
        key = sealing.new_key()
        if self.master is None:
            document = {"_id": client_ref, "key": key.hex()}
        else:
            nonce, wrapped = sealing.encrypt(key, self.master, client_ref.encode())
            document = {"_id": client_ref, "nonce": nonce.hex(), "wrapped": wrapped.hex()}
        # Written at once, not gathered: once per client, at their first homework.
        await self.collection.insert_one(document, session=self.tx.session)
        return key

    def _known(self) -> dict[str, bytes | None]:
        if not self.tx.session.in_transaction:
            return self._reading.keys  # a read (`uow.reading()`): no unit of work to keep for
        return self.tx.deferred("client keys", KnownKeys).keys


class KnownKeys:
    """The client keys a unit of work looked up (None: the client has none): kept, as its
    `deferred` writes are, for every event of a batch; nothing to write at its end."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    async def flush(self) -> None:
        pass


class EnrolmentRepository:
    """The enrolments as one unit of work sees them (`GatheredDocuments`): each read once and
    kept, a later read in the unit of work (by id, by submission, a client's list) answered
    with the kept object and what the handlers before changed, and what was added and saved
    written in one bulk write when the unit of work ends, its answers sealed then. Events
    are published at once, in the handlers' order. Outside a transaction (`uow.reading()`)
    reads go to the database, and nothing is written.

    No version check: an enrolment is read and written in one transaction, whose snapshot
    makes a concurrent change a write conflict (and the abandonment check reads it again in
    the transaction that saves it)."""

    def __init__(self, tx: Transaction, keys: ClientKeys) -> None:
        self.tx = tx
        self.collection = tx.db.enrolments
        self.stored = StoredEnrolment(keys)

    async def add(self, enrolment: Enrolment) -> None:
        self._documents().add(enrolment)
        self._publish(enrolment)

    async def save(self, enrolment: Enrolment) -> None:
        self._documents().save(enrolment)
        self._publish(enrolment)

    async def get(self, enrolment_id: str) -> Enrolment | None:
        return await self._documents().get(enrolment_id)

    async def by_submission(self, submission_id: str) -> Enrolment | None:
        return await self._documents().one(
            {"submissions.id": submission_id},
            lambda e: any(s.id == submission_id for s in e.submissions),
        )

    async def of_client(self, organisation_id: str, client_ref: str) -> list[Enrolment]:
        query = {"organisation_id": organisation_id, "client_ref": client_ref}
        cursor = self.collection.find(query, session=self.tx.session).sort("enrolled_at", 1)
        found = await self._documents().merged(
            await cursor.to_list(),
            lambda e: e.organisation_id == organisation_id and e.client_ref == client_ref,
        )
        return sorted(found, key=lambda e: e.enrolled_at)

    async def idle_since_before(self, moment: datetime, limit: int = 100) -> list[str]:
        """As stored: the abandonment check asks before its units of work."""
        cursor = self.collection.find(
            {
                "status": {"$in": [EnrolmentStatus.ENROLLED.value, EnrolmentStatus.STARTED.value]},
                "idle_since": {"$lte": moment},
            },
            projection=["_id"],
            session=self.tx.session,
        )
        return [d["_id"] async for d in cursor.limit(limit)]

    async def questionnaires_answered(self, client_ref: str, questionnaire_id: str) -> int:
        """How often the client filled in this questionnaire before, in any module. Counted
        by the database, after what the unit of work changed is written to it: the kept
        enrolments alone do not know the client's others, and reading those whole would
        open every homework answer for a count."""
        documents = self._documents()
        await documents.flush()
        cursor = self.collection.find(
            {"client_ref": client_ref, "answers.questionnaire_id": questionnaire_id},
            projection=["answers"],
            session=self.tx.session,
        )
        return sum(
            [
                [a["questionnaire_id"] for a in d["answers"]].count(questionnaire_id)
                async for d in cursor
            ]
        )

    async def forget(self, client_ref: str) -> None:
        """Every enrolment of the client: stored, and what this unit of work kept or added."""
        self._documents().forget(lambda e: e.client_ref == client_ref)
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)

    def _documents(self) -> GatheredDocuments[Enrolment]:
        return GatheredDocuments.of(self.tx, self.collection, self.stored)

    def _publish(self, enrolment: Enrolment) -> None:
        self.tx.publish_all(enrolment.events)
        enrolment.events.clear()


class StoredEnrolment:
    """An enrolment as its document (`Codec`), the homework answers sealed with the client's
    key (made at their first homework), the submission id as associated data."""

    def __init__(self, keys: ClientKeys) -> None:
        self.keys = keys

    def id_of(self, enrolment: Enrolment) -> str:
        return enrolment.id

    async def to_document(self, enrolment: Enrolment) -> dict[str, Any]:
        document = _document(enrolment)
        if not document["submissions"]:
            return document
        key = await self.keys.of(enrolment.client_ref, create=True)
        assert key is not None
        for submission in document["submissions"]:
            nonce, ciphertext = sealing.encrypt(
                submission.pop("answer").encode(), key, submission["id"].encode()
            )
            submission["answer_sealed"] = {"nonce": nonce.hex(), "ciphertext": ciphertext.hex()}
        return document

    async def from_document(self, document: dict[str, Any]) -> Enrolment:
        submissions = document.get("submissions") or []
        key = await self.keys.of(document["client_ref"]) if submissions else None
        for submission in submissions:
            sealed = submission.pop("answer_sealed", None)
            if sealed is None:
                continue  # stored before answers were encrypted: the next save encrypts it
            try:
                assert key is not None
                submission["answer"] = sealing.decrypt(
                    bytes.fromhex(sealed["nonce"]),
                    bytes.fromhex(sealed["ciphertext"]),
                    key,
                    submission["id"].encode(),
                ).decode()
            except (AssertionError, sealing.SealBroken):
                submission["answer"] = ""  # the client's key is gone: the answer with it
        return _enrolment(document)


class WaitingList:
    """Who is waiting, as intake announced it: they may start self-help on their own."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.waiting

    async def add(self, client_ref: str, organisation_id: str, since: datetime) -> None:
        await self.collection.replace_one(
            {"_id": client_ref},
            {"organisation_id": organisation_id, "since": since},
            upsert=True,
            session=self.tx.session,
        )

    async def remove(self, client_ref: str) -> None:
        await self.collection.delete_one({"_id": client_ref}, session=self.tx.session)

    async def waiting(self, client_ref: str, organisation_id: str) -> bool:
        document = await self.collection.find_one(
            {"_id": client_ref, "organisation_id": organisation_id}, session=self.tx.session
        )
        return document is not None


_ENROLMENT = TypeAdapter(Enrolment)


def _document(enrolment: Enrolment) -> dict[str, Any]:
    """The same dict `dataclasses.asdict` gives (enumerations and datetimes as they are),
    made by pydantic's serializer, some ten times faster: asdict deep-copies every value."""
    document = _ENROLMENT.dump_python(enrolment, exclude={"events"})
    document["_id"] = document.pop("id")
    return document


def _enrolment(document: dict[str, Any]) -> Enrolment:
    if "started_at" not in document:
        document = {**document, "started_at": _begun_before_it_was_kept(document)}
    return _ENROLMENT.validate_python({**document, "id": document["_id"]})


def _begun_before_it_was_kept(document: dict[str, Any]) -> datetime | None:
    """Enrolments stored before `started_at` was kept: begun if started, completed, or left
    with steps done; the first step's moment, else the last progress, is as near as we know."""
    if document.get("status") == "enrolled" or (
        document.get("status") == "abandoned" and not document.get("steps_done")
    ):
        return None
    steps = document.get("steps_done") or []
    return steps[0]["completed_at"] if steps else document.get("last_progress_at")


class PortalTokens:
    """The client portal's tokens: one client's enrolments each, short-lived, kept hashed."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db.portal_tokens

    async def issue(self, client_ref: str, organisation_id: str, expires_at: datetime) -> str:
        token_id = secrets.token_hex(6)
        token = f"kbp_{token_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
        await self.collection.insert_one(
            {
                "_id": token_id,
                "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "client_ref": client_ref,
                "organisation_id": organisation_id,
                "expires_at": expires_at,
            },
            session=self.tx.session,
        )
        return token

    async def holder(self, token: str, now: datetime) -> tuple[str, str] | None:
        """(organisation, client) of a valid token; None for anything else."""
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != "kbp":
            return None
        found = await self.collection.find_one({"_id": parts[1]}, session=self.tx.session)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if found is None or not hmac.compare_digest(found["sha256"], digest):
            return None
        if found["expires_at"] <= now:
            return None
        return found["organisation_id"], found["client_ref"]

    async def forget(self, client_ref: str) -> None:
        await self.collection.delete_many({"client_ref": client_ref}, session=self.tx.session)


class LearningTransaction(Transaction):
    def __init__(
        self, *args: Any, homework_master_key: bytes | None = None, **context: Any
    ) -> None:
        super().__init__(*args, **context)
        # Wraps each client's key for their homework answers; None: stored unwrapped.
        self.homework_master_key = homework_master_key

    @cached_property
    def client_keys(self) -> ClientKeys:
        return ClientKeys(self, self.homework_master_key)

    @cached_property
    def enrolments(self) -> EnrolmentRepository:
        return EnrolmentRepository(self, self.client_keys)

    @cached_property
    def portal_tokens(self) -> PortalTokens:
        return PortalTokens(self)

    @cached_property
    def waiting_list(self) -> WaitingList:
        return WaitingList(self)
