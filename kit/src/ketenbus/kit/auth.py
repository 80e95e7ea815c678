"""Per-organisation API keys with scopes, stored only as hashes.

A key reads `kb_<key id>_<secret>`. The key file holds, per key, the SHA-256 of the whole
key (a random 256-bit secret needs no slow hash), the organisation, the scopes, for a
social worker's key the worker, when the key expires and, once revoked, when that was.

    python -m ketenbus.kit.auth create --file F --organisation O --scopes a,b [--days 365]
    python -m ketenbus.kit.auth revoke --file F --key-id ID
    python -m ketenbus.kit.auth list --file F

Every service re-reads the file when it changed, looking at most every
`API_KEYS_RELOAD_SECONDS` (10 s): a revoked or expired key is refused by every replica that
reads the file within that time, without a restart. (Where the file is a Kubernetes Secret
mount, add the kubelet's own delay in updating the mount.) An expired key is refused at its
moment, to the second.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from ketenbus.kit.logs import get_logger

log = get_logger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kb_...`")
# For a service's own kind of bearer token beside the API keys (the learning portal's).
BEARER = _bearer


class KeyRecord(BaseModel):
    key_id: str = Field(pattern=r"^[a-z0-9]{8,32}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    organisation_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    scopes: tuple[str, ...]
    worker_id: str | None = None
    label: str = ""
    # Added later: records without them (older files) never expire until revoked.
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None

    def valid_at(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Caller:
    key_id: str
    organisation_id: str
    scopes: frozenset[str]
    worker_id: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_records(path: Path) -> list[KeyRecord]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [KeyRecord.model_validate_json(line) for line in lines if line.strip()]


class Keyring:
    """The keys a service accepts. Read from the key file, and read again when the file
    changed (checked at most every `reload_seconds`), so revocation needs no restart."""

    def __init__(
        self,
        records: Iterable[KeyRecord],
        path: Path | None = None,
        reload_seconds: float = 10.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._records = {record.key_id: record for record in records}
        self.path, self.reload_seconds, self.now = path, reload_seconds, now
        self._seen = self._stamp()
        self._next_look = time.monotonic() + reload_seconds

    @classmethod
    def from_file(cls, path: Path | None, reload_seconds: float = 10.0) -> Keyring:
        if path is None:
            return cls(())
        records = read_records(path) if path.exists() else []
        return cls(records, path, reload_seconds)

    def _stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            found = self.path.stat()
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_mtime_ns, found.st_size)

    def _refresh(self) -> None:
        if self.path is None or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + self.reload_seconds
        stamp = self._stamp()
        if stamp == self._seen:
            return
        if stamp is None:
            # The file is gone: no key holds any more (fail closed).
            self._records, self._seen = {}, None
            log.warning("API key file missing; every key refused until it is back")
            return
        try:
            records = read_records(self.path)
        except (OSError, ValueError, ValidationError) as error:
            # Half-written (write the file by rename): the next look tries again.
            log.warning(
                "API key file unreadable; keeping the keys read before", error=type(error).__name__
            )
            return
        self._records, self._seen = {r.key_id: r for r in records}, stamp
        log.info("API keys read again", keys=len(records))

    def organisations(self) -> frozenset[str]:
        """Every organisation that holds a key here."""
        self._refresh()
        return frozenset(record.organisation_id for record in self._records.values())

    def identify(self, token: str) -> Caller | None:
        self._refresh()
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != "kb":
            return None
        record = self._records.get(parts[1])
        if record is None or not hmac.compare_digest(record.sha256, _digest(token)):
            return None
        if not record.valid_at(self.now()):
            return None
        return Caller(
            record.key_id, record.organisation_id, frozenset(record.scopes), record.worker_id
        )


DEFAULT_VALIDITY = timedelta(days=365)


def issue_key(
    organisation_id: str,
    scopes: Iterable[str],
    worker_id: str | None = None,
    label: str = "",
    valid_for: timedelta = DEFAULT_VALIDITY,
) -> tuple[str, KeyRecord]:
    """A new key: the token to hand over once, and the record to keep. Every key expires."""
    key_id = secrets.token_hex(6)
    token = f"kb_{key_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
    record = KeyRecord(
        key_id=key_id,
        sha256=_digest(token),
        organisation_id=organisation_id,
        scopes=tuple(scopes),
        worker_id=worker_id,
        label=label,
        expires_at=datetime.now(UTC).replace(microsecond=0) + valid_for,
    )
    return token, record


def write_records(path: Path, records: Iterable[KeyRecord]) -> None:
    """The whole file anew, by rename: a service never reads half of it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.writelines(record.model_dump_json() + "\n" for record in records)
    os.replace(temporary, path)


def revoke(path: Path, key_id: str, at: datetime | None = None) -> KeyRecord:
    records = read_records(path)
    found = next((r for r in records if r.key_id == key_id), None)
    if found is None:
        raise KeyError(key_id)
    revoked = found.model_copy(update={"revoked_at": at or datetime.now(UTC)})
    write_records(path, [revoked if r.key_id == key_id else r for r in records])
    return revoked


def append_record(path: Path, record: KeyRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(record.model_dump_json() + "\n")
    path.chmod(0o600)


def requires(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the caller, if its key is valid and carries `scope`.

    The scope is named in the operation's security requirement in the OpenAPI document
    (`{"HTTPBearer": ["referrals:write"]}`, as OpenAPI 3.1 allows for any scheme), so a partner
    can read which scope each route needs, and tests/test_security_http.py checks exactly that
    scope against every route."""

    # A default, not Annotated[...]: annotations are strings here (__future__), and FastAPI
    # resolves them in the module's globals, where `scope` is not.
    # async although it awaits nothing: FastAPI runs a plain `def` dependency in a worker
    # thread, a hand-over to another thread and back for every request (issue 9).
    async def authenticated(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer, scopes=[scope]),  # noqa: B008
    ) -> Caller:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an API key is required: Authorization: Bearer kb_...",
                headers={"WWW-Authenticate": "Bearer"},
            )
        caller = request.app.state.keyring.identify(credentials.credentials)
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in caller.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the scope {scope!r}")
        return caller

    return authenticated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.kit.auth")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="issue a key; prints the key once")
    create.add_argument("--file", type=Path, required=True)
    create.add_argument("--organisation", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated")
    create.add_argument("--worker")
    create.add_argument("--label", default="")
    create.add_argument("--days", type=int, default=DEFAULT_VALIDITY.days, help="valid this long")
    revoking = sub.add_parser("revoke", help="refuse a key from now on, on every replica")
    revoking.add_argument("--file", type=Path, required=True)
    revoking.add_argument("--key-id", required=True)
    listing = sub.add_parser("list", help="the keys: id, organisation, label, expiry, revoked")
    listing.add_argument("--file", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "revoke":
        try:
            record = revoke(args.file, args.key_id)
        except KeyError:
            print(f"no key {args.key_id} in {args.file}", file=sys.stderr)
            return 1
        print(f"revoked key {record.key_id} of {record.organisation_id} at {record.revoked_at}")
        return 0
    if args.command == "list":
        for record in read_records(args.file):
            state = "revoked" if record.revoked_at else "valid"
            print(
                f"{record.key_id}\t{record.organisation_id}\t{record.label}\t"
                f"expires {record.expires_at or 'never'}\t{state}"
            )
        return 0
    token, record = issue_key(
        args.organisation,
        args.scopes.split(","),
        args.worker,
        args.label,
        valid_for=timedelta(days=args.days),
    )
    append_record(args.file, record)
    print(token)
    print(
        f"stored as key {record.key_id} in {args.file}, expires {record.expires_at}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
