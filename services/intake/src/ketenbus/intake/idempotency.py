"""The Idempotency-Key of intake's front doors (referrals, signals): a request sent again
under the same key gets what the first one made (200), never a second one; the same key with
a different request is refused (409). Both doors keep the key and a keyed print of the
request beside what they made, unique per organisation."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from fastapi import Header, HTTPException, Response
from fastapi import status as http
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from ketenbus.intake.personal import fingerprint
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.uow import UnitOfWork

T = TypeVar("T")
Uow: TypeAlias = UnitOfWork[IntakeTransaction]
# What a door made under the key with the print of the request that made it (None: kept
# before prints were); None when the key is new.
Lookup: TypeAlias = Callable[[IntakeTransaction, str], Awaitable[tuple[T, str | None] | None]]


def key_header(what: str) -> Any:
    """The header's parameter, for `Annotated[str | None, key_header(what)]`."""
    return Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description=f"Send the same key again to get the same {what} instead of a second one.",
    )


def replay_responses(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": f"Seen before under this Idempotency-Key: the same {what}"},
        409: {"description": f"This Idempotency-Key was used before for a different {what}"},
    }


@dataclass(frozen=True)
class KeyedRequest:
    """One request under an optional Idempotency-Key, with the print it is kept under."""

    key: str | None
    request_print: str
    what: str

    @classmethod
    def of(cls, body: BaseModel, key: str | None, pseudonym_key: bytes, what: str) -> KeyedRequest:
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
        return cls(key, fingerprint(pseudonym_key, canonical), what)

    async def made_once(
        self, uow: Uow, response: Response, lookup: Lookup[T], make: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """What this key made before (and True: replayed), or what `make` makes now."""
        if (seen := await self._earlier(uow, response, lookup)) is not None:
            return seen, True
        try:
            return await make(), False
        except DuplicateKeyError:
            # The same key arrived twice at once; the other request made it.
            if (seen := await self._earlier(uow, response, lookup)) is not None:
                return seen, True
            raise

    async def _earlier(self, uow: Uow, response: Response, lookup: Lookup[T]) -> T | None:
        if self.key is None:
            return None
        async with uow.reading() as tx:
            found = await lookup(tx, self.key)
        if found is None:
            return None
        made, made_by = found
        if made_by is not None and made_by != self.request_print:
            raise HTTPException(
                http.HTTP_409_CONFLICT,
                f"this Idempotency-Key was used for a different {self.what}; use a new key",
            )
        response.status_code = http.HTTP_200_OK
        return made
