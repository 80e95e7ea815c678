"""Per-organisation API keys with scopes, stored only as hashes.

A key reads `kb_<key id>_<secret>`. The key file holds, per key, the SHA-256 of the whole
key (a random 256-bit secret needs no slow hash), the organisation, the scopes and, for a
social worker's key, the worker. Create keys with `python -m ketenbus.kit.auth create`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kb_...`")


class KeyRecord(BaseModel):
    key_id: str = Field(pattern=r"^[a-z0-9]{8,32}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    organisation_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    scopes: tuple[str, ...]
    worker_id: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Caller:
    key_id: str
    organisation_id: str
    scopes: frozenset[str]
    worker_id: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Keyring:
    def __init__(self, records: Iterable[KeyRecord]) -> None:
        self._records = {record.key_id: record for record in records}

    @classmethod
    def from_file(cls, path: Path | None) -> Keyring:
        if path is None or not path.exists():
            return cls(())
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls(KeyRecord.model_validate_json(line) for line in lines if line.strip())

    def organisations(self) -> frozenset[str]:
        """Every organisation that holds a key here."""
        return frozenset(record.organisation_id for record in self._records.values())

    def identify(self, token: str) -> Caller | None:
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != "kb":
            return None
        record = self._records.get(parts[1])
        if record is None or not hmac.compare_digest(record.sha256, _digest(token)):
            return None
        return Caller(
            record.key_id, record.organisation_id, frozenset(record.scopes), record.worker_id
        )


def issue_key(
    organisation_id: str, scopes: Iterable[str], worker_id: str | None = None, label: str = ""
) -> tuple[str, KeyRecord]:
    """A new key: the token to hand over once, and the record to keep."""
    key_id = secrets.token_hex(6)
    token = f"kb_{key_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
    record = KeyRecord(
        key_id=key_id,
        sha256=_digest(token),
        organisation_id=organisation_id,
        scopes=tuple(scopes),
        worker_id=worker_id,
        label=label,
    )
    return token, record


def append_record(path: Path, record: KeyRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(record.model_dump_json() + "\n")
    path.chmod(0o600)


def requires(scope: str) -> Callable[..., Caller]:
    """A FastAPI dependency: the caller, if its key is valid and carries `scope`.

    The scope is named in the operation's security requirement in the OpenAPI document
    (`{"HTTPBearer": ["referrals:write"]}`, as OpenAPI 3.1 allows for any scheme), so a partner
    can read which scope each route needs, and tests/test_security_http.py checks exactly that
    scope against every route."""

    # A default, not Annotated[...]: annotations are strings here (__future__), and FastAPI
    # resolves them in the module's globals, where `scope` is not.
    def authenticated(
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
    args = parser.parse_args(argv)
    token, record = issue_key(args.organisation, args.scopes.split(","), args.worker, args.label)
    append_record(args.file, record)
    print(token)
    print(f"stored as key {record.key_id} in {args.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
