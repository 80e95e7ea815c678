"""HTTP answers for failures: a passing one is a clean 503 with Retry-After, a bug a 500."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from pymongo.errors import DuplicateKeyError, OperationFailure

from ketenbus.kit.errors import DomainError
from ketenbus.kit.runtime import Service
from ketenbus.kit.settings import ServiceSettings
from ketenbus.kit.web import create_app

router = APIRouter()


@router.post("/conflict")
async def conflict() -> None:
    error = OperationFailure("WriteConflict error", code=112)
    error._add_error_label("TransientTransactionError")
    raise error


@router.post("/duplicate")
async def duplicate() -> None:
    raise DuplicateKeyError("E11000 duplicate key")


@router.post("/rule")
async def rule() -> None:
    raise DomainError("this appointment is already attended")


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


@router.post("/missing")
async def missing() -> None:
    raise NotFound("no such appointment")


def client(*, escaping_allowed: bool = False) -> httpx.AsyncClient:
    """With escaping_allowed=False an exception that leaves the app fails the test: the
    server would log it and may close the connection instead of answering."""
    app = create_app(
        Service(name="webtest", routers=[router]), ServiceSettings(service_name="webtest")
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=not escaping_allowed)
    return httpx.AsyncClient(transport=transport, base_url="http://webtest")


async def test_a_lost_race_is_answered_503_with_retry_after():
    async with client() as http:
        response = await http.post("/conflict")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "detail": "temporarily unavailable, please retry",
        "code": "unavailable",
    }


async def test_a_database_error_that_will_not_pass_is_a_500_without_details():
    # Starlette answers the 500 and raises again, so the server logs the traceback.
    async with client(escaping_allowed=True) as http:
        response = await http.post("/duplicate")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


async def test_a_broken_rule_is_a_409_with_its_reason():
    async with client() as http:
        response = await http.post("/rule")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "this appointment is already attended",
        "code": "rule_broken",
    }


async def test_a_rule_of_its_own_answers_its_own_status_and_code():
    async with client() as http:
        response = await http.post("/missing")
    assert response.status_code == 404
    assert response.json() == {"detail": "no such appointment", "code": "not_found"}


async def test_the_correlation_id_given_comes_back_and_one_is_made_when_missing():
    async with client() as http:
        given = await http.post("/rule", headers={"X-Correlation-Id": "corr-from-the-partner"})
        made = await http.post("/rule")
    assert given.headers["x-correlation-id"] == "corr-from-the-partner"
    assert len(made.headers["x-correlation-id"]) >= 16
    assert made.headers.get_list("x-correlation-id") == [made.headers["x-correlation-id"]]
