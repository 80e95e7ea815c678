"""Which failures are retried, and a command is never run twice when it may have committed."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, PyMongoError

from ketenbus.kit.errors import DomainError, TransientError
from ketenbus.kit.failures import is_transient, retrying


def labelled(label: str) -> PyMongoError:
    error = OperationFailure("transaction trouble", code=251)
    error._add_error_label(label)
    return error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (AutoReconnect("primary gone"), True),
        (OperationFailure("write conflict", code=112), True),
        (labelled("TransientTransactionError"), True),
        (TransientError("sms provider down"), True),
        (DuplicateKeyError("E11000"), False),
        (DomainError("appointment already attended"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_failures_are_told_apart_from_the_rest(error, transient):
    assert is_transient(error) is transient


async def test_a_command_that_lost_a_race_runs_again_until_it_succeeds():
    failures = [OperationFailure("write conflict", code=112)] * 2
    calls = []

    async def command() -> str:
        calls.append(1)
        if failures:
            raise failures.pop()
        return "done"

    assert await retrying(command, base=0.001) == "done"
    assert len(calls) == 3


async def test_a_command_whose_commit_result_is_unknown_is_not_run_again():
    calls = []

    async def command() -> None:
        calls.append(1)
        raise labelled("UnknownTransactionCommitResult")

    with pytest.raises(PyMongoError):
        await retrying(command, base=0.001)
    assert len(calls) == 1


async def test_a_broken_rule_is_not_retried():
    calls = []

    async def command() -> None:
        calls.append(1)
        raise DomainError("no such appointment")

    with pytest.raises(DomainError):
        await retrying(command, base=0.001)
    assert len(calls) == 1
